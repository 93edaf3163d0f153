//! Tier 1, clocks: a leader whose wall clock jumps two minutes ahead (libfaketime) must not
//! judge live stores dead. Before liveness was judged by the leader's own monotonic clock on
//! receipt, it compared heartbeat stamps written under the old time with its new time and
//! expired the whole registry within a second. Needs root, the chaos tools and libfaketime.

use std::time::{Duration, Instant};

use chaos_tests::env::ready_or_skip;
use chaos_tests::nemesis::{apply, Fault};
use chaos_tests::strata::binary::strata_binary;
use chaos_tests::strata::node::NodeOptions;
use chaos_tests::strata::observer::targets;
use chaos_tests::strata::reads::CONSISTENT_STORES;
use chaos_tests::strata::status::get_json;
use chaos_tests::strata::wait::wait_settled;
use chaos_tests::Cluster;

/// Every registry address the leader returns linearizably (`None`: no answer this time).
fn registry(target: &chaos_tests::strata::observer::Target) -> Option<Vec<String>> {
    let (code, v) = get_json(target.http, CONSISTENT_STORES, Duration::from_secs(3)).ok()?;
    let stores = v["data"]["stores"].as_array().filter(|_| code == 200)?;
    let mut all: Vec<String> = stores
        .iter()
        .filter_map(|s| s["address"].as_str().map(str::to_owned))
        .collect();
    all.sort();
    Some(all)
}

#[test]
fn a_leader_whose_wall_clock_jumps_ahead_keeps_every_live_store() {
    let name = "a_leader_whose_wall_clock_jumps_ahead_keeps_every_live_store";
    if !ready_or_skip(name) {
        return;
    }
    let bin = strata_binary().unwrap_or_else(|e| panic!("{e}"));
    let mut c = Cluster::new("tier1-clock", 3).unwrap_or_else(|e| panic!("cluster: {e}"));
    let mut opts = NodeOptions::new(bin, c.dir())
        .and_then(NodeOptions::with_fake_clock)
        .unwrap_or_else(|e| panic!("{e}"));
    // Heartbeats every second, dead after five: a two-minute jump is far past the expiry.
    opts.extra = [
        "--cluster.store-heartbeat-interval",
        "1s",
        "--cluster.store-expiry",
        "5s",
    ]
    .map(String::from)
    .to_vec();
    c.start_all(|n| opts.command(n))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let t = targets(&c);
    let settled = wait_settled(&t, 3, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    let leader = t
        .iter()
        .find(|x| x.id == settled.leader_node)
        .unwrap_or_else(|| panic!("leader {} is not a target", settled.leader_node));
    let mut want: Vec<String> = t.iter().map(|x| x.grpc.to_string()).collect();
    want.sort();

    let deadline = Instant::now() + Duration::from_secs(20);
    while registry(leader).as_ref() != Some(&want) {
        assert!(
            Instant::now() < deadline,
            "the three nodes' stores never all registered: {:?}",
            registry(leader)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let bump = Fault::ClockBump {
        offsets: vec![(settled.leader_node, 120_000)],
    };
    apply(&mut c, &bump).unwrap_or_else(|e| panic!("bump: {e}"));
    // Several leader duty ticks (1 s) and heartbeats, all under the skewed clock.
    let watch_until = Instant::now() + Duration::from_secs(6);
    let mut reads = 0;
    while Instant::now() < watch_until {
        match registry(leader) {
            Some(seen) => {
                reads += 1;
                assert_eq!(
                    seen, want,
                    "the leader, its clock 2 min ahead, dropped live stores"
                );
            }
            None => println!("registry read not answered"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(reads >= 5, "only {reads} registry reads answered");
    println!("{reads} reads under a +120 s leader clock: all three stores stayed registered");
}
