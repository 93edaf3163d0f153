//! The "Real parts" test of issue 3: Debian's Prometheus 2.42 and `strata query` serve the same
//! promtool-made blocks, get the same queries, and must give equal JSON answers (floats within
//! a relative 1e-9; series order compared where Prometheus defines it).
//! Headers (CORS, compression) and error bodies are compared too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::*;
use serde_json::Value as Json;
use storage::testing::{promtool_available, PrometheusServer};

/// Relative tolerance for sample values.
const REL_TOL: f64 = 1e-9;

/// Instant-query times: mid-data (inside `sparse_metric`'s gap) and a late, fractional one.
const T1: i64 = START + 9_000;
const T2_STR: &str = "1700010007.5";
/// The range of range queries: 2 h at a 60 s step, starting 50 min into the data.
const RANGE_START: i64 = START + 3_000;
const RANGE_END: i64 = RANGE_START + 7_200;
const RANGE_STEP: i64 = 60;

/// How a query is run.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Instant at T1 and T2, and as a range query.
    Both,
    /// Instant only (range vectors, strings: Prometheus refuses them as range queries; that
    /// error is compared separately in `range_queries_of_the_wrong_type_fail_alike`).
    InstantOnly,
}

/// One query of the suite.
struct Q {
    expr: &'static str,
    kind: Kind,
    /// The result order is defined (sort, sort_desc), so it is compared as is.
    ordered: bool,
}

const fn q(expr: &'static str) -> Q {
    Q {
        expr,
        kind: Kind::Both,
        ordered: false,
    }
}

const fn instant(expr: &'static str) -> Q {
    Q {
        expr,
        kind: Kind::InstantOnly,
        ordered: false,
    }
}

const fn ordered(expr: &'static str) -> Q {
    Q {
        expr,
        kind: Kind::Both,
        ordered: true,
    }
}

