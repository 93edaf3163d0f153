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

/// Two of three voters restarted after the leader is gone, both with the same election timeout
/// (openraft draws one per instance; a 1000..1001 ms range pins it): whether a leader appears
/// within 60 s (virtual) depends only on whether their tick phases differ.
fn leader_after_restart_with_equal_timeouts(stagger: bool) -> Option<u64> {
    use chaos_tests::sim::invariants::Invariants;
    use chaos_tests::sim::net::Router;
    use chaos_tests::sim::node::{NodeOptions, SimNode};
    use openraft::ServerState;
    use std::sync::Arc;
    use std::time::Duration;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let router = Router::new(7);
        let inv = Arc::new(Invariants::default());
        let opts = NodeOptions {
            timeouts: raft::Timeouts {
                election_min: Duration::from_millis(1000),
                election_max: Duration::from_millis(1001),
                ..raft::Timeouts::default()
            },
            snapshot_every: 1000,
            origin: tokio::time::Instant::now(),
        };
        let member = |id: u64| raft::Member {
            node_id: id,
            grpc_address: chaos_tests::sim::node::address(id),
            http_address: format!("node-{id}:10902"),
            roles: Default::default(),
            software_version: "tier0".into(),
            protocol_version: raft::PROTOCOL_VERSION,
            joined_at_ms: 0,
        };
        let mut nodes: Vec<SimNode> = (1..=3).map(|id| SimNode::new(id, dir.path())).collect();
        for n in nodes.iter_mut() {
            n.start(&router, &inv, opts, &[]).await.expect("start");
        }
        let first = nodes[0].node().cloned().expect("node 1 runs");
        first.initialize(member(1)).await.expect("bootstrap");
        for id in [2, 3] {
            let a = first.admit(member(id)).await.expect("admit");
            assert!(a.voter, "node {id} became a voter");
        }
        // Equal logs too, so that neither candidate defers to the other's longer log.
        let last = first.raft().metrics().borrow().last_log_index;
        for n in &nodes[1..] {
            let node = n.node().expect("running");
            node.raft()
                .wait(Some(Duration::from_secs(10)))
                .applied_index(last, "follower caught up")
                .await
                .expect("caught up");
        }
        for n in nodes.iter_mut() {
            n.crash(&router).await;
        }
        // Restart 2 and 3 at one instant (empty `taken`: no phase avoidance), or with 3 kept
        // clear of 2's phase as the driver does.
        nodes[1]
            .start(&router, &inv, opts, &[])
            .await
            .expect("restart 2");
        let taken: Vec<u64> = if stagger {
            nodes[1].phase.into_iter().collect()
        } else {
            Vec::new()
        };
        nodes[2]
            .start(&router, &inv, opts, &taken)
            .await
            .expect("restart 3");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut leader = None;
        while tokio::time::Instant::now() < deadline && leader.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            leader = nodes[1..]
                .iter()
                .filter_map(|n| n.node())
                .find(|n| n.raft().metrics().borrow().state == ServerState::Leader)
                .map(|n| n.id());
        }
        for n in nodes.iter_mut() {
            n.crash(&router).await;
        }
        leader
    })
}

#[test]
fn voters_started_at_one_instant_with_equal_timeouts_never_elect() {
    // The simulation artefact behind the old "removal unfinished after healing" failures: on a
    // paused clock the two candidates tick, campaign and vote for themselves at the same
    // instants for ever. If openraft starts drawing a timeout per election, this may elect and
    // the test should be dropped together with the phase spreading in `sim::phase`.
    assert_eq!(leader_after_restart_with_equal_timeouts(false), None);
}

#[test]
fn voters_with_distinct_tick_phases_elect_despite_equal_timeouts() {
    assert!(leader_after_restart_with_equal_timeouts(true).is_some());
}
