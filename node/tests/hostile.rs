//! Issue 12's hostile-input suite: hostile queries, requests and damaged buckets against a real
//! `strata query` over demo data from `strata tools bucket generate`. Every case asserts a
//! clear error or a correct answer, and afterwards that the process is alive, `/-/healthy`
//! answers and RSS stayed under `hostile_common::RSS_BOUND_KB` (2 GiB).
//!
//! Expected status codes and error types come from Prometheus 2.42 (Debian's `prometheus`)
//! asked the same requests over copies of the same blocks (`--config.file=/dev/null`), noted at
//! each case as "Prometheus:". Where Strata is asked to do better than Prometheus (a bounded
//! error message, no crash where Prometheus runs out of memory) the case says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hostile_common;

use hostile_common::*;
use promql::depth::MAX_OPERATORS;
use serde_json::Value as Json;
use std::time::{Duration, Instant};

/// Demo data of the suite: the issue's shape (10 hosts, 24 h at 15 s, 13 blocks).
const HOURS: i64 = 24;
const INSTANCES: usize = 10;

fn data_flag(demo: &Demo) -> String {
    format!("--data-dir={}", demo.data_dir.display())
}

fn query_at(q: &Querier, expr: &str, time: i64) -> Result<Answer, String> {
    post_form(
        q.port,
        "/api/v1/query",
        &format!("query={}&time={time}", enc(expr)),
    )
}

/// A vector of `n` series, each with value `v`, that have (or lack) `__name__`.
fn expect_vector(a: &Answer, n: usize, v: &str, named: bool) -> Result<(), String> {
    let data = expect_success(a)?;
    let r = data["result"].as_array().ok_or("no result array")?;
    if data["resultType"] != "vector" || r.len() != n {
        return Err(format!("want {n} series, got {}", a.short()));
    }
    for s in r {
        if s["value"][1] != v || s["metric"].get("__name__").is_some() != named {
            return Err(format!("want value {v} (named: {named}), got {s}"));
        }
    }
    Ok(())
}

/// Either the correct answer or Prometheus' 400 `bad_data` (a documented limit).
fn answer_or_bad_data(
    a: &Answer,
    check: impl Fn(&Answer) -> Result<(), String>,
) -> Result<(), String> {
    if a.status == 400 {
        return expect_error(a, 400, "bad_data").map(|_| ());
    }
    check(a)
}

#[test]
fn deep_nesting_is_answered_like_prometheus() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let (t, n) = (demo.end, demo.instances);
    let mut cases = Cases::new(&mut q);
    // Prometheus: 200, the 10 `up` series.
    cases.case("parens_6000", |q| {
        let e = format!("{}up{}", "(".repeat(6000), ")".repeat(6000));
        answer_or_bad_data(&query_at(q, &e, t)?, |a| expect_vector(a, n, "1", true))
    });
    // Prometheus: 200, 10 series without a name.
    cases.case("abs_2000", |q| {
        let e = format!("{}up{}", "abs(".repeat(2000), ")".repeat(2000));
        answer_or_bad_data(&query_at(q, &e, t)?, |a| expect_vector(a, n, "1", false))
    });
    // Prometheus: 200, scalar 10000 (it parsed for seconds). Strata refuses chains of more
    // than `MAX_OPERATORS` operators before parsing: its parser's time grows with the square
    // of the chain and cannot be interrupted (issue 12 item 2).
    cases.case(
        "one_plus_one_10000_is_refused_beyond_the_operator_limit",
        |q| {
            let e = vec!["1"; 10_000].join("+");
            let a = query_at(q, &e, t)?;
            expect_error(&a, 400, "bad_data")?;
            let want = format!("too many operators: more than {MAX_OPERATORS}");
            if !a.text().contains(&want) {
                return Err(format!("refusal does not name the limit: {}", a.short()));
            }
            Ok(())
        },
    );
    cases.case("one_plus_one_at_the_operator_limit", |q| {
        let e = vec!["1"; MAX_OPERATORS + 1].join("+");
        let d = expect_success(&query_at(q, &e, t)?)?;
        let want = (MAX_OPERATORS + 1).to_string();
        if d["resultType"] == "scalar" && d["result"][1] == want.as_str() {
            Ok(())
        } else {
            Err(format!("want scalar {want}, got {d}"))
        }
    });
    cases.finish();
}

/// One parameter case: path, expected status and errorType, and a part of the message.
struct Param {
    name: &'static str,
    path: String,
    status: u16,
    error_type: &'static str,
    part: &'static str,
}