/// The suite, by function family.
const QUERIES: &[Q] = &[
    // selectors, lookback, offset and @
    q("http_requests_total"),
    q("http_requests_total{job=\"api\",code!=\"200\"}"),
    q("{__name__=~\"node_.*|temperature_celsius\"}"),
    q("sparse_metric"),
    q("temperature_celsius offset 1h"),
    q("temperature_celsius @ 1700000000"),
    q("rate(http_requests_total[5m] offset 30m)"),
    q("sum(rate(http_requests_total[5m] @ end()))"),
    q("temperature_celsius @ start()"),
    instant("temperature_celsius[2m]"),
    instant("\"a string\""),
    q("1 + 1"),
    q("-temperature_celsius"),
    // rate family
    q("rate(http_requests_total[5m])"),
    q("irate(http_requests_total[5m])"),
    q("increase(http_requests_total[10m])"),
    q("rate(http_requests_total{job=\"api\",instance=\"a:80\"}[1h])"),
    q("resets(http_requests_total[1h])"),
    q("delta(node_memory_free_bytes[10m])"),
    q("idelta(node_memory_free_bytes[10m])"),
    q("deriv(node_memory_free_bytes[30m])"),
    q("changes(temperature_celsius[30m])"),
    q("predict_linear(node_memory_free_bytes[30m], 3600)"),
    q("holt_winters(node_memory_free_bytes[30m], 0.5, 0.5)"),
    // *_over_time
    q("avg_over_time(temperature_celsius[10m])"),
    q("min_over_time(temperature_celsius[10m])"),
    q("max_over_time(temperature_celsius[10m])"),
    q("sum_over_time(temperature_celsius[10m])"),
    q("count_over_time(sparse_metric[10m])"),
    q("last_over_time(sparse_metric[1h])"),
    q("stddev_over_time(temperature_celsius[30m])"),
    q("stdvar_over_time(temperature_celsius[30m])"),
    q("quantile_over_time(0.9, temperature_celsius[30m])"),
    q("present_over_time(sparse_metric[5m])"),
    q("absent_over_time(sparse_metric[5m])"),
    // aggregations
    q("sum by (job) (rate(http_requests_total[5m]))"),
    q("avg without (instance) (rate(http_requests_total[5m]))"),
    q("min by (job) (rate(http_requests_total[5m]))"),
    q("max by (code) (rate(http_requests_total[5m]))"),
    q("count by (code) (http_requests_total)"),
    q("group by (job) (http_requests_total)"),
    q("stddev by (job) (rate(http_requests_total[5m]))"),
    q("stdvar without (method, code) (rate(http_requests_total[5m]))"),
    q("topk(3, rate(http_requests_total[5m]))"),
    q("bottomk by (job) (2, rate(http_requests_total[5m]))"),
    q("quantile by (job) (0.9, rate(http_requests_total[5m]))"),
    q("count_values(\"bucket\", floor(temperature_celsius / 10))"),
    q("sum(node_memory_free_bytes)"),
    // classic histograms
    q("histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))"),
    q("histogram_quantile(0.5, rate(request_duration_seconds_bucket[10m]))"),
    q("histogram_quantile(0.99, sum by (job, le) (rate(request_duration_seconds_bucket[5m])))"),
    q("rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])"),
    // labels
    q("label_replace(node_memory_free_bytes, \"host\", \"$1\", \"instance\", \"(.*):.*\")"),
    q("label_replace(temperature_celsius, \"x\", \"$1\", \"room\", \"c.*\")"),
    q("label_join(build_info, \"jv\", \"-\", \"job\", \"version\")"),
    // binary operators and matching
    q("http_requests_total * on (job) group_left (version) build_info"),
    q("rate(http_requests_total{code=\"500\"}[5m]) / ignoring (code) rate(http_requests_total{code=\"200\"}[5m])"),
    q("sum by (job, instance) (rate(http_requests_total[5m])) / on (job) group_left sum by (job) (rate(http_requests_total[5m]))"),
    q("node_memory_free_bytes > bool 2e9"),
    q("temperature_celsius > 10"),
    q("temperature_celsius <= bool 0"),
    q("2 * temperature_celsius + 1"),
    q("temperature_celsius % 7"),
    q("temperature_celsius ^ 2"),
    q("node_memory_free_bytes / 1024 / 1024"),
    // set operators
    q("http_requests_total{code=\"200\"} and on (job, instance, method) http_requests_total{code=\"500\"}"),
    q("node_memory_free_bytes or temperature_celsius"),
    q("http_requests_total unless on (job) build_info{job=\"api\"}"),
    // subqueries
    q("max_over_time(rate(http_requests_total{job=\"web\"}[5m])[30m:1m])"),
    q("avg_over_time(temperature_celsius[1h:5m])"),
    q("min_over_time(sum(node_memory_free_bytes)[20m:2m] offset 10m)"),
    // absent
    q("absent(nonexistent_metric{job=\"x\"})"),
    q("absent(temperature_celsius)"),
    // time functions
    q("time()"),
    q("timestamp(temperature_celsius)"),
    q("hour(timestamp(temperature_celsius))"),
    q("minute()"),
    q("day_of_week()"),
    q("day_of_month(vector(1700000000))"),
    q("days_in_month()"),
    q("month()"),
    q("year()"),
    // math and trigonometry
    q("abs(temperature_celsius)"),
    q("ceil(temperature_celsius)"),
    q("floor(temperature_celsius)"),
    q("round(temperature_celsius, 0.5)"),
    q("sqrt(abs(temperature_celsius))"),
    q("exp(temperature_celsius / 10)"),
    q("ln(abs(temperature_celsius) + 1)"),
    q("log2(node_memory_free_bytes)"),
    q("log10(node_memory_free_bytes)"),
    q("clamp(temperature_celsius, 0, 20)"),
    q("clamp_min(temperature_celsius, 0)"),
    q("clamp_max(temperature_celsius, 5)"),
    q("sgn(temperature_celsius)"),
    q("sin(temperature_celsius)"),
    q("cos(temperature_celsius)"),
    q("tan(temperature_celsius)"),
    q("asin(temperature_celsius / 100)"),
    q("acos(temperature_celsius / 100)"),
    q("atan(temperature_celsius)"),
    q("sinh(temperature_celsius / 10)"),
    q("cosh(temperature_celsius / 10)"),
    q("tanh(temperature_celsius)"),
    q("asinh(temperature_celsius)"),
    q("acosh(abs(temperature_celsius) + 1)"),
    q("atanh(temperature_celsius / 100)"),
    q("deg(temperature_celsius)"),
    q("rad(temperature_celsius)"),
    q("pi()"),
    q("scalar(sum(build_info))"),
    q("vector(time())"),
    // sort
    ordered("sort(temperature_celsius)"),
    ordered("sort_desc(node_memory_free_bytes)"),
    // number formatting
    q("extreme_values"),
    q("extreme_values * 0"),
    q("1 / temperature_celsius * 0"),
];

