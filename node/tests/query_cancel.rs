//! A real `strata query` keeps answering probes while a heavy query runs, and stops spending
//! CPU on that query soon after `--query.timeout` fires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::*;
use std::time::{Duration, Instant};
use storage::testing::promtool_available;

/// User plus system CPU time of `pid`, in clock ticks (/proc/<pid>/stat fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// Waits up to 10 s for half a second in which `pid` uses under 10% of a core.
fn wait_cpu_stops(pid: u32, after: &str, q: &StrataQuery) {
    let until = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let a = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(500));
        let grew = cpu_ticks(pid) - a;
        seen.push(grew);
        if grew < 5 {
            return;
        }
        assert!(
            Instant::now() < until,
            "CPU kept growing after {after} (ticks per 0.5 s: {seen:?})\n{}",
            q.log()
        );
    }
}

#[test]
fn probes_answer_during_a_heavy_query_and_cpu_stops_after_the_timeout() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    let data = tmp.path().join("strata");
    copy_blocks(&blocks, &data.join("bucket"));
    let data_arg = format!("--data-dir={}", data.display());
    let mut q = StrataQuery::spawn(tmp.path(), &[&data_arg, "--query.timeout=4s"]);
    q.wait_until("ready", Duration::from_secs(60), |q| {
        request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    let pid = q.pid().expect("running");
    // Hours of 100 ms subquery steps of a rate over every series, in a long chain: minutes of
    // work.
    // The terms differ (each its own quantile and offset) so that no evaluation can share work.
    let query = (0..50)
        .map(|i| {
            format!(
                "quantile_over_time(0.{i:02}, rate(http_requests_total[5m])[6h:100ms] offset {}s)",
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let port = q.port;
    let form = format!("query={}&time={}", enc(&query), START + 6 * 3600);
    let heavy = std::thread::spawn(move || post(port, "/api/v1/query", &form));
    let before = cpu_ticks(pid);
    // While it runs, the probes answer (the runtime is not blocked by evaluation).
    for path in ["/-/healthy", "/-/ready", "/metrics"] {
        let r = request(port, "GET", path, None).expect("probe answers");
        assert_eq!(r.status, 200, "{path} during a heavy query");
    }
    assert!(
        !heavy.is_finished(),
        "the heavy query ended before the probes were checked"
    );
    let reply = heavy.join().expect("query thread");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["errorType"], "timeout");
    assert_eq!(
        reply.json()["error"],
        "query timed out in expression evaluation"
    );
    let during = cpu_ticks(pid) - before;
    assert!(
        during > 50,
        "the query used only {during} ticks of CPU: not heavy"
    );
    // After the timeout, CPU use stops growing.
    wait_cpu_stops(pid, "the timeout", &q);
    assert_eq!(get(port, "/-/healthy").status, 200);
}

#[test]
fn a_client_that_disconnects_cancels_its_query() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    let data = tmp.path().join("strata");
    copy_blocks(&blocks, &data.join("bucket"));
    let q = StrataQuery::start_ready(tmp.path(), &data);
    let pid = q.pid().expect("running");
    // The terms differ (each its own quantile and offset) so that no evaluation can share work.
    let query = (0..50)
        .map(|i| {
            format!(
                "quantile_over_time(0.{i:02}, rate(http_requests_total[5m])[6h:100ms] offset {}s)",
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let body = format!("query={}&time={}", enc(&query), START + 6 * 3600);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", q.port)).expect("connect");
    write!(
        s,
        "POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    // Wait until the query is burning CPU, then go away without reading the answer.
    let until = Instant::now() + Duration::from_secs(30);
    let start = cpu_ticks(pid);
    while cpu_ticks(pid) - start < 50 {
        assert!(Instant::now() < until, "the query never used CPU");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(s);
    wait_cpu_stops(pid, "the client left", &q);
    assert_eq!(get(q.port, "/-/healthy").status, 200);
}
