//! Strata watching itself: real `strata store`, `strata query` (reading the store over the
//! StoreAPI) and `strata node` over demo data; after queries through them, each process'
//! `/metrics` carries the self-monitoring families with values that moved.

mod self_metrics_common;

use self_metrics_common::{
    generate, get, query_ok, wait_for, Proc, Scrape, BUILD_FAMILIES, PROCESS_FAMILIES,
};
use std::time::Duration;

#[test]
fn query_store_and_node_expose_self_metrics_that_grow_with_use() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = generate(work.path(), 6);
    let bucket = data.join("bucket");
    let bucket_flag = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );

    let store = Proc::start(
        work.path(),
        "store",
        &[
            "store",
            &bucket_flag,
            &format!("--data-dir={}", work.path().join("store-data").display()),
        ],
    );
    let query = Proc::start(
        work.path(),
        "query",
        &["query", &format!("--endpoint={}", store.grpc)],
    );
    let node = Proc::start(
        work.path(),
        "node",
        &[
            "node",
            &format!("--data-dir={}", data.display()),
            "--cluster.insecure",
            "--cluster.bootstrap",
        ],
    );
    for p in [&store, &query, &node] {
        p.wait_ready();
    }

    // The querier reaches the store once it has its Info; until then `up` is empty.
    let q = "count(up)";
    wait_for(
        Duration::from_secs(60),
        "the querier answering from the store",
        || query_ok(&query.http, q).filter(|n| *n > 0.0),
    );
    wait_for(
        Duration::from_secs(60),
        "the node answering from the bucket",
        || query_ok(&node.http, q).filter(|n| *n > 0.0),
    );

    let before = [&store, &query, &node].map(Scrape::of);
    // Label values travel as LabelValues calls; a range query as Series.
    for _ in 0..3 {
        query_ok(&query.http, "sum(rate(node_cpu_seconds_total[5m]))").expect("query via querier");
        query_ok(&node.http, "sum(rate(node_cpu_seconds_total[5m]))").expect("query via node");
    }
    get(&query.http, "/api/v1/label/instance/values").expect("label values via querier");
    let after = [&store, &query, &node].map(Scrape::of);
    let [store_before, query_before, node_before] = &before;
    let [store_after, query_after, node_after] = &after;

    for (name, s) in [
        ("store", store_after),
        ("query", query_after),
        ("node", node_after),
    ] {
        for family in PROCESS_FAMILIES {
            let v = s.value(family, &[]).unwrap_or_else(|| s.fail(name, family));
            assert!(v > 0.0, "{name}: {family} = {v}");
        }
        let rss = s.value("process_resident_memory_bytes", &[]).unwrap_or(0.0);
        assert!(rss > 1e6 && rss < 8e9, "{name}: resident memory {rss}");
        let fds = s.value("process_open_fds", &[]).unwrap_or(0.0);
        let max = s.value("process_max_fds", &[]).unwrap_or(0.0);
        assert!(fds >= 3.0 && fds <= max, "{name}: {fds} open fds of {max}");
        for family in BUILD_FAMILIES {
            assert!(s.value(family, &[]).is_some(), "{name}: {family}");
        }
        let revision = s
            .label("strata_build_info", "revision")
            .unwrap_or_else(|| s.fail(name, "strata_build_info"));
        assert_eq!(revision, expected_revision(), "{name}: build revision");
        // The scrapes themselves are HTTP requests of the one server.
        let scrapes = s
            .value(
                "http_requests_total",
                &[("handler", "/metrics"), ("code", "200")],
            )
            .unwrap_or_else(|| s.fail(name, "http_requests_total{handler=\"/metrics\"}"));
        assert!(scrapes >= 1.0, "{name}: {scrapes} scrapes counted");
    }

    // The store served Series and LabelValues; its gRPC server counted them, as OK.
    let series = [
        ("grpc_type", "server_stream"),
        ("grpc_service", "thanos.Store"),
        ("grpc_method", "Series"),
        ("grpc_code", "OK"),
    ];
    grew(
        store_before,
        store_after,
        "grpc_server_handled_total",
        &series,
        3.0,
    );
    grew(
        store_before,
        store_after,
        "grpc_server_started_total",
        &series[..3],
        3.0,
    );
    grew(
        store_before,
        store_after,
        "grpc_server_handling_seconds_count",
        &series[..3],
        3.0,
    );
    let label_values = [("grpc_method", "LabelValues"), ("grpc_code", "OK")];
    grew(
        store_before,
        store_after,
        "grpc_server_handled_total",
        &label_values,
        1.0,
    );
    // The store read chunks and index ranges from the bucket.
    let reads = store_after
        .sum("strata_objstore_bucket_operations_total", &[])
        .unwrap_or_else(|| store_after.fail("store", "strata_objstore_bucket_operations_total"));
    assert!(reads > 0.0, "store bucket operations: {reads}");
    // Failures have series only once one happened; durations are there.
    let timed = store_after
        .sum(
            "strata_objstore_bucket_operation_duration_seconds_count",
            &[],
        )
        .unwrap_or(0.0);
    assert!(timed > 0.0, "store bucket operations timed: {timed}");

    // The querier called the store as a client, and timed its queries in the engine.
    grew(
        query_before,
        query_after,
        "grpc_client_handled_total",
        &series,
        3.0,
    );
    grew(
        query_before,
        query_after,
        "grpc_client_handling_seconds_count",
        &series[..3],
        3.0,
    );
    let q_labels = [
        ("handler", "/api/v1/query"),
        ("code", "200"),
        ("method", "GET"),
    ];
    grew(
        query_before,
        query_after,
        "http_requests_total",
        &q_labels,
        3.0,
    );
    grew(
        query_before,
        query_after,
        "http_request_duration_seconds_count",
        &q_labels,
        3.0,
    );
    let inner = [("slice", "inner_eval")];
    grew(
        query_before,
        query_after,
        "prometheus_engine_query_duration_seconds_count",
        &inner,
        3.0,
    );
    grew(
        query_before,
        query_after,
        "prometheus_engine_query_duration_seconds_count",
        &[("slice", "queue_time")],
        3.0,
    );
    assert_eq!(
        query_after.value("prometheus_engine_queries_concurrent_max", &[]),
        Some(20.0),
        "--query.max-concurrent's default"
    );
    assert_eq!(
        query_after.value("prometheus_engine_queries", &[]),
        Some(0.0),
        "no query running"
    );

    // The node answers from the bucket itself: bucket operations, engine, HTTP; its gRPC
    // server carries Raft (a single voter sends no AppendEntries, but the metrics exist).
    grew(
        node_before,
        node_after,
        "http_requests_total",
        &q_labels,
        3.0,
    );
    grew(
        node_before,
        node_after,
        "prometheus_engine_query_duration_seconds_count",
        &inner,
        3.0,
    );
    let node_ops = node_after
        .sum("strata_objstore_bucket_operations_total", &[])
        .unwrap_or_else(|| node_after.fail("node", "strata_objstore_bucket_operations_total"));
    assert!(node_ops > 0.0, "node bucket operations: {node_ops}");
    assert_eq!(
        node_after.value("strata_raft_leader", &[]),
        Some(1.0),
        "a node of one leads"
    );
    let term = node_after.value("strata_raft_term", &[]).unwrap_or(0.0);
    assert!(term >= 1.0, "node: Raft term {term}");
}