/// Queries the engine cannot answer yet, each with the reason; they are run and reported but
/// do not fail the test. Empty until the engine lands and its gaps are known.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Prometheus and Strata over the same blocks.
struct Pair {
    _tmp: tempfile::TempDir,
    prom: PrometheusServer,
    strata: StrataQuery,
}

fn start_pair() -> Pair {
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    let prom_dir = tmp.path().join("prometheus");
    copy_blocks(&blocks, &prom_dir);
    let strata_dir = tmp.path().join("strata");
    copy_blocks(&blocks, &strata_dir.join("bucket"));
    let prom = PrometheusServer::start(&prom_dir, &["--storage.tsdb.retention.time=100y"])
        .expect("start Prometheus 2.42");
    let strata = StrataQuery::start_ready(tmp.path(), &strata_dir);
    Pair {
        _tmp: tmp,
        prom,
        strata,
    }
}

fn tools_present() -> bool {
    if promtool_available() {
        return true;
    }
    eprintln!("SKIPPED: prometheus/promtool not on PATH");
    false
}

/// One request's answer, as compared.
struct Answer {
    status: u16,
    json: Json,
}

fn ask(port: u16, path: &str) -> Answer {
    let r = get(port, path);
    let json = serde_json::from_str(&r.body).unwrap_or_else(|_| Json::String(r.body.clone()));
    Answer {
        status: r.status,
        json,
    }
}

