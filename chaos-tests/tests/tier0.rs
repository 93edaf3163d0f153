//! Tier 0: the Raft layer simulated with faults over many seeds (see `chaos_tests::sim`).
//!
//! `TIER0_SEED=N` runs one seed (replay); `TIER0_SEEDS=K` runs K seeds (default 100) from
//! `TIER0_FIRST_SEED` (default 1); `TIER0_STEPS` sets steps per seed; `TIER0_THREADS` how many
//! seeds run at once (default 2); `TIER0_VERBOSE=1` prints every action.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chaos_tests::sim::{run_seed, SeedFailure, SeedOutcome, SimConfig};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("TIER0_SEED") {
        return vec![seed];
    }
    let first = env_u64("TIER0_FIRST_SEED").unwrap_or(1);
    let count = env_u64("TIER0_SEEDS").unwrap_or(100);
    (first..first + count).collect()
}

/// Runs every seed on a few threads; returns outcomes and failures in seed order.
fn run_all(seeds: &[u64], config: &SimConfig) -> (Vec<SeedOutcome>, Vec<SeedFailure>) {
    let threads = env_u64("TIER0_THREADS").unwrap_or(2).max(1) as usize;
    let next = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(seeds.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(i) else { return };
                let r = run_seed(seed, config);
                match &r {
                    Ok(o) => eprintln!(
                        "seed {seed}: ok in {:.1}s wall, {:.0}s virtual; {} committed, {} acked ({} unknown), {} terms, {} crashes, {} partitions, {} snapshots installed, results {} accepted/{} refused",
                        o.wall.as_secs_f64(),
                        o.virtual_time.as_secs_f64(),
                        o.figures.committed,
                        o.figures.acked,
                        o.counts.unknown,
                        o.figures.terms,
                        o.counts.crashes,
                        o.counts.partitions,
                        o.figures.snapshots_installed,
                        o.figures.results_accepted,
                        o.figures.results_refused,
                    ),
                    Err(f) => eprintln!("{f}"),
                }
                results.lock().unwrap_or_else(|e| e.into_inner()).push((seed, r));
            });
        }
    });
    let mut all = results.into_inner().unwrap_or_else(|e| e.into_inner());
    all.sort_by_key(|(seed, _)| *seed);
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (_, r) in all {
        match r {
            Ok(o) => ok.push(o),
            Err(f) => failed.push(f),
        }
    }
    (ok, failed)
}

#[test]
fn raft_invariants_hold_under_faults_for_every_seed() {
    let mut config = SimConfig::default();
    if let Some(steps) = env_u64("TIER0_STEPS") {
        config.steps = steps as usize;
    }
    config.verbose = std::env::var_os("TIER0_VERBOSE").is_some();
    let seeds = seeds();
    let started = Instant::now();
    let (ok, failed) = run_all(&seeds, &config);
    let sum = |f: fn(&SeedOutcome) -> u64| ok.iter().map(f).sum::<u64>();
    eprintln!(
        "tier 0: {} seeds x {} steps in {:.1}s wall ({:.0}s virtual): {} committed entries, {} acked writes, {} crashes, {} partitions, {} snapshot installs, {} messages delivered, {} lost",
        seeds.len(),
        config.steps,
        started.elapsed().as_secs_f64(),
        ok.iter().map(|o| o.virtual_time.as_secs_f64()).sum::<f64>(),
        sum(|o| o.figures.committed),
        sum(|o| o.figures.acked),
        sum(|o| u64::from(o.counts.crashes)),
        sum(|o| u64::from(o.counts.partitions)),
        sum(|o| o.figures.snapshots_installed),
        sum(|o| o.net.delivered),
        sum(|o| o.net.lost),
    );
    eprintln!("{} passed, {} failed", ok.len(), failed.len());
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("\n{f}");
        }
        let list: Vec<String> = failed.iter().map(|f| f.seed.to_string()).collect();
        panic!(
            "{} of {} seeds failed: {}; replay one with TIER0_SEED=N cargo nextest run -p chaos-tests --test tier0",
            failed.len(),
            seeds.len(),
            list.join(", ")
        );
    }
}
