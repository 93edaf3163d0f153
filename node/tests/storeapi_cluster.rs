//! In a cluster, a query node finds the store through the Raft store registry alone (no
//! `--endpoint`): its own bucket is empty, yet it answers from the store node's bucket. The
//! store node also runs the query role and answers the same from its own blocks in process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_common;
mod query_common;
mod storeapi_common;

use cluster_common::Cluster;
use std::time::Duration;
use storage::testing::promtool_available;
use storeapi_common::*;

#[test]
fn query_node_reads_a_store_found_only_through_the_registry() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let mut c = Cluster::new(2);
    let work = c.dir.path().to_path_buf();
    let (bucket, _) = bucket(&work);
    let store_bucket = bucket_flag(&bucket);
    c.start(0, &["--role", "store,query", &store_bucket]);
    // The query node's own (embedded) bucket is its empty default under its data directory.
    c.start(1, &["--role", "query"]);
    c.wait_for_agreement(&[0, 1], 2, Duration::from_secs(60));

    let reference = embedded(&work, &bucket);
    let port_of = |i: usize| -> u16 {
        c.nodes[i]
            .http
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("http port")
    };
    let paths: Vec<String> = queries().into_iter().step_by(2).collect();
    wait_for_same_answers(&reference, port_of(0), &paths);
    let port = port_of(1);
    wait_for_same_answers(&reference, port, &paths);
    let (_, j) = ask(
        port,
        &instant("count(http_requests_total)", query_common::START + 3600),
    );
    assert_eq!(j["data"]["result"][0]["value"][1], "24", "{j}");
    assert!(j.get("warnings").is_none(), "{j}");
}
