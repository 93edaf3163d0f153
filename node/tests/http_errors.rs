//! HTTP limits and error shapes as Prometheus users expect them, on a real `strata query`:
//! a 60 kB GET URL is answered, every client error is Prometheus' JSON envelope (404, 405,
//! 413), and an error quotes at most a bounded prefix of a long input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::{enc, get, request, StrataQuery};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A querier over an empty (existing) bucket.
fn querier(work: &std::path::Path) -> StrataQuery {
    let data = work.join("data");
    std::fs::create_dir_all(data.join("bucket")).expect("bucket dir");
    StrataQuery::start_ready(work, &data)
}

fn assert_error_shape(body: &str, status: u16, typ: &str) -> serde_json::Value {
    let j: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}"));
    assert_eq!(j["status"], "error", "{j}");
    assert_eq!(j["errorType"], typ, "{j}");
    assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    j
}

#[test]
fn a_60_kb_get_url_is_answered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let q = querier(tmp.path());
    // A long selector, as Grafana sends for a dashboard variable with many values.
    let values: Vec<String> = (0..6800).map(|i| format!("v{i:05}")).collect();
    let expr = format!("count(up{{instance=~\"{}\"}})", values.join("|"));
    let path = format!("/api/v1/query?query={}&time=1700000000", enc(&expr));
    assert!(path.len() > 60_000, "{}", path.len());
    let r = get(q.port, &path);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "success");
}

#[test]
fn client_errors_answer_in_prometheus_json_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let q = querier(tmp.path());

    let r = get(q.port, "/api/v1/no-such-endpoint");
    assert_eq!(r.status, 404);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_error_shape(&r.body, 404, "not_found");
    let r = get(q.port, "/nowhere");
    assert_eq!(r.status, 404);
    assert_error_shape(&r.body, 404, "not_found");

    let r = request(q.port, "PUT", "/api/v1/query", Some("query=up")).expect("PUT");
    assert_eq!(r.status, 405);
    let j = assert_error_shape(&r.body, 405, "bad_data");
    assert!(j["error"].as_str().unwrap().contains("405"), "{j}");
    let r = request(q.port, "DELETE", "/api/v1/labels", None).expect("DELETE");
    assert_eq!(r.status, 405);
    assert_error_shape(&r.body, 405, "bad_data");

    // A form body over Go's 10 MiB limit.
    let mut s = TcpStream::connect(("127.0.0.1", q.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let body = format!("query={}", "1".repeat(11 << 20));
    let head = format!(
        "POST /api/v1/query HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    // The server may answer and close before the whole body is sent.
    let _ = s.write_all(body.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (status_line, rest) = text.split_once("\r\n").expect("status line");
    let code: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(code == 413 || code == 400, "{status_line}");
    let (_, json) = rest.split_once("\r\n\r\n").expect("body");
    assert_error_shape(json, code, "bad_data");
}

#[test]
fn a_long_bad_matcher_is_quoted_only_in_part() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let q = querier(tmp.path());
    let long = "y".repeat(12_000);
    for selector in [
        format!("{{a=~\"({long}\"}}"),
        format!("{{a=\"{long}\" b}}"),
        format!("{long}{{"),
    ] {
        let r = get(
            q.port,
            &format!("/api/v1/series?match[]={}", enc(&selector)),
        );
        assert_eq!(r.status, 400, "{}", &r.body[..r.body.len().min(300)]);
        let j = assert_error_shape(&r.body, 400, "bad_data");
        let e = j["error"].as_str().unwrap();
        assert!(e.len() <= 1100, "{} chars: {}...", e.len(), &e[..300]);
    }
    // A bad query is cut the same way.
    let r = get(
        q.port,
        &format!("/api/v1/query?query={}", enc(&format!("{long}+"))),
    );
    assert_eq!(r.status, 400);
    let j = assert_error_shape(&r.body, 400, "bad_data");
    assert!(j["error"].as_str().unwrap().len() <= 1100, "{j}");
    // Short errors keep Prometheus' exact text.
    let r = get(q.port, "/api/v1/query?query=up&time=abc");
    assert_eq!(
        r.json()["error"],
        "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"abc\" to a valid timestamp"
    );
}
