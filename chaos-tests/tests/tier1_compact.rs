//! Tier 1, coordinated compaction: three `strata node --role compact` processes, each in its
//! own network namespace and formed from `dns+peers:10901`, over one s3s-fs bucket (SigV4) on
//! the test's bridge address, holding two groups (`cluster="a"`, `cluster="b"`) of 24 h of
//! generated 2h blocks. Every job is held open 5 s by the node's fault point so the seeded
//! nemesis meets running jobs: SIGKILL of a job's worker, isolation of the worker, isolation of
//! the leader, and a bucket outage for the worker (see `chaos_tests::strata::compact`). After
//! healing the bucket must settle with no overlap and no duplicate output per group, each group
//! holding exactly the samples it had (read back through storage), struck jobs reassigned, at
//! most one valid lease per job, at most one leader per term.
//!
//! `TIER1_SEED` replays a seed's fault order and hold times; `TIER1_SECONDS` (default 30): after
//! one round of every kind, the nemesis keeps striking until that much time has passed; `TIER1_COMPACT_FAULTS=kill-worker,bucket-outage` picks
//! kinds; `STRATA_CHAOS_KEEP=1` keeps the history and logs.

use chaos_tests::env::ready_or_skip;
use chaos_tests::strata::binary::strata_binary;
use chaos_tests::strata::compact::bucket::TestBucket;
use chaos_tests::strata::compact::run::{run, CompactConfig};
use chaos_tests::strata::node::NodeOptions;
use chaos_tests::Cluster;
use storage::testing::s3::S3Server;

const ACCESS_KEY: &str = "AKIATIER1COMPACT";
const SECRET_KEY: &str = "tier1-compact-secret";

#[test]
fn compaction_jobs_survive_killed_and_isolated_workers_with_exact_samples() {
    let name = "tier1-compact";
    if !ready_or_skip(name) {
        return;
    }
    let bin = strata_binary().unwrap_or_else(|e| panic!("{e}"));
    let cfg = CompactConfig::from_env(30).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "{name}: seed {} (replay with TIER1_SEED={}), faults {:?} for {:?}",
        cfg.seed, cfg.seed, cfg.faults, cfg.time_limit
    );
    let mut c = Cluster::new(name, 3).unwrap_or_else(|e| panic!("cluster: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    // The test's end of the bridge: every node namespace reaches it, the root namespace too.
    let host = c.net().root_addr().into();
    let s3 = rt
        .block_on(S3Server::start_on(host, ACCESS_KEY, SECRET_KEY))
        .unwrap_or_else(|e| panic!("s3s-fs on {host}: {e}"));
    let bucket = TestBucket::new(&s3.yaml(SECRET_KEY, ""), (s3.host, s3.port), c.dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let scratch = c.dir().join("generate");
    for group in ["a", "b"] {
        bucket
            .generate(&bin, &scratch, group, cfg.hours)
            .unwrap_or_else(|e| panic!("generate group {group}: {e}"));
    }
    let opts = NodeOptions::new(bin, c.dir()).unwrap_or_else(|e| panic!("{e}"));
    let out = run(&mut c, &opts, &bucket, rt.handle(), &cfg)
        .unwrap_or_else(|e| panic!("{name} (seed {}) could not run: {e}", cfg.seed));
    println!("{}", out.summary());
    println!(
        "history: {} (kept on failure or with STRATA_CHAOS_KEEP=1)",
        out.history.display()
    );
    println!("seed {}\n{}", cfg.seed, out.report);
    assert!(
        !out.faults.is_empty(),
        "no fault met a running job (seed {})",
        cfg.seed
    );
    assert!(
        out.report.is_valid(),
        "{name}: invariants violated with seed {} (TIER1_SEED={} replays the schedule)",
        cfg.seed,
        cfg.seed
    );
    drop(s3);
}