#[test]
fn bad_parameters_get_prometheus_errors() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let t = demo.end;
    let range = |extra: &str| format!("/api/v1/query_range?query=up&{extra}");
    let span = format!("start={}&end={t}", t - 3600);
    let p = |name, path: String, part| Param {
        name,
        path,
        status: 400,
        error_type: "bad_data",
        part,
    };
    // 400 bad_data naming the parameter. Prometheus answers the same except where noted.
    let params = [
        p(
            "empty_query",
            "/api/v1/query?query=".into(),
            "no expression found in input",
        ),
        p(
            "missing_query",
            "/api/v1/query".into(),
            "no expression found in input",
        ),
        p(
            "negative_step",
            range(&format!("{span}&step=-1")),
            "zero or negative query resolution step",
        ),
        p(
            "zero_step",
            range(&format!("{span}&step=0")),
            "zero or negative query resolution step",
        ),
        // Prometheus: the "zero or negative" message for NaN; Strata says it cannot parse it.
        p(
            "nan_step",
            range(&format!("{span}&step=NaN")),
            "invalid parameter \"step\"",
        ),
        p(
            "inf_step",
            range(&format!("{span}&step=Inf")),
            "invalid parameter \"step\"",
        ),
        p(
            "huge_step",
            range(&format!("{span}&step=1e300")),
            "invalid parameter \"step\"",
        ),
        p(
            "step_overflowing_ns",
            range(&format!("{span}&step=1e18")),
            "invalid parameter \"step\"",
        ),
        p(
            "start_after_end",
            range(&format!("start={t}&end={}&step=15", t - 3600)),
            "end timestamp must not be before start time",
        ),
        p(
            "too_many_points",
            range(&format!("start={}&end={t}&step=1", t - 86_400)),
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        // Prometheus 2.42 answers these four with 200 and an empty vector, a silent wrong
        // answer; the issue's bar is a clear error, which Strata gives.
        p(
            "nan_time",
            "/api/v1/query?query=up&time=NaN".into(),
            "invalid parameter \"time\"",
        ),
        p(
            "huge_time",
            "/api/v1/query?query=up&time=1e30".into(),
            "invalid parameter \"time\"",
        ),
        p(
            "huge_negative_time",
            "/api/v1/query?query=up&time=-1e30".into(),
            "invalid parameter \"time\"",
        ),
        p(
            "inf_time",
            "/api/v1/query?query=up&time=Inf".into(),
            "invalid parameter \"time\"",
        ),
        // Prometheus: 400 "exceeded maximum resolution"; Strata names the parameter.
        p(
            "nan_start",
            range(&format!("start=NaN&end={t}&step=15")),
            "invalid parameter \"start\"",
        ),
        // Prometheus: 200 with an empty matrix (silently wrong); held to the 400.
        p(
            "huge_range",
            range("start=-1e30&end=1e30&step=15"),
            "invalid parameter \"start\"",
        ),
        // Prometheus refuses the step, Strata the start; either names a parameter.
        p(
            "i64_range",
            range("start=-9223372036854775808&end=9223372036854775807&step=1e15"),
            "invalid parameter",
        ),
        p(
            "negative_timeout",
            "/api/v1/query?query=up&timeout=-1s".into(),
            "invalid parameter \"timeout\"",
        ),
        p(
            "bad_timeout",
            "/api/v1/query?query=up&timeout=abc".into(),
            "invalid parameter \"timeout\"",
        ),
    ];
    let mut cases = Cases::new(&mut q);
    for c in &params {
        cases.case(c.name, |q| {
            expect_error_with(&get(q.port, &c.path)?, c.status, c.error_type, c.part)
        });
    }
    // Prometheus: 200; unknown parameters are ignored.
    cases.case("unknown_parameters", |q| {
        let a = get(
            q.port,
            &format!("/api/v1/query?query=up&time={t}&foo=bar&step=x"),
        )?;
        expect_vector(&a, demo.instances, "1", true)
    });
    // Prometheus: 404 and 405 with plain-text bodies; only the codes are held here.
    cases.case("unknown_api_path", |q| {
        let a = get(q.port, "/api/v1/nonexistent")?;
        (a.status == 404)
            .then_some(())
            .ok_or(format!("status {}", a.status))
    });
    cases.case("wrong_method", |q| {
        let a = http(q.port, "PUT", "/api/v1/query", &[], b"query=up")?;
        (a.status == 405)
            .then_some(())
            .ok_or(format!("status {}", a.status))
    });
    cases.finish();
}

/// Either a refusal (400 bad_data, "illegal regex") or the correct answer, which for selectors
/// matching no metric of the demo data is an empty vector.
fn refused_or_empty(a: &Answer) -> Result<(), String> {
    answer_or_bad_data(a, |a| expect_vector(a, 0, "", true))
}

