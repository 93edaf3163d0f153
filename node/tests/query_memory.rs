//! Memory of a real `strata query` process: a heavy query stops at `--query.max-samples` with
//! Prometheus' error, its peak stays within what the flag allows, and the resident set comes
//! back near where it started once the query is over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::*;
use std::time::Duration;
use storage::testing::promtool_available;

const MB: u64 = 1 << 20;

/// `VmRSS` and `VmHWM` (peak RSS) of `pid`, in bytes.
fn rss_and_peak(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn resident_memory_comes_back_after_a_query_stopped_by_max_samples() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    let data = tmp.path().join("strata");
    copy_blocks(&blocks, &data.join("bucket"));
    let data_arg = format!("--data-dir={}", data.display());
    let mut q = StrataQuery::spawn(tmp.path(), &[&data_arg, "--query.max-samples=5000000"]);
    q.wait_until("ready", Duration::from_secs(60), |q| {
        request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    let pid = q.pid().expect("running");
    let range = |query: &str| {
        let form = format!(
            "query={}&start={}&end={}&step=15",
            enc(query),
            START,
            START + HOURS * 3600
        );
        post(q.port, "/api/v1/query_range", &form)
    };
    // Warm up: blocks opened, caches and thread pools made, as before any real query.
    let light = range("sum(rate(http_requests_total[5m]))");
    assert_eq!(light.status, 200, "{}", light.body);
    let (start_rss, start_peak) = rss_and_peak(pid);

    // Every distinct counter value is a series of its own: count_values holds only their
    // points (and answers, as Prometheus does), but `sum` takes them as series of 1441 steps
    // each, about 125 million samples, where the limit is 5 million (80 MB of 16-byte cells).
    let heavy = range(r#"sum by (v) (count_values("v", {__name__=~".+"}))"#);
    assert_eq!(heavy.status, 422, "{}", heavy.body);
    assert_eq!(
        heavy.json(),
        serde_json::json!({
            "status": "error",
            "errorType": "execution",
            "error": "query processing would load too many samples into memory in query execution"
        })
    );
    let (_, peak) = rss_and_peak(pid);
    assert!(
        // count_values' sparse output (label sets and points) is what it holds before `sum`
        // is refused: about 12 MB here (the dense form is refused before it is allocated).
        peak >= start_peak.max(start_rss) + 8 * MB,
        "the query should have held several MB before the limit stopped it: peak {peak}, start {start_rss}"
    );
    assert!(
        peak < start_rss + 600 * MB,
        "peak {peak} is far over what 5 million samples need (start {start_rss})"
    );
    // The freed pages go back to the OS (jemalloc purges them after its decay time).
    let bound = 2 * start_rss + 32 * MB;
    q.wait_until("RSS back near its start", Duration::from_secs(90), |_| {
        rss_and_peak(pid).0 <= bound
    });
    let (after, _) = rss_and_peak(pid);
    eprintln!(
        "RSS start {} MiB, peak {} MiB, after {} MiB",
        start_rss / MB,
        peak / MB,
        after / MB
    );
}
