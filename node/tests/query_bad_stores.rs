//! Each kind of bad store on its own beside a good one: nothing listening, a listener that never
//! answers, and one that answers garbage. Every query kind (instant, range, series, labels)
//! answers with the good store's data and a warning naming the bad one, or with
//! `partial_response=false` fails naming it, bounded by `--store.response-timeout` (a hang would
//! run into the test client's read timeout long before `--query.timeout`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;
mod storeapi_common;

use query_common::{enc, StrataQuery, START};
use std::time::Duration;
use storage::testing::prometheus::free_port;
use storage::testing::promtool_available;
use storeapi_common::*;

/// A TCP endpoint that holds every connection open, writing `junk` first if given.
fn bad_endpoint(junk: Option<&'static [u8]>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().flatten() {
            if let Some(j) = junk {
                let _ = std::io::Write::write_all(&mut conn, j);
            }
            held.push(conn);
        }
    });
    addr
}

#[test]
fn each_bad_store_is_a_warning_or_with_partial_response_off_an_error_naming_it() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, _) = bucket(tmp.path());
    let mut store = StoreNode::start(tmp.path(), "store", &bucket);
    store.wait_ready();
    let kinds = [
        (
            "unreachable",
            format!("127.0.0.1:{}", free_port().expect("port")),
        ),
        ("silent", bad_endpoint(None)),
        (
            "lying",
            bad_endpoint(Some(
                b"\x00\x00\x00\x00\x12garbage, not HTTP/2 at all\xff\xfe",
            )),
        ),
    ];
    let (t0, t1) = (START + 3600, START + 7200);
    for (kind, bad) in &kinds {
        let mut q = StrataQuery::spawn(
            tmp.path(),
            &[
                &format!("--grpc-address=127.0.0.1:{}", free_port().expect("port")),
                &format!("--endpoint={}", store.grpc),
                &format!("--endpoint={bad}"),
                "--store.response-timeout=2s",
                "--query.timeout=5m",
            ],
        );
        q.wait_until("ready", Duration::from_secs(60), |q| {
            query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
        });
        // Each call with what the good store's data puts in its answer.
        let calls = [
            (instant("count(http_requests_total)", t0), "\"24\""),
            (range("count(http_requests_total)", t0, t1, 600), "\"24\""),
            (
                format!(
                    "/api/v1/series?match[]={}&start={t0}&end={t1}",
                    enc("http_requests_total")
                ),
                "\"http_requests_total\"",
            ),
            (
                format!("/api/v1/labels?start={t0}&end={t1}"),
                "\"__name__\"",
            ),
        ];
        for (call, want) in &calls {
            let (r, j) = ask(q.port, call);
            assert_eq!(
                (r.status, &j["status"]),
                (200, &"success".into()),
                "{kind} {call}: {j}"
            );
            assert!(
                j["warnings"].to_string().contains(bad.as_str()),
                "{kind} {call}: a warning names {bad}: {j}"
            );
            assert!(
                j["data"].to_string().contains(want),
                "{kind} {call}: the good store's data ({want}) is there: {j}"
            );
            let (r, j) = ask(q.port, &format!("{call}&partial_response=false"));
            assert_eq!(j["status"], "error", "{kind} {call}: {j}");
            assert!(r.status >= 400, "{kind} {call}: {} {j}", r.status);
            assert!(
                j["error"]
                    .as_str()
                    .is_some_and(|e| e.contains(bad.as_str())),
                "{kind} {call}: the error names {bad}: {j}"
            );
        }
        let status = q.terminate(Duration::from_secs(30));
        assert!(status.success(), "{kind}: clean exit on SIGTERM: {status}");
    }
}
