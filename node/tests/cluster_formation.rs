//! Three `strata node` processes started with the same peer list form one cluster: one
//! leader, every member visible on every node (HTTP status, `strata cluster status`, metrics),
//! every store registered.

mod cluster_common;

use cluster_common::{http_get, run_strata, wait_for, Cluster};
use std::time::Duration;

#[test]
fn three_nodes_from_one_peer_list_form_one_cluster_visible_everywhere() {
    let mut c = Cluster::new(3);
    for i in 0..3 {
        c.start(i, &[]);
    }
    let leader = c.wait_for_agreement(&[0, 1, 2], 3, Duration::from_secs(60));

    let states: Vec<String> = (0..3)
        .map(|i| {
            c.nodes[i]
                .status()
                .map(|s| s["server_state"].to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        states.iter().filter(|s| s.contains("Leader")).count(),
        1,
        "{states:?}"
    );
    let leader_metrics = (0..3)
        .filter(|i| {
            http_get(&c.nodes[*i].http, "/metrics")
                .is_ok_and(|m| m.lines().any(|l| l == "strata_raft_leader 1"))
        })
        .count();
    assert_eq!(
        leader_metrics, 1,
        "exactly one node exports strata_raft_leader 1"
    );
    let m = http_get(&c.nodes[0].http, "/metrics").unwrap_or_default();
    for name in [
        "strata_raft_term ",
        "strata_raft_commit_index ",
        "strata_raft_applied_index ",
        "strata_cluster_members 3",
    ] {
        assert!(m.contains(name), "/metrics lacks {name}");
    }
    for n in &c.nodes {
        wait_for(Duration::from_secs(30), "/-/ready", || {
            http_get(&n.http, "/-/ready").ok()
        });
    }

    // Every node's store announcement reaches the registry (followers forward to the leader).
    let status = wait_for(Duration::from_secs(30), "three live stores", || {
        c.nodes[1].status().filter(|s| {
            s["stores"]
                .as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|x| x["live"] == true))
        })
    });
    let grpcs: Vec<String> = c.nodes.iter().map(|n| n.grpc.clone()).collect();
    for s in status["stores"].as_array().into_iter().flatten() {
        assert!(grpcs.contains(&s["address"].as_str().unwrap_or_default().to_string()));
    }

    // The CLI, over HTTP (table and JSON) and over the authenticated admin RPC.
    let out = run_strata(&["cluster", "status", "--http-address", &c.nodes[2].http]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains(&format!("leader {leader}")), "{table}");
    for n in &c.nodes {
        assert!(table.contains(&n.grpc), "{table}");
    }
    let out = run_strata(&[
        "cluster",
        "status",
        "--http-address",
        &c.nodes[0].http,
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["members"].as_array().map(Vec::len), Some(3), "{v}");
    assert_eq!(v["leader_id"].as_u64(), Some(leader));
    let li = c
        .index_of(leader)
        .unwrap_or_else(|| c.fail("leader is not one of the nodes"));
    let secret = c.secret.display().to_string();
    let out = run_strata(&[
        "cluster",
        "status",
        "--grpc-address",
        &c.nodes[li].grpc,
        "--cluster.secret-file",
        &secret,
    ]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("(Leader)"), "{table}");
    // On the leader, every member's lag is known.
    assert!(
        !table.contains("  -  "),
        "lag per node on the leader: {table}"
    );
}
