//! Tier 0 for coordinated compaction (see `chaos_tests::sim::compact`): the job planner and the
//! lease protocol over a faulty model bucket, many seeds.
//!
//! `TIER0_COMPACT_SEED=N` replays one seed; `TIER0_COMPACT_SEEDS=K` runs K seeds (default 100)
//! from 1; `TIER0_COMPACT_STEPS` sets the faulty steps per seed (default 300).

use chaos_tests::sim::compact::{run_compaction_seed, CompactFigures};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

#[test]
fn compaction_jobs_keep_leases_exclusive_and_lose_no_sample_for_every_seed() {
    let seeds: Vec<u64> = match env_u64("TIER0_COMPACT_SEED") {
        Some(s) => vec![s],
        None => (1..=env_u64("TIER0_COMPACT_SEEDS").unwrap_or(100)).collect(),
    };
    let steps = env_u64("TIER0_COMPACT_STEPS").unwrap_or(300) as usize;
    let mut total = CompactFigures::default();
    let mut failures = Vec::new();
    for seed in &seeds {
        let started = std::time::Instant::now();
        let r = run_compaction_seed(*seed, steps, 10 * steps);
        eprintln!(
            "seed {seed}: {:.2}s: {r:?}",
            started.elapsed().as_secs_f64()
        );
        match r {
            Ok(f) => {
                total.compactions += f.compactions;
                total.refused += f.refused;
                total.reassigned += f.reassigned;
                total.faults += f.faults;
                total.ingested += f.ingested;
                total.duplicates_removed += f.duplicates_removed;
            }
            Err(v) => failures.push(v.to_string()),
        }
    }
    eprintln!(
        "{} seeds: {} blocks ingested, {} compactions committed, {} completions refused, {} leases reassigned, {} duplicate outputs removed, {} faults",
        seeds.len(),
        total.ingested,
        total.compactions,
        total.refused,
        total.reassigned,
        total.duplicates_removed,
        total.faults
    );
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The faults must actually have exercised the protocol, not just passed vacuously.
    assert!(
        total.compactions > 0 && total.refused > 0 && total.reassigned > 0,
        "{total:?}"
    );
}