#[test]
fn grpc_series_exist_before_any_call_and_a_store_nodes_bucket_operations_are_exposed() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = generate(work.path(), 2);
    // A node with the store role alone: the only role that reads its bucket.
    let node = Proc::start(
        work.path(),
        "store-node",
        &[
            "node",
            "--role=store",
            &format!("--data-dir={}", data.display()),
            "--cluster.insecure",
            "--cluster.bootstrap",
        ],
    );
    node.wait_ready();
    let first = Scrape::of(&node);
    // go-grpc-prometheus' InitializeMetrics: every method of every service served has its
    // series at start, handled for every code; nobody has called Series on this node.
    let codes = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    for code in codes {
        let series = [
            ("grpc_type", "server_stream"),
            ("grpc_service", "thanos.Store"),
            ("grpc_method", "Series"),
            ("grpc_code", code),
        ];
        assert_eq!(
            first.value("grpc_server_handled_total", &series),
            Some(0.0),
            "Series {code} at 0 before any call:\n{}",
            first.text
        );
    }
    for (service, method) in [
        ("thanos.Store", "LabelNames"),
        ("thanos.info.Info", "Info"),
        ("strata.raft.v1.RaftTransport", "AppendEntries"),
        ("strata.raft.v1.ClusterAdmin", "Join"),
        ("strata.node.v1.StoreRegistry", "Announce"),
    ] {
        let labels = [("grpc_service", service), ("grpc_method", method)];
        assert!(
            first.value("grpc_server_started_total", &labels).is_some(),
            "{service}/{method} started_total exists:\n{}",
            first.text
        );
        assert_eq!(
            first.value(
                "grpc_server_handled_total",
                &[labels[0], labels[1], ("grpc_code", "DataLoss")]
            ),
            Some(0.0),
            "{service}/{method} DataLoss at 0:\n{}",
            first.text
        );
    }
    // Methods of services this process does not serve are not made up.
    assert!(
        first
            .value(
                "grpc_server_handled_total",
                &[("grpc_service", "thanos.Rules")]
            )
            .is_none(),
        "no thanos.Rules on a store node:\n{}",
        first.text
    );

    // The store role's bucket reads count in the process' registry.
    let ops = wait_for(
        Duration::from_secs(60),
        "the store role's bucket operations on /metrics",
        || {
            Scrape::of(&node)
                .sum("strata_objstore_bucket_operations_total", &[])
                .filter(|n| *n > 0.0)
        },
    );
    assert!(ops > 0.0);
    let after = Scrape::of(&node);
    let listed = after
        .sum(
            "strata_objstore_bucket_operations_total",
            &[("operation", "iter")],
        )
        .unwrap_or(0.0)
        + after
            .sum(
                "strata_objstore_bucket_operations_total",
                &[("operation", "get")],
            )
            .unwrap_or(0.0);
    assert!(
        listed > 0.0,
        "the store read the bucket's metas or its index:\n{}",
        after.text
    );
}

/// A family whose matching series summed grew by at least `by` between two scrapes.
fn grew(before: &Scrape, after: &Scrape, family: &str, labels: &[(&str, &str)], by: f64) {
    let b = before.sum(family, labels).unwrap_or(0.0);
    let a = after
        .sum(family, labels)
        .unwrap_or_else(|| after.fail("process", family));
    assert!(
        a - b >= by,
        "{family}{labels:?} grew from {b} to {a}, expected +{by}"
    );
}

/// The revision the binary under test was built from: git's HEAD of this checkout (the build
/// script asks git the same and rebuilds when HEAD moves), else `unknown`.
fn expected_revision() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let rev = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert_eq!(rev.len(), 40, "git rev-parse HEAD: {rev}");
            rev
        }
        _ => "unknown".to_string(),
    }
}
