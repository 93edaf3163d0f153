//! What a node refuses: a second process on its data directory, a peer with the wrong secret;
//! and what `--cluster.bootstrap` next to an existing cluster does (forms a separate one-node
//! cluster and stays alone; it never becomes a second leader among the cluster's members).

mod cluster_common;

use cluster_common::{run_strata, wait_for, Cluster};
use std::time::Duration;

#[test]
fn a_second_process_on_the_same_data_dir_is_refused_naming_the_holder() {
    let mut c = Cluster::new(1);
    c.start(0, &["--cluster.bootstrap"]);
    c.wait_for_agreement(&[0], 1, Duration::from_secs(30));
    let data = c.nodes[0].data_dir.display().to_string();
    let secret = c.secret.display().to_string();
    let out = run_strata(&[
        "node",
        "--data-dir",
        &data,
        "--grpc-address",
        "127.0.0.1:0",
        "--http-address",
        "127.0.0.1:0",
        "--cluster.secret-file",
        &secret,
        "--cluster.bootstrap",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is in use by another process (pid "), "{err}");
    assert!(c.nodes[0].is_running());
}

#[test]
fn a_node_with_the_wrong_secret_is_refused_and_says_so() {
    let mut c = Cluster::new(2);
    c.start(0, &["--cluster.bootstrap"]);
    c.wait_for_agreement(&[0], 1, Duration::from_secs(30));
    let wrong = c.dir.path().join("wrong-secret");
    std::fs::write(&wrong, "a-different-secret-entirely\n").unwrap_or_else(|e| panic!("{e}"));
    // Node 1 starts with another secret file.
    c.secret = wrong;
    c.start(1, &[]);
    wait_for(
        Duration::from_secs(30),
        "the refused node to say so",
        || {
            c.nodes[1]
                .log_text()
                .contains("refused our cluster credentials")
                .then_some(())
        },
    );
    wait_for(
        Duration::from_secs(10),
        "the cluster to log the refusal",
        || {
            c.nodes[0]
                .log_text()
                .contains("refused unauthenticated cluster RPC")
                .then_some(())
        },
    );
    let members = c.nodes[0]
        .status()
        .and_then(|s| s["members"].as_array().map(Vec::len));
    assert_eq!(members, Some(1), "the refused node must not be a member");
    let s = c.nodes[1].status();
    assert!(
        s.as_ref().is_some_and(|s| s["leader_id"].is_null()),
        "the refused node must not bootstrap: {s:?}"
    );
}

#[test]
fn bootstrap_flag_next_to_an_existing_cluster_forms_a_separate_one_and_stays_alone() {
    let mut c = Cluster::new(3);
    c.start(0, &["--cluster.bootstrap"]);
    c.start(1, &[]);
    let leader = c.wait_for_agreement(&[0, 1], 2, Duration::from_secs(60));
    c.start(2, &["--cluster.bootstrap"]);
    let alone = wait_for(
        Duration::from_secs(30),
        "node 2 to lead its own cluster",
        || {
            c.nodes[2]
                .status()
                .filter(|s| s["leader_id"] == s["node_id"])
        },
    );
    assert_eq!(
        alone["members"].as_array().map(Vec::len),
        Some(1),
        "{alone}"
    );
    assert!(c.nodes[2]
        .log_text()
        .contains("bootstrapping a separate one-node cluster"));
    // The original cluster is untouched: same leader, two members, node 2 unknown to it.
    for i in [0, 1] {
        let s = c.nodes[i].status().unwrap_or_default();
        assert_eq!(s["leader_id"].as_u64(), Some(leader), "{s}");
        assert_eq!(s["members"].as_array().map(Vec::len), Some(2), "{s}");
    }
}
