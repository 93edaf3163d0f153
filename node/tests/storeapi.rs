//! A querier reading store nodes over Thanos' StoreAPI (`strata query --endpoint`) answers
//! exactly as the embedded querier reading the same bucket; a store that stops turns into a
//! warning, not an error (partial response), or an error when partial response is off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;
mod storeapi_common;

use query_common::{StrataQuery, START};
use std::time::Duration;
use storage::testing::promtool_available;
use storeapi_common::*;

macro_rules! need_promtool {
    () => {
        if !promtool_available() {
            eprintln!("SKIPPED: promtool not on PATH");
            return;
        }
    };
}

fn endpoint_querier(work: &std::path::Path, stores: &[&StoreNode], extra: &[&str]) -> StrataQuery {
    let mut args: Vec<String> = stores
        .iter()
        .map(|s| format!("--endpoint={}", s.grpc))
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut q = StrataQuery::spawn(work, &a);
    q.wait_until("ready", Duration::from_secs(30), |q| {
        query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    q
}

#[test]
fn endpoint_querier_answers_like_the_embedded_querier() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, _) = bucket(tmp.path());
    let mut store = StoreNode::start(tmp.path(), "store", &bucket);
    let reference = embedded(tmp.path(), &bucket);
    store.wait_ready();
    let q = endpoint_querier(tmp.path(), &[&store], &[]);
    let paths = queries();
    let diff = differences(&reference, q.port, &paths);
    assert!(
        diff.is_empty(),
        "{} of {} answers differ; first:\n{}\nquerier log:\n{}",
        diff.len(),
        paths.len(),
        diff[0],
        q.log()
    );
    // The data really came over StoreAPI: the store's answers are not empty.
    let (_, j) = ask(q.port, &instant("count(http_requests_total)", START + 3600));
    assert_eq!(j["data"]["result"][0]["value"][1], "24", "{j}");
    assert!(j.get("warnings").is_none(), "{j}");
}

#[test]
fn a_stopped_store_is_a_warning_and_the_others_still_answer() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, _) = bucket(tmp.path());
    let mut a = StoreNode::start(tmp.path(), "store-a", &bucket);
    let mut b = StoreNode::start(tmp.path(), "store-b", &bucket);
    let reference = embedded(tmp.path(), &bucket);
    a.wait_ready();
    b.wait_ready();
    let q = endpoint_querier(tmp.path(), &[&a, &b], &[]);
    let strict = endpoint_querier(tmp.path(), &[&a, &b], &["--query.partial-response=false"]);
    let paths: Vec<String> = queries().into_iter().step_by(3).collect();
    // Two stores over one bucket: every series arrives twice and merges into one.
    let diff = differences(&reference, q.port, &paths);
    assert!(diff.is_empty(), "two stores of the same data: {}", diff[0]);

    b.kill();
    let path = range(
        "rate(http_requests_total[5m])",
        START,
        START + 6 * 3600,
        300,
    );
    let (reply, got) = ask(q.port, &path);
    let (_, want) = ask(reference.port, &path);
    assert_eq!(reply.status, 200, "{got}");
    assert_eq!(got["status"], "success", "{got}");
    assert_eq!(
        got["data"], want["data"],
        "store a still answers everything"
    );
    let warnings = got["warnings"].as_array().expect("warnings").clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains(&b.grpc)),
        "a warning names the stopped store {}: {warnings:?}",
        b.grpc
    );

    let (_, err) = ask(strict.port, &path);
    assert_eq!(err["status"], "error", "partial response off: {err}");
    assert!(
        err["error"].as_str().unwrap_or("").contains(&b.grpc),
        "the error names the store: {err}"
    );
}

#[test]
fn endpoint_flags_accept_store_as_the_deprecated_name_and_refuse_bad_addresses() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "query",
            "--http-address=127.0.0.1:0",
            "--grpc-address=127.0.0.1:0",
            "--endpoint=consul+_grpc._tcp.x:1",
        ])
        .output()
        .expect("run strata");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--endpoint") && err.contains("consul+"),
        "{err}"
    );

    // --store is accepted: with nothing listening the querier starts and warns per query.
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = storage::testing::prometheus::free_port().expect("port");
    let store_flag = format!("--store=127.0.0.1:{port}");
    let q = {
        let mut q = StrataQuery::spawn(tmp.path(), &[&store_flag]);
        q.wait_until("ready", Duration::from_secs(30), |q| {
            query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
        });
        q
    };
    let (_, j) = ask(q.port, &instant("up", START));
    assert_eq!(j["status"], "success", "{j}");
    assert_eq!(j["data"]["result"], serde_json::json!([]), "{j}");
    let w = j["warnings"].to_string();
    assert!(w.contains(&format!("127.0.0.1:{port}")), "{j}");
}
