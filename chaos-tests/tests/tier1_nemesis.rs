//! Tier 1, faults: a short seeded nemesis (leader isolation, majority/minority split, SIGKILL
//! and restart, SIGSTOP/SIGCONT, wall-clock bumps and strobes through libfaketime) against real
//! `strata node` clusters of 3 and 5 nodes formed from `dns+peers:10901`, with an observer
//! recording every node's leader, term, commit index and membership, a workload writing store
//! registry entries through the leader and a reader reading them linearizably. After healing,
//! the checkers must all pass. `TIER1_SECONDS` sets the nemesis time (default 60 s for 3 nodes:
//! one round of the six kinds, at 11 s a step, the last one cut to 5 s; 45 s for 5), `TIER1_SEED` replays a seed; `STRATA_CHAOS_KEEP=1`
//! keeps the history.

use chaos_tests::env::ready_or_skip;
use chaos_tests::strata::binary::strata_binary;
use chaos_tests::strata::node::NodeOptions;
use chaos_tests::strata::tier1::{run, Tier1Config};
use chaos_tests::Cluster;

fn nemesis_run(name: &str, nodes: u32, default_secs: u64) {
    if !ready_or_skip(name) {
        return;
    }
    let bin = strata_binary().unwrap_or_else(|e| panic!("{e}"));
    let cfg = Tier1Config::from_env(default_secs);
    println!(
        "{name}: seed {} (replay with TIER1_SEED={}), {} nodes, {:?} of faults",
        cfg.seed, cfg.seed, nodes, cfg.time_limit
    );
    let mut c = Cluster::new(name, nodes).unwrap_or_else(|e| panic!("cluster: {e}"));
    let mut opts = NodeOptions::new(bin, c.dir()).unwrap_or_else(|e| panic!("{e}"));
    // Workload entries get no heartbeats; keep them for the whole run.
    opts.extra = vec!["--cluster.store-expiry".into(), "1h".into()];
    let out = run(&mut c, &opts, &cfg)
        .unwrap_or_else(|e| panic!("{name} (seed {}) could not run: {e}", cfg.seed));
    println!(
        "formed in {:.1}s (leader {}, voters {:?})",
        out.formed.took.as_secs_f64(),
        out.formed.leader,
        out.formed.voters
    );
    println!("{}", out.summary());
    println!(
        "history: {} (kept on failure or with STRATA_CHAOS_KEEP=1)",
        out.history.display()
    );
    println!("seed {}\n{}", cfg.seed, out.report);
    assert!(
        out.reads.ok > 0,
        "no linearizable read returned (seed {})",
        cfg.seed
    );
    assert!(
        out.workload.acked > 0,
        "the workload never got a write acknowledged (seed {})",
        cfg.seed
    );
    assert!(
        out.report.is_valid(),
        "{name}: invariants violated with seed {} (TIER1_SEED={} replays the schedule)",
        cfg.seed,
        cfg.seed
    );
}

#[test]
fn three_nodes_keep_raft_invariants_under_a_seeded_nemesis() {
    nemesis_run("tier1-nemesis-3", 3, 60);
}

#[test]
fn five_nodes_keep_raft_invariants_under_a_seeded_nemesis() {
    nemesis_run("tier1-nemesis-5", 5, 45);
}