/// A JSON value shortened for failure messages.
fn short(j: &Json) -> String {
    let s = j.to_string();
    if s.chars().count() > 300 {
        format!("{}...", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

fn parse_float(v: &Json) -> Option<f64> {
    storage::testing::prometheus::parse_go_float(v.as_str()?)
}

fn floats_equal(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= REL_TOL * a.abs().max(b.abs())
}

/// Compares `[ts, "value"]` pairs: timestamps exactly, values within the tolerance.
fn compare_point(want: &Json, got: &Json, at: &str) -> Result<(), String> {
    if want[0] != got[0] {
        return Err(format!("{at}: timestamp {} != {}", got[0], want[0]));
    }
    match (parse_float(&want[1]), parse_float(&got[1])) {
        (Some(a), Some(b)) if floats_equal(a, b) => Ok(()),
        (None, None) if want[1] == got[1] => Ok(()),
        _ => Err(format!("{at}: value {} != {}", got[1], want[1])),
    }
}

fn metric_key(v: &Json) -> String {
    v["metric"].to_string()
}

fn compare_result(want: &Json, got: &Json, ordered: bool) -> Result<(), String> {
    let rtype = &want["resultType"];
    if rtype != &got["resultType"] {
        return Err(format!(
            "resultType {} != {}",
            got["resultType"], want["resultType"]
        ));
    }
    let (w, g) = (&want["result"], &got["result"]);
    match rtype.as_str() {
        Some("scalar") | Some("string") => compare_point(w, g, "result"),
        Some("vector") | Some("matrix") => {
            let mut w: Vec<&Json> = w.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            let mut g: Vec<&Json> = g.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            // Instant vectors have no defined order except after sort/sort_desc; matrices are
            // sorted by labels in both.
            if rtype == "vector" && !ordered {
                w.sort_by_key(|v| metric_key(v));
                g.sort_by_key(|v| metric_key(v));
            }
            if w.len() != g.len() {
                let names = |v: &[&Json]| v.iter().map(|s| metric_key(s)).collect::<Vec<_>>();
                return Err(format!(
                    "{} series, Prometheus has {}:\n  strata: {:?}\n  prometheus: {:?}",
                    g.len(),
                    w.len(),
                    names(&g),
                    names(&w)
                ));
            }
            for (ws, gs) in w.iter().zip(&g) {
                if ws["metric"] != gs["metric"] {
                    return Err(format!("series {} != {}", gs["metric"], ws["metric"]));
                }
                let at = metric_key(ws);
                if rtype == "vector" {
                    compare_point(&ws["value"], &gs["value"], &at)?;
                    continue;
                }
                let (wp, gp) = (&ws["values"], &gs["values"]);
                let (wp, gp) = (
                    wp.as_array().cloned().unwrap_or_default(),
                    gp.as_array().cloned().unwrap_or_default(),
                );
                if wp.len() != gp.len() {
                    let ts = |v: &[Json]| -> Vec<String> {
                        v.iter().map(|p| p[0].to_string()).collect()
                    };
                    let (tw, tg) = (ts(&wp), ts(&gp));
                    let only_g: Vec<&String> = tg.iter().filter(|t| !tw.contains(t)).collect();
                    let only_w: Vec<&String> = tw.iter().filter(|t| !tg.contains(t)).collect();
                    return Err(format!(
                        "{at}: {} points != {}; only in strata at {only_g:?}, only in prometheus at {only_w:?}",
                        gp.len(),
                        wp.len()
                    ));
                }
                for (a, b) in wp.iter().zip(&gp) {
                    compare_point(a, b, &at)?;
                }
            }
            Ok(())
        }
        _ => Err(format!("unexpected resultType {rtype}")),
    }
}

/// Compares whole answers: HTTP status, envelope, error texts, warnings and results.
fn compare(want: &Answer, got: &Answer, ordered: bool) -> Result<(), String> {
    if want.status != got.status {
        return Err(format!(
            "HTTP {} != {}: strata {} / prometheus {}",
            got.status,
            want.status,
            short(&got.json),
            short(&want.json)
        ));
    }
    for key in ["status", "errorType", "error", "warnings"] {
        if want.json[key] != got.json[key] {
            return Err(format!(
                "{key}: strata {} / prometheus {}",
                short(&got.json[key]),
                short(&want.json[key])
            ));
        }
    }
    if want.json["status"] != "success" {
        return Ok(());
    }
    compare_result(&want.json["data"], &got.json["data"], ordered)
}

/// Runs every (query, parameters) case on both servers; returns the failures.
fn run_suite(pair: &Pair, cases: &[(String, String, bool)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (expr, path, ordered) in cases {
        let want = ask(pair.prom.port, path);
        let got = ask(pair.strata.port, path);
        assert_eq!(
            want.json["status"],
            "success",
            "the suite's queries must succeed on Prometheus: {expr} ({path}): {}",
            short(&want.json)
        );
        if let Err(e) = compare(&want, &got, *ordered) {
            failures.push(format!("{expr}\n    {path}\n    {e}"));
        }
    }
    failures
}

fn cases() -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for query in QUERIES {
        let e = enc(query.expr);
        for t in [T1.to_string(), T2_STR.to_string()] {
            out.push((
                query.expr.to_string(),
                format!("/api/v1/query?query={e}&time={t}"),
                query.ordered,
            ));
        }
        if query.kind == Kind::Both {
            out.push((
                query.expr.to_string(),
                format!(
                    "/api/v1/query_range?query={e}&start={RANGE_START}&end={RANGE_END}&step={RANGE_STEP}"
                ),
                query.ordered,
            ));
        }
    }
    out
}

fn report(failures: Vec<String>, total: usize) {
    let (gaps, real): (Vec<String>, Vec<String>) = failures.into_iter().partition(|f| {
        KNOWN_GAPS
            .iter()
            .any(|(q, _)| f.starts_with(&format!("{q}\n")))
    });
    for g in &gaps {
        eprintln!("KNOWN GAP: {g}");
    }
    eprintln!(
        "{} cases: {} equal, {} known gaps, {} different",
        total,
        total - gaps.len() - real.len(),
        gaps.len(),
        real.len()
    );
    assert!(
        real.is_empty(),
        "{} of {total} answers differ from Prometheus 2.42:\n{}",
        real.len(),
        real.join("\n")
    );
}

#[test]
fn promql_answers_equal_prometheus_242() {
    if !tools_present() {
        return;
    }
    assert!(QUERIES.len() >= 50);
    let pair = start_pair();
    let cases = cases();
    let failures = run_suite(&pair, &cases);
    report(failures, cases.len());
}

#[test]
fn grafana_save_and_test_query_answers_alike() {
    if !tools_present() {
        return;
    }
    let pair = start_pair();
    // Grafana's "Save & test": POST /api/v1/query with 1+1 at time 4.
    let want = post(pair.prom.port, "/api/v1/query", "query=1%2B1&time=4");
    let got = post(pair.strata.port, "/api/v1/query", "query=1%2B1&time=4");
    assert_eq!(want.status, 200);
    assert_eq!(got.status, want.status, "{}", got.body);
    assert_eq!(got.body, want.body, "byte-identical");
}

/// Errors PromQL evaluation raises: the status, class and text must be Prometheus'.
#[test]
fn malformed_and_failing_queries_get_prometheus_errors() {
    if !tools_present() {
        return;
    }
    let pair = start_pair();
    let mut failures = Vec::new();
    // A series selector that does not parse, where Prometheus reports the parser's position.
    let path = format!("/api/v1/series?match[]={}", enc("up{"));
    if let Err(err) = compare(
        &ask(pair.prom.port, &path),
        &ask(pair.strata.port, &path),
        false,
    ) {
        failures.push(format!("up{{\n    {path}\n    {err}"));
    }
    let exprs = [
        "1+",
        "rate(http_requests_total)",
        "sum by (job) (",
        "http_requests_total{job=}",
        "unknown_function(up)",
        "{job=~\".*\"}",
        "rate(http_requests_total[5m]",
        "http_requests_total[5m] + 1",
        "label_replace(temperature_celsius, \"x\", \"$1\", \"room\", \"(\")",
        "http_requests_total * on (job) build_info",
        "histogram_quantile(0.9, rate(http_requests_total[5m])) + on(job) group_left build_info",
        "",
    ];
    for e in exprs {
        for path in [
            format!("/api/v1/query?query={}&time={T1}", enc(e)),
            format!(
                "/api/v1/query_range?query={}&start={RANGE_START}&end={RANGE_END}&step={RANGE_STEP}",
                enc(e)
            ),
        ] {
            let want = ask(pair.prom.port, &path);
            let got = ask(pair.strata.port, &path);
            if let Err(err) = compare(&want, &got, false) {
                failures.push(format!("{e}\n    {path}\n    {err}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Range queries of expressions that are not instant vectors or scalars are refused alike.
#[test]
fn range_queries_of_the_wrong_type_fail_alike() {
    if !tools_present() {
        return;
    }
    let pair = start_pair();
    for query in QUERIES.iter().filter(|q| q.kind == Kind::InstantOnly) {
        let path = format!(
            "/api/v1/query_range?query={}&start={RANGE_START}&end={RANGE_END}&step={RANGE_STEP}",
            enc(query.expr)
        );
        let want = ask(pair.prom.port, &path);
        let got = ask(pair.strata.port, &path);
        assert_eq!(want.status, 400, "{}", want.json);
        if let Err(e) = compare(&want, &got, false) {
            panic!("{}: {e}", query.expr);
        }
    }
}

/// An expired timeout: Prometheus picks "query queue" or "query execution" at random (a Go
/// select with both cases ready), so either text is accepted.
#[test]
fn expired_timeouts_fail_like_prometheus() {
    if !tools_present() {
        return;
    }
    let pair = start_pair();
    for path in [
        "/api/v1/query?query=1&timeout=0.000001",
        "/api/v1/query_range?query=1&start=1&end=2&step=1&timeout=0",
    ] {
        for port in [pair.prom.port, pair.strata.port] {
            let a = ask(port, path);
            assert_eq!(a.status, 503, "{path}: {}", a.json);
            assert_eq!(a.json["errorType"], "timeout");
            let msg = a.json["error"].as_str().unwrap_or_default();
            assert!(
                msg == "query timed out in query queue"
                    || msg == "query timed out in query execution",
                "{path}: {msg}"
            );
        }
    }
}

/// Labels, label values and series over the same blocks, restricted to the data's time range
/// (Prometheus' own head holds its self-scrape at the current time).
#[test]
fn metadata_endpoints_answer_like_prometheus() {
    if !tools_present() {
        return;
    }
    let pair = start_pair();
    let range = format!("start={START}&end={}", START + HOURS * 3600);
    let part = format!("start={}&end={}", START + 7_300, START + 9_000);
    let sel = |s: &str| enc(s);
    let paths = [
        format!("/api/v1/labels?{range}"),
        format!("/api/v1/labels?{range}&match[]={}", sel("build_info")),
        format!("/api/v1/label/__name__/values?{range}"),
        format!("/api/v1/label/job/values?{range}"),
        format!(
            "/api/v1/label/le/values?{range}&match[]={}",
            sel("{job=\"web\"}")
        ),
        format!("/api/v1/label/nonexistent/values?{range}"),
        format!(
            "/api/v1/series?{range}&match[]={}",
            sel("http_requests_total{code=\"500\"}")
        ),
        format!(
            "/api/v1/series?{range}&match[]={}&match[]={}",
            sel("temperature_celsius"),
            sel("{room=~\"k.*\"}")
        ),
        format!("/api/v1/series?{part}&match[]={}", sel("sparse_metric")),
        format!("/api/v1/series?{range}&match[]={}", sel("{job=~\".*\"}")),
        format!("/api/v1/series?{range}"),
        format!("/api/v1/label/1x/values?{range}"),
        "/api/v1/labels?start=x".to_string(),
        "/api/v1/query_range?query=up&start=2&end=1&step=1".to_string(),
        "/api/v1/query_range?query=up&start=1&end=2&step=0".to_string(),
        "/api/v1/query_range?query=up&start=0&end=11001&step=1".to_string(),
        "/api/v1/query_range?query=up&end=2&step=1".to_string(),
        "/api/v1/query?query=up&time=x".to_string(),
        "/api/v1/query?query=up&timeout=x".to_string(),
        "/api/v1/status/buildinfo".to_string(),
        "/api/v1/metadata".to_string(),
    ];
    let mut failures = Vec::new();
    for path in &paths {
        let want = ask(pair.prom.port, path);
        let got = ask(pair.strata.port, path);
        let same = if path.contains("buildinfo") {
            // Same shape, different build.
            want.status == got.status
                && want.json["data"]
                    .as_object()
                    .map(|o| o.keys().collect::<Vec<_>>())
                    == got.json["data"].as_object().map(|o| o.keys().collect())
        } else {
            want.status == got.status && want.json == got.json
        };
        if !same {
            failures.push(format!(
                "{path}\n    prometheus {} {}\n    strata     {} {}",
                want.status,
                short(&want.json),
                got.status,
                short(&got.json)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Browsers (CORS) and compressing clients see the same headers from both servers.
#[test]
fn cors_and_compression_behave_like_prometheus() {
    if !tools_present() {
        return;
    }
    let pair = start_pair();
    let path = "/api/v1/query?query=up&time=4";
    const CORS: [&str; 4] = [
        "access-control-allow-origin",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-expose-headers",
    ];
    // `Vary` may also name Accept-Encoding (Strata's compression says so even when it did not
    // compress); CORS only decides whether it names Origin.
    let cors_of = |r: &RawReply| -> (Vec<Option<String>>, bool) {
        let vary_origin = r.headers.iter().any(|(k, v)| {
            k == "vary"
                && v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("origin"))
        });
        let fixed = CORS
            .iter()
            .map(|h| r.header(h).map(str::to_owned))
            .collect();
        (fixed, vary_origin)
    };
    for (method, headers) in [
        ("GET", vec![("Origin", "https://grafana.example")]),
        ("OPTIONS", vec![("Origin", "https://grafana.example")]),
        ("GET", vec![]),
    ] {
        let want = request_raw(pair.prom.port, method, path, &headers);
        let got = request_raw(pair.strata.port, method, path, &headers);
        assert_eq!(got.status, want.status, "{method} {headers:?}: status");
        assert_eq!(
            cors_of(&got),
            cors_of(&want),
            "{method} {headers:?}: CORS headers"
        );
    }

    for encoding in ["gzip", "deflate"] {
        let want = request_raw(
            pair.prom.port,
            "GET",
            path,
            &[("Accept-Encoding", encoding)],
        );
        let got = request_raw(
            pair.strata.port,
            "GET",
            path,
            &[("Accept-Encoding", encoding)],
        );
        assert_eq!(want.header("content-encoding"), Some(encoding));
        assert_eq!(got.header("content-encoding"), Some(encoding), "{encoding}");
        let (want, got) = (decode(encoding, &want.body), decode(encoding, &got.body));
        let (want, got): (Json, Json) = (
            serde_json::from_slice(&want).expect("prometheus JSON"),
            serde_json::from_slice(&got).expect("strata JSON"),
        );
        assert_eq!(got, want, "{encoding}: decoded answers");
    }
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
        _ => flate2::read::ZlibDecoder::new(body).read_to_end(&mut out),
    }
    .unwrap_or_else(|e| panic!("{encoding} body does not decode: {e}"));
    out
}