#[test]
fn regex_bombs_are_answered_or_refused() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let (t, n) = (demo.end, demo.instances);
    let mut cases = Cases::new(&mut q);
    // Prometheus: 200, empty (RE2 is linear, as is Rust's regex).
    cases.case("nested_plus", |q| {
        expect_vector(&query_at(q, r#"{__name__=~"(a+)+b"}"#, t)?, 0, "", true)
    });
    cases.case("star_of_alternation_repeated", |q| {
        expect_vector(
            &query_at(q, r#"{__name__=~"((a|b|c|d|e)*x){1000}"}"#, t)?,
            0,
            "",
            true,
        )
    });
    // Prometheus: 400 bad_data, the selector matches the empty name.
    cases.case("dot_star_1000", |q| {
        expect_error_with(
            &query_at(q, r#"{__name__=~"(.*){1000}"}"#, t)?,
            400,
            "bad_data",
            "non-empty matcher",
        )
    });
    // Both: 400 bad_data "invalid repeat count".
    cases.case("repeat_over_1000", |q| {
        expect_error(
            &query_at(q, r#"{__name__=~"(.*){1001}"}"#, t)?,
            400,
            "bad_data",
        )
        .map(|_| ())
    });
    // Prometheus: 400 bad_data "invalid repeat count" (RE2 caps the product of repeats);
    // Strata: "illegal regex".
    cases.case("nested_repeats", |q| {
        expect_error(
            &query_at(q, r#"{__name__=~"((a{1000}){1000}){1000}"}"#, t)?,
            400,
            "bad_data",
        )
        .map(|_| ())
    });
    // Prometheus: 200, empty; Strata refuses these with "illegal regex" (Rust's regex size
    // limit). Both are held.
    cases.case("unicode_class_repeats", |q| {
        refused_or_empty(&query_at(q, r#"{__name__=~"(\w{100}){10}"}"#, t)?)
    });
    cases.case("alternation_50000", |q| {
        let alt: Vec<String> = (0..50_000).map(|i| format!("metric_{i}")).collect();
        refused_or_empty(&query_at(
            q,
            &format!("{{__name__=~\"{}\"}}", alt.join("|")),
            t,
        )?)
    });
    // Prometheus: 400 bad_data "expression nests too deeply".
    cases.case("regex_nesting_10000", |q| {
        let e = format!(
            "up{{job=~\"{}node{}\"}}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        expect_error(&query_at(q, &e, t)?, 400, "bad_data").map(|_| ())
    });
    // Prometheus: 200, the 10 `up` series.
    cases.case("regex_nesting_200", |q| {
        let e = format!("up{{job=~\"{}node{}\"}}", "(".repeat(200), ")".repeat(200));
        expect_vector(&query_at(q, &e, t)?, n, "1", true)
    });
    // Prometheus: 200, empty.
    cases.case("label_matchers_10000", |q| {
        let m: Vec<String> = (0..10_000).map(|i| format!("l{i}=\"x\"")).collect();
        expect_vector(
            &query_at(q, &format!("up{{{}}}", m.join(",")), t)?,
            0,
            "",
            true,
        )
    });
    cases.finish();
}

/// Sends `raw` on a fresh loopback connection (tokio) and reads the answer to the end.
async fn raw_request(port: u16, raw: &[u8]) -> Result<Answer, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(raw).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out))
        .await
        .map_err(|_| "no answer within 60 s".to_string())?
        .map_err(|e| e.to_string())?;
    parse_answer(&out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn invalid_utf8_is_refused_with_bad_data() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let rt = runtime();
    let mut cases = Cases::new(&mut q);
    // Prometheus: 400 bad_data "invalid UTF-8 rune" / "unexpected character".
    cases.case("percent_encoded_in_query", |q| {
        let a = get(q.port, "/api/v1/query?query=up%7Bjob%3D%22%FF%FE%22%7D")?;
        expect_error_with(&a, 400, "bad_data", "invalid parameter \"query\"")
    });
    cases.case("in_form_body", |q| {
        let a = post_bytes(q.port, "/api/v1/query", b"query=up{job=\"\xff\xfe\"}")?;
        expect_error_with(&a, 400, "bad_data", "invalid parameter \"query\"")
    });
    cases.case("in_match_param", |q| {
        let a = get(q.port, "/api/v1/series?match%5B%5D=%FF")?;
        expect_error_with(&a, 400, "bad_data", "invalid parameter \"match[]\"")
    });
    cases.case("in_labels_match_param", |q| {
        let a = get(q.port, "/api/v1/labels?match%5B%5D=up%7Bjob%3D%22%FF%22%7D")?;
        expect_error(&a, 400, "bad_data").map(|_| ())
    });
    // Prometheus: 400 bad_data `invalid label name: "\xff"` as JSON.
    cases.case("in_label_name_path", |q| {
        expect_error(&get(q.port, "/api/v1/label/%FF/values")?, 400, "bad_data").map(|_| ())
    });
    // Raw (unencoded) bytes over 0x7F in the request line. Prometheus' Go server takes them
    // and answers 400 bad_data JSON; such a request-target is not valid HTTP (RFC 9112), so a
    // protocol-level 400 is held too, but any body must then be the JSON envelope.
    cases.case("raw_bytes_in_request_line", |q| {
        let a = rt.block_on(raw_request(
            q.port,
            b"GET /api/v1/query?query=up{job=\"\xff\"} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ))?;
        if a.body.is_empty() && a.status == 400 {
            return Ok(());
        }
        expect_error(&a, 400, "bad_data").map(|_| ())
    });
    // Prometheus: 200; header values are not parsed.
    cases.case("raw_bytes_in_header", |q| {
        let req = format!(
            "GET /api/v1/query?query=up&time={} HTTP/1.1\r\nHost: x\r\nX-Junk: \u{0}",
            demo.end
        );
        let mut raw = req.replace('\u{0}', "").into_bytes();
        raw.extend_from_slice(b"\xff\xfe\r\nConnection: close\r\n\r\n");
        expect_vector(
            &rt.block_on(raw_request(q.port, &raw))?,
            demo.instances,
            "1",
            true,
        )
    });
    // Prometheus: 400 with a plain-text body (not HTTP at all).
    cases.case("garbage_request", |q| {
        let a = rt.block_on(raw_request(q.port, b"\x00\x01\x02garbage\r\n\r\n"))?;
        (a.status == 400)
            .then_some(())
            .ok_or(format!("status {}", a.status))
    });
    cases.finish();
}

/// `/api/v1/query?query=up{job=~"job_00000|...|node"}&time=t`, at least `len` bytes long.
fn long_up_query(len: usize, t: i64) -> String {
    let path = |jobs: usize| {
        let alt: String = (0..jobs).map(|i| format!("job_{i:05}|")).collect();
        format!(
            "/api/v1/query?query={}&time={t}",
            enc(&format!("up{{job=~\"{alt}node\"}}"))
        )
    };
    let per_job = enc("job_00000|").len();
    let jobs = len.saturating_sub(path(0).len()).div_ceil(per_job);
    let p = path(jobs);
    assert!(p.len() >= len, "URL of {} bytes", p.len());
    p
}

/// `/api/v1/query?query=up&time=t&pad=xx...`, `len` bytes long (Prometheus ignores unknown
/// parameters).
fn padded_up_query(len: usize, t: i64) -> String {
    let mut p = format!("/api/v1/query?query=up&time={t}&pad=");
    let pad = len.saturating_sub(p.len());
    p.push_str(&"x".repeat(pad));
    p
}

#[test]
fn huge_and_long_requests_are_answered_or_refused() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let (t, n) = (demo.end, demo.instances);
    let mut cases = Cases::new(&mut q);
    // Prometheus: 200 (its header limit is 1 MB).
    cases.case("get_url_60kb", |q| {
        let path = long_up_query(60_000, t);
        expect_vector(&get(q.port, &path)?, n, "1", true)
    });
    // Prometheus: 200. Past 65,534 bytes the `http` crate refuses a URI before any handler
    // runs; the server moves such a GET's query into the body (`http::long_uri`).
    cases.case("get_url_72kb", |q| {
        expect_vector(&get(q.port, &long_up_query(72_000, t))?, n, "1", true)
    });
    // Prometheus: 200 up to its 1 MB header limit.
    cases.case("get_url_900kb", |q| {
        expect_vector(&get(q.port, &padded_up_query(900_000, t))?, n, "1", true)
    });
    // Prometheus: 431 past 1 MB. hyper refuses heads past 400 KiB itself; any refusal is
    // fine, as long as the process lives (checked after every case).
    cases.case("get_url_2mb_is_refused", |q| {
        match get(q.port, &padded_up_query(2_000_000, t)) {
            Ok(a) if a.status < 400 => Err(format!("status {}", a.status)),
            // The server may close while the client still writes.
            Ok(_) | Err(_) => Ok(()),
        }
    });
    // Prometheus: 400 bad_data echoing the whole 12 kB regex; the issue asks for a bounded
    // prefix, held here as a message under 1 kB.
    cases.case("match_error_12kb_is_bounded", |q| {
        let m = format!("{{job=~\"({}\"}}", "x".repeat(12_000));
        let a = get(q.port, &format!("/api/v1/series?match%5B%5D={}", enc(&m)))?;
        let msg = expect_error(&a, 400, "bad_data")?;
        if !msg.contains("match[]") {
            return Err(format!("error does not name match[]: {}", a.short()));
        }
        (msg.len() <= 1024)
            .then_some(())
            .ok_or(format!("error message of {} bytes", msg.len()))
    });
    // Prometheus: 200, no series (no instance h<i> exists).
    cases.case("match_5000_selectors", |q| {
        let form: Vec<String> = (0..5_000)
            .map(|i| format!("match%5B%5D={}", enc(&format!("up{{instance=\"h{i}\"}}"))))
            .collect();
        let d = expect_success(&post_form(q.port, "/api/v1/series", &form.join("&"))?)?;
        (d == Json::Array(vec![]))
            .then_some(())
            .ok_or(format!("want [], got {d}"))
    });
    // Prometheus: 400 bad_data for a 20 MB form ("no expression found" on /query, "http: POST
    // too large" on /series: Go's 10 MB form limit).
    let big = |prefix: &str| {
        let mut b = prefix.as_bytes().to_vec();
        b.resize(20 << 20, b'x');
        b
    };
    cases.case("post_20mb_query", |q| {
        let a = post_bytes(q.port, "/api/v1/query", &big("query=up&pad="))?;
        expect_error(&a, 400, "bad_data").map(|_| ())
    });
    cases.case("post_20mb_query_range", |q| {
        let a = post_bytes(
            q.port,
            "/api/v1/query_range",
            &big("query=up&start=0&end=60&step=15&pad="),
        )?;
        expect_error(&a, 400, "bad_data").map(|_| ())
    });
    cases.case("post_20mb_series", |q| {
        let a = post_bytes(q.port, "/api/v1/series", &big("match[]=up&pad="))?;
        expect_error(&a, 400, "bad_data").map(|_| ())
    });
    // Prometheus: 400 bad_data, the body is not a form and the query is missing.
    cases.case("post_20mb_not_a_form", |q| {
        let a = http(
            q.port,
            "POST",
            "/api/v1/query",
            &[("Content-Type", "application/json")],
            &big("{"),
        )?;
        expect_error(&a, 400, "bad_data").map(|_| ())
    });
    cases.finish();
}

#[test]
fn slow_clients_do_not_starve_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let (t, n) = (demo.end, demo.instances);
    let rt = runtime();
    let mut cases = Cases::new(&mut q);
    let path = format!("/api/v1/query?query=up&time={t}");
    // A request sent one byte every 10 ms is answered, and others are answered meanwhile.
    cases.case("one_byte_at_a_time", |q| {
        let port = q.port;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let slow = rt.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| e.to_string())?;
            for b in req.as_bytes() {
                s.write_all(&[*b]).await.map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
            parse_answer(&out)
        });
        while !slow.is_finished() {
            expect_vector(&get(port, &path)?, n, "1", true)
                .map_err(|e| format!("while a slow client sends: {e}"))?;
        }
        let a = rt.block_on(slow).map_err(|e| e.to_string())??;
        expect_vector(&a, n, "1", true)
    });
    // 1000 connections that send nothing, and 1000 that stop mid-header: others still get
    // answers. (Prometheus' Go server keeps every one open too, and answers others.)
    cases.case("silent_and_half_sent_connections", |q| {
        let port = q.port;
        let idle = rt.block_on(async move {
            let mut held = Vec::new();
            for i in 0..2_000 {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| format!("connection {i}: {e}"))?;
                if i % 2 == 1 {
                    s.write_all(b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                        .await
                        .map_err(|e| e.to_string())?;
                }
                held.push(s);
            }
            Ok::<_, String>(held)
        })?;
        let answered = expect_vector(&get(port, &path)?, n, "1", true);
        drop(idle);
        answered.map_err(|e| format!("with 2000 idle connections open: {e}"))
    });
    // A client that goes away mid-request leaves nothing behind.
    cases.case("disconnect_mid_body", |q| {
        let port = q.port;
        rt.block_on(async move {
            for _ in 0..200 {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map_err(|e| e.to_string())?;
                s.write_all(b"POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\nquery=up")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })?;
        expect_vector(&get(port, &path)?, n, "1", true)
    });
    cases.finish();
}

/// `up or up or ...` with 50,000 terms, as a form body.
fn or_chain() -> String {
    format!("query={}", enc(&vec!["up"; 50_000].join(" or ")))
}

/// A query that evaluates for minutes within every limit: 50 different one-second-step
/// subqueries over every CPU series, summed (distinct terms, so no work can be shared).
fn heavy_query(t: i64) -> String {
    let q = (0..50)
        .map(|i| {
            format!(
                "quantile_over_time(0.{i:02}, rate(node_cpu_seconds_total[5m])[6h:1s] offset {}s)",
                i + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    format!("query={}&time={t}", enc(&q))
}

#[test]
fn query_timeout_stops_work_and_keeps_health() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(
        demo.tmp.path(),
        &[
            data_flag(&demo).as_str(),
            "--query.timeout=5s",
            "--query.max-concurrent=2",
        ],
    );
    let t = demo.end;
    let rt = runtime();
    let mut cases = Cases::new(&mut q);
    // Prometheus times out on it (503, after more than a minute); Strata refuses chains past
    // its documented limit of `MAX_OPERATORS` operators before parsing (issue 12 items 1-2),
    // so the query costs nothing.
    cases.case("or_chain_50000_is_refused_beyond_the_operator_limit", |q| {
        let a = post_form(q.port, "/api/v1/query", &or_chain())?;
        expect_error(&a, 400, "bad_data")?;
        if !a.text().contains("too many operators") {
            return Err(format!("refusal does not say why: {}", a.short()));
        }
        q.wait_cpu_idle(Duration::from_secs(10))
    });
    // Prometheus: 503 timeout "query timed out in expression evaluation".
    cases.case("heavy_query_times_out_and_stops", |q| {
        let a = post_form(q.port, "/api/v1/query", &heavy_query(t))?;
        expect_error(&a, 503, "timeout")?;
        q.wait_cpu_idle(Duration::from_secs(10))
    });
    // Three at once (two evaluating, one queued): each gets the 503 and the health probe keeps
    // answering all along.
    cases.case("three_at_once_keep_health", |q| {
        let port = q.port;
        let heavy: Vec<_> = (0..3)
            .map(|_| rt.spawn_blocking(move || post_form(port, "/api/v1/query", &heavy_query(t))))
            .collect();
        let mut probes = 0;
        while !heavy.iter().all(|h| h.is_finished()) {
            let a = health(port).map_err(|e| format!("health probe {probes}: {e}"))?;
            if a.status != 200 {
                return Err(format!("health probe {probes} answered {}", a.status));
            }
            probes += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in heavy {
            let a = rt.block_on(h).map_err(|e| e.to_string())??;
            expect_error(&a, 503, "timeout")?;
        }
        q.wait_cpu_idle(Duration::from_secs(10))
    });
    // --query.max-concurrent=2: with two heavy queries under way a cheap one waits for a slot,
    // so it is answered only after a heavy one finished, or times out in the queue (503).
    cases.case("max_concurrent_holds", |q| {
        let port = q.port;
        let before = q.cpu_ticks().ok_or("no /proc stat")?;
        let heavy: Vec<_> = (0..2)
            .map(|_| {
                rt.spawn_blocking(move || {
                    let a = post_form(port, "/api/v1/query", &heavy_query(t));
                    (a, Instant::now())
                })
            })
            .collect();
        q.wait_cpu_growth(before, 100, Duration::from_secs(60))?;
        let cheap = post_form(port, "/api/v1/query", &format!("query=vector(1)&time={t}"))?;
        let cheap_at = Instant::now();
        let mut first_heavy = None::<Instant>;
        for h in heavy {
            let (a, at) = rt.block_on(h).map_err(|e| e.to_string())?;
            expect_error(&a?, 503, "timeout")?;
            first_heavy = Some(first_heavy.map_or(at, |f| f.min(at)));
        }
        if cheap.status == 503 {
            expect_error(&cheap, 503, "timeout")?;
        } else {
            expect_success(&cheap)?;
            if first_heavy.is_some_and(|f| cheap_at < f) {
                return Err(
                    "a third query was answered while two heavy ones held both slots".into(),
                );
            }
        }
        q.wait_cpu_idle(Duration::from_secs(10))
    });
    cases.finish();
}

/// The memory groups' query timeout: a refusal under the samples limit must come well before
/// it, and a regression then fails in a minute instead of Prometheus' default two.
const MEMORY_TIMEOUT: &str = "--query.timeout=60s";

/// Every step of a `count_values("v", node_cpu_seconds_total)` range answer counts all
/// `series` inputs.
fn check_count_values(a: &Answer, series: usize) -> Result<(), String> {
    let d = expect_success(a)?;
    let mut per_step = std::collections::BTreeMap::<i64, f64>::new();
    for s in d["result"].as_array().ok_or("no result")? {
        for p in s["values"].as_array().ok_or("no values")? {
            let v: f64 = p[1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or("bad value")?;
            *per_step
                .entry(p[0].as_f64().ok_or("bad time")? as i64)
                .or_default() += v;
        }
    }
    match per_step.iter().find(|(_, c)| **c != series as f64) {
        Some((t, c)) => Err(format!("step {t} counts {c} inputs, want {series}")),
        None if per_step.is_empty() => Err("empty answer".into()),
        None => Ok(()),
    }
}

#[test]
fn sample_limit_of_one_million_bounds_memory() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(
        demo.tmp.path(),
        &[
            data_flag(&demo).as_str(),
            "--query.max-samples=1000000",
            MEMORY_TIMEOUT,
        ],
    );
    let baseline = q.rss_kb().unwrap_or(0);
    let (t, n) = (demo.end, demo.instances);
    let mut cases = Cases::new(&mut q);
    // Prometheus (same limit): 200, 175,257 series of 229,240 points, peak RSS 5.8 GB, 74 s.
    // Strata holds only the points present too (a sparse result), so it answers within the
    // limit; the answer is checked for what must hold (every step counts all 80 CPU series).
    // A debug build on a loaded machine may need longer than the 60 s timeout (the 6 h case
    // of `default_sample_limit_bounds_memory` requires the answer), so Prometheus' 503 passes
    // too; the 422 does not.
    cases.case("count_values_24h_at_15s", |q| {
        let a = post_form(
            q.port,
            "/api/v1/query_range",
            &format!(
                "query={}&start={}&end={t}&step=15",
                enc("count_values(\"v\", node_cpu_seconds_total)"),
                t - 86_400
            ),
        )?;
        if a.status == 503 {
            return expect_error(&a, 503, "timeout").map(|_| ());
        }
        check_count_values(&a, 8 * n)
    });
    // Prometheus 2.42 itself dies here ("fatal error: runtime: out of memory" allocating the
    // subquery's points); the issue asks for the 422.
    cases.case("rate_1y_subquery_at_1ms", |q| {
        expect_error_with(
            &query_at(q, "rate(up[1y:1ms])", t)?,
            422,
            "execution",
            TOO_MANY_SAMPLES,
        )
    });
    // Prometheus: 422 execution, in 2 s.
    cases.case("max_over_time_1d_subquery_at_1ms", |q| {
        expect_error_with(
            &query_at(q, "max_over_time(up[1d:1ms])", t)?,
            422,
            "execution",
            TOO_MANY_SAMPLES,
        )
    });
    // Memory comes back after the heavy queries: within twice the idle RSS plus 256 MB.
    cases.case("rss_returns_after_heavy_queries", |q| {
        let bound = 2 * baseline + 256 * 1024;
        let start = Instant::now();
        loop {
            let now = q.rss_kb().ok_or("no RSS")?;
            if now <= bound {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(format!(
                    "RSS {now} kB stays above {bound} kB (idle was {baseline} kB)"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    cases.finish();
}

#[test]
fn default_sample_limit_bounds_memory() {
    let demo = generate_demo(HOURS, INSTANCES);
    let mut q = Querier::start(
        demo.tmp.path(),
        &[data_flag(&demo).as_str(), MEMORY_TIMEOUT],
    );
    let (t, n) = (demo.end, demo.instances);
    let mut cases = Cases::new(&mut q);
    // Prometheus: 200 in 2.6 s, peak RSS 2 GB (BENCHMARKS.md). Each distinct value is a
    // series with a few points of 1441 steps: answered, within the suite's RSS bound.
    cases.case("count_values_6h_at_15s", |q| {
        let a = post_form(
            q.port,
            "/api/v1/query_range",
            &format!(
                "query={}&start={}&end={t}&step=15",
                enc("count_values(\"v\", node_cpu_seconds_total)"),
                t - 6 * 3600
            ),
        )?;
        check_count_values(&a, 8 * n)
    });
    // 3e10 steps: Prometheus 2.42 runs out of memory; a correct answer (rate of a constant is
    // 0) or the 422 is required.
    cases.case("rate_1y_subquery_at_1ms", |q| {
        let a = query_at(q, "rate(up[1y:1ms])", t)?;
        if a.status == 422 {
            return expect_error_with(&a, 422, "execution", TOO_MANY_SAMPLES);
        }
        expect_vector(&a, n, "0", false)
    });
    // 86.4 M steps x 10 series is over 50 M samples: Prometheus' accounting refuses it.
    cases.case("max_over_time_1d_subquery_at_1ms", |q| {
        let a = query_at(q, "max_over_time(up[1d:1ms])", t)?;
        if a.status == 422 {
            return expect_error_with(&a, 422, "execution", TOO_MANY_SAMPLES);
        }
        expect_vector(&a, n, "1", false)
    });
    cases.finish();
}

/// Block directories of the bucket, oldest data first.
fn blocks_by_time(bucket: &std::path::Path) -> Vec<(String, Json)> {
    let mut out: Vec<(String, Json)> = std::fs::read_dir(bucket)
        .expect("bucket dir")
        .filter_map(|e| {
            let e = e.ok()?;
            let meta = std::fs::read(e.path().join("meta.json")).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                serde_json::from_slice(&meta).ok()?,
            ))
        })
        .collect();
    out.sort_by_key(|(_, m)| m["minTime"].as_i64());
    out
}

#[test]
fn damaged_blocks_are_named_in_warnings() {
    let demo = generate_demo(HOURS, INSTANCES);
    let bucket = demo.bucket();
    let blocks = blocks_by_time(&bucket);
    assert!(blocks.len() >= 10, "{} blocks", blocks.len());
    let (bad_index, _) = &blocks[3];
    let (bad_meta, _) = &blocks[6];
    // The index keeps its size (meta.json lists it) but every byte is garbage.
    let index = bucket.join(bad_index).join("index");
    let len = std::fs::metadata(&index).expect("index").len() as usize;
    std::fs::write(
        &index,
        (0..len).map(|i| (i * 7 + 13) as u8).collect::<Vec<u8>>(),
    )
    .expect("corrupt index");
    std::fs::write(
        bucket.join(bad_meta).join("meta.json"),
        b"{\"ulid\": not json",
    )
    .expect("corrupt meta");
    let mut q = Querier::start(demo.tmp.path(), &[data_flag(&demo).as_str()]);
    let (t, n) = (demo.end, demo.instances);
    let mut cases = Cases::new(&mut q);
    // Prometheus has no counterpart (it refuses to open a corrupt block); the issue asks for
    // warnings naming both blocks, never a silent empty success.
    cases.case("count_up_over_damaged_blocks_warns", |q| {
        let a = post_form(
            q.port,
            "/api/v1/query_range",
            &format!(
                "query={}&start={}&end={t}&step=300",
                enc("count(up)"),
                t - 86_400
            ),
        )?;
        let j = a.json()?;
        expect_success(&a)?;
        let warnings = j["warnings"].as_array().cloned().unwrap_or_default();
        let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        for block in [bad_index, bad_meta] {
            if !text.iter().any(|w| w.contains(block.as_str())) {
                return Err(format!(
                    "no warning names block {block}; warnings: {text:?}"
                ));
            }
        }
        Ok(())
    });
    // The healthy newest block still answers.
    cases.case("healthy_blocks_still_answer", |q| {
        let d = expect_success(&query_at(q, "count(up)", t)?)?;
        (d["result"][0]["value"][1] == n.to_string().as_str())
            .then_some(())
            .ok_or(format!("want {n}, got {d}"))
    });
    cases.finish();
}

fn no_panic(out: &std::process::Output, what: &str) -> Result<(), String> {
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(101) || err.contains("panicked") {
        let first: String = err.lines().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!("{what} panicked: {first}"));
    }
    Ok(())
}

#[test]
fn tools_survive_extreme_meta_and_missing_bucket() {
    let demo = generate_demo(4, 2);
    let bucket = demo.bucket();
    let (ulid, mut meta) = blocks_by_time(&bucket).remove(0);
    meta["minTime"] = Json::from(i64::MIN);
    meta["maxTime"] = Json::from(i64::MAX);
    std::fs::write(bucket.join(&ulid).join("meta.json"), meta.to_string()).expect("write meta");
    let data = demo.data_dir.to_str().expect("utf-8").to_string();
    let mut failures = Vec::new();
    // No panic; either a listing naming the block or an error naming it.
    for args in [
        vec!["tools", "bucket", "ls", "--data-dir", &data],
        vec!["tools", "bucket", "ls", "--data-dir", &data, "-o", "json"],
        vec!["tools", "bucket", "inspect", "--data-dir", &data],
        vec![
            "tools",
            "bucket",
            "inspect",
            "--data-dir",
            &data,
            "-o",
            "json",
        ],
    ] {
        let what = args.join(" ");
        let out = strata(&args);
        let named = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).contains(&ulid)
        } else {
            String::from_utf8_lossy(&out.stderr).contains(&ulid)
        };
        if let Err(e) = no_panic(&out, &what) {
            failures.push(e);
        } else if !named {
            failures.push(format!(
                "{what}: block {ulid} neither listed nor named in an error"
            ));
        }
    }
    // A FILESYSTEM bucket directory that does not exist: readers fail naming it.
    let missing = demo.tmp.path().join("no-such-bucket");
    let config = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        missing.display()
    );
    let shown = missing.display().to_string();
    for sub in ["ls", "inspect"] {
        let out = strata(&["tools", "bucket", sub, "--objstore.config", &config]);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.contains(&shown) {
            failures.push(format!(
                "tools bucket {sub} on a missing bucket: status {}, stderr {err:?}",
                out.status
            ));
        }
    }
    if let Err(e) = querier_refuses_missing_bucket(demo.tmp.path(), &config, &shown) {
        failures.push(e);
    }
    if missing.exists() {
        failures.push(format!("a reader created the missing bucket {shown}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `strata query` over a missing bucket directory exits non-zero naming it, or stays up not
/// ready with the log naming it.
fn querier_refuses_missing_bucket(
    work: &std::path::Path,
    config: &str,
    shown: &str,
) -> Result<(), String> {
    let port = storage::testing::prometheus::free_port().map_err(|e| e.to_string())?;
    let log = work.join("missing-bucket-query.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "query",
            &format!("--http-address=127.0.0.1:{port}"),
            "--grpc-address=127.0.0.1:0",
            "--objstore.config",
            config,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let outcome = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            break if !status.success() && text.contains(shown) {
                Ok(())
            } else {
                Err(format!("strata query exited with {status}, log: {text}"))
            };
        }
        let ready = get(port, "/-/ready").map(|a| a.status);
        if ready == Ok(200) {
            break Err(format!(
                "strata query is ready over a missing bucket; log: {text}"
            ));
        }
        if ready == Ok(503) && text.contains(shown) {
            break Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            break Err(format!(
                "strata query neither refused nor named {shown} in 30 s; log: {text}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome
}

/// A selector with `n` regex matchers (each compiled while parsing): a few MiB of input that
/// takes seconds to parse, without nesting (so no depth bound refuses it).
fn many_regex_matchers(n: usize) -> String {
    let m: Vec<String> = (0..n).map(|i| format!("l{i}=~\"x{i}.*y|z+\"")).collect();
    format!("up{{{}}}", m.join(","))
}

/// Huge parses (query, `match[]`) run off the async runtime: `/-/healthy` keeps answering
/// while more of them run at once than the runtime has worker threads, and each is answered
/// (or refused) in Prometheus' shape.
#[test]
fn huge_parses_keep_health() {
    let demo = generate_demo(2, 2);
    let mut q = Querier::start(
        demo.tmp.path(),
        &[data_flag(&demo).as_str(), "--query.timeout=20s"],
    );
    let t = demo.end;
    let rt = runtime();
    let mut cases = Cases::new(&mut q);
    cases.case("parses_run_while_health_answers", |q| {
        let port = q.port;
        // 4,000 matchers kept a series request busy for over 120 s in a debug build (where the
        // time goes is not yet known: parse, matcher compilation or selection).
        let selector = enc(&many_regex_matchers(500));
        // The longest chain accepted (promql-parser's time grows with its square).
        let chain = enc(&vec!["1"; MAX_OPERATORS + 1].join("+"));
        let requests: Vec<(&str, String)> = vec![
            ("/api/v1/series", format!("match[]={selector}")),
            ("/api/v1/series", format!("match[]={selector}")),
            ("/api/v1/labels", format!("match[]={selector}")),
            ("/api/v1/query", format!("query={selector}&time={t}")),
            ("/api/v1/query", format!("query={chain}&time={t}")),
        ];
        let running: Vec<_> = requests
            .into_iter()
            .map(|(path, body)| rt.spawn_blocking(move || (path, post_form(port, path, &body))))
            .collect();
        let mut probes = 0;
        while !running.iter().all(|h| h.is_finished()) {
            let a = health(port).map_err(|e| format!("health probe {probes}: {e}"))?;
            if a.status != 200 {
                return Err(format!("health probe {probes} answered {}", a.status));
            }
            probes += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in running {
            let (path, a) = rt.block_on(h).map_err(|e| e.to_string())?;
            let a = a.map_err(|e| format!("{path}: {e}"))?;
            // Answered (no series match), or timed out in Prometheus' shape.
            if a.status == 503 {
                expect_error(&a, 503, "timeout").map_err(|e| format!("{path}: {e}"))?;
            } else {
                expect_success(&a).map_err(|e| format!("{path}: {e}"))?;
            }
        }
        if probes == 0 {
            return Err("the parses ended before any health probe".into());
        }
        q.wait_cpu_idle(Duration::from_secs(120))
    });
    cases.finish();
}
