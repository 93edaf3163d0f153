//! Leader loss and graceful leave (`strata cluster leave`, SIGTERM) on a 3-node cluster of
//! real processes.

mod cluster_common;

use cluster_common::{run_strata, wait_for, Cluster};
use std::time::{Duration, Instant};

#[test]
fn killing_the_leader_elects_a_new_one_and_the_restarted_node_rejoins() {
    let mut c = Cluster::new(3);
    for i in 0..3 {
        c.start(i, &[]);
    }
    let old = c.wait_for_agreement(&[0, 1, 2], 3, Duration::from_secs(60));
    let li = c
        .index_of(old)
        .unwrap_or_else(|| c.fail("leader not found"));
    let old_term = c.nodes[li]
        .status()
        .and_then(|s| s["term"].as_u64())
        .unwrap_or(0);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != li).collect();

    let killed = Instant::now();
    c.nodes[li].kill();
    let new = wait_for(
        Duration::from_secs(15),
        "a new leader the survivors agree on",
        || {
            let views: Vec<Option<(u64, u64)>> = survivors
                .iter()
                .map(|i| {
                    c.nodes[*i]
                        .status()
                        .and_then(|s| Some((s["leader_id"].as_u64()?, s["term"].as_u64()?)))
                })
                .collect();
            match views.as_slice() {
                [Some(a), Some(b)] if a == b && a.0 != old => Some(*a),
                _ => None,
            }
        },
    );
    eprintln!(
        "new leader {} in term {} after {:?}",
        new.0,
        new.1,
        killed.elapsed()
    );
    assert!(new.1 > old_term);

    c.restart(li);
    let leader = c.wait_for_agreement(&[0, 1, 2], 3, Duration::from_secs(60));
    assert_ne!(
        leader, old,
        "the restarted node must not have taken over by force"
    );
    assert_eq!(
        c.nodes[li].id(),
        Some(old),
        "the node id is kept in the data directory"
    );
    // It catches up: its applied index reaches what the leader had committed.
    let target = c.nodes[c.index_of(leader).unwrap_or(0)]
        .status()
        .and_then(|s| s["commit_index"].as_u64())
        .unwrap_or(0);
    wait_for(
        Duration::from_secs(30),
        "the restarted node to catch up",
        || {
            c.nodes[li]
                .status()
                .and_then(|s| s["applied_index"].as_u64())
                .filter(|a| *a >= target)
        },
    );
}

#[test]
fn cluster_leave_removes_the_leader_and_another_takes_over() {
    let mut c = Cluster::new(3);
    for i in 0..3 {
        c.start(i, &[]);
    }
    let old = c.wait_for_agreement(&[0, 1, 2], 3, Duration::from_secs(60));
    let li = c
        .index_of(old)
        .unwrap_or_else(|| c.fail("leader not found"));
    let secret = c.secret.display().to_string();
    let out = run_strata(&[
        "cluster",
        "leave",
        "--grpc-address",
        &c.nodes[li].grpc,
        "--cluster.secret-file",
        &secret,
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rest: Vec<usize> = (0..3).filter(|i| *i != li).collect();
    let new = c.wait_for_agreement(&rest, 2, Duration::from_secs(20));
    assert_ne!(new, old);
    // The node that left keeps running (leave is not shutdown) and is not re-added.
    assert!(c.nodes[li].is_running());
    std::thread::sleep(Duration::from_millis(1500));
    let members = c.nodes[rest[0]]
        .status()
        .and_then(|s| s["members"].as_array().map(Vec::len));
    assert_eq!(members, Some(2));
}

#[test]
fn sigterm_of_the_leader_hands_over_leaves_and_exits_and_the_node_can_rejoin() {
    let mut c = Cluster::new(3);
    for i in 0..3 {
        c.start(i, &[]);
    }
    let old = c.wait_for_agreement(&[0, 1, 2], 3, Duration::from_secs(60));
    let li = c
        .index_of(old)
        .unwrap_or_else(|| c.fail("leader not found"));
    let old_term = c.nodes[li]
        .status()
        .and_then(|s| s["term"].as_u64())
        .unwrap_or(0);
    let rest: Vec<usize> = (0..3).filter(|i| *i != li).collect();

    let clean = c.nodes[li].terminate(Duration::from_secs(30));
    assert!(clean, "SIGTERM ends the node with success after leaving");
    let new = c.wait_for_agreement(&rest, 2, Duration::from_secs(20));
    assert_ne!(new, old);
    let term = c.nodes[rest[0]]
        .status()
        .and_then(|s| s["term"].as_u64())
        .unwrap_or(0);
    assert_eq!(
        term,
        old_term + 1,
        "the handover's successor won the next term"
    );
    let log = c.nodes[li].log_text();
    assert!(
        log.contains("leadership handed over"),
        "the leader did not hand over: {log}"
    );

    // The node that left joins again on restart, from its own data directory.
    c.restart(li);
    c.wait_for_agreement(&[0, 1, 2], 3, Duration::from_secs(60));
    assert_eq!(c.nodes[li].id(), Some(old));
}
