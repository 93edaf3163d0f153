//! `strata query` as a user runs it: a real process over a FILESYSTEM bucket of promtool-made
//! blocks, answering Prometheus' HTTP API. These checks need no PromQL evaluation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use storage::testing::promtool_available;

/// A `strata query` over the test data set, ready.
fn start() -> (tempfile::TempDir, StrataQuery) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    assert_eq!(blocks.len(), 3, "6 h of data make three 2 h blocks");
    let data = tmp.path().join("strata");
    copy_blocks(&blocks, &data.join("bucket"));
    let q = StrataQuery::start_ready(tmp.path(), &data);
    (tmp, q)
}

macro_rules! need_promtool {
    () => {
        if !promtool_available() {
            eprintln!("SKIPPED: promtool not on PATH");
            return;
        }
    };
}

fn assert_error(reply: &Reply, status: u16, error_type: &str, message: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let want = serde_json::json!({"status": "error", "errorType": error_type, "error": message});
    assert_eq!(reply.json(), want, "{}", reply.body);
}

#[test]
fn health_readiness_and_buildinfo_answer_like_prometheus() {
    need_promtool!();
    let (_tmp, q) = start();
    assert_eq!(get(q.port, "/-/healthy").status, 200);
    assert_eq!(get(q.port, "/-/ready").status, 200);
    let info = get(q.port, "/api/v1/status/buildinfo").json();
    assert_eq!(info["status"], "success");
    let data = info["data"].as_object().expect("buildinfo object");
    let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "version",
            "revision",
            "branch",
            "buildUser",
            "buildDate",
            "goVersion"
        ]),
        "Prometheus' fields and no `features`, which Grafana reads as Mimir"
    );
    assert_eq!(data["version"], "2.42.0");
    let flags = get(q.port, "/api/v1/status/flags").json();
    assert_eq!(flags["data"]["query.lookback-delta"], "5m");
    assert_eq!(flags["data"]["query.max-samples"], "50000000");
    assert_eq!(flags["data"]["query.timeout"], "2m");
    assert_eq!(flags["data"]["query.max-concurrent"], "20");
    assert_eq!(
        get(q.port, "/api/v1/metadata").body,
        r#"{"status":"success","data":{}}"#
    );
    assert_eq!(
        get(q.port, "/api/v1/query_exemplars?query=up").body,
        r#"{"status":"success","data":[]}"#
    );
    assert_eq!(get(q.port, "/api/v1/query_exemplars?query=1").status, 204);
    assert_eq!(get(q.port, "/no/such/path").status, 404);
    assert_eq!(post(q.port, "/api/v1/metadata", "").status, 405);
}

#[test]
fn labels_series_and_label_values_match_the_data() {
    need_promtool!();
    let (_tmp, q) = start();
    let data = dataset();
    let names: BTreeSet<String> = data
        .iter()
        .flat_map(|(l, _)| l.iter().map(|l| l.name.clone()))
        .collect();
    let got = get(q.port, "/api/v1/labels").json();
    assert_eq!(got["data"], serde_json::json!(names));

    let jobs: BTreeSet<&str> = data.iter().filter_map(|(l, _)| l.get("job")).collect();
    let got = get(q.port, "/api/v1/label/job/values").json();
    assert_eq!(got["data"], serde_json::json!(jobs));
    let metric_names: BTreeSet<&str> = data.iter().filter_map(|(l, _)| l.get("__name__")).collect();
    let got = get(q.port, "/api/v1/label/__name__/values").json();
    assert_eq!(got["data"], serde_json::json!(metric_names));

    // Series of job api, read with GET and with a POST form as Grafana sends it.
    let range = format!("start={}&end={}", START + 3600, START + 7200);
    let want_sets: BTreeSet<&storage::labels::Labels> = data
        .iter()
        .map(|(l, _)| l)
        .filter(|l| l.get("__name__") == Some("http_requests_total") && l.get("job") == Some("api"))
        .collect();
    let want: Vec<serde_json::Value> = want_sets
        .into_iter()
        .map(|l| serde_json::json!(l.to_map()))
        .collect();
    assert_eq!(want.len(), 12);
    let selector = enc("http_requests_total{job=\"api\"}");
    let by_get = get(
        q.port,
        &format!("/api/v1/series?match[]={selector}&{range}"),
    )
    .json();
    assert_eq!(by_get["data"], serde_json::json!(want), "sorted by labels");
    let by_post = post(
        q.port,
        "/api/v1/series",
        &format!("match%5B%5D={selector}&{range}"),
    )
    .json();
    assert_eq!(by_post["data"], by_get["data"]);

    // Two selectors are merged and de-duplicated.
    let both = get(
        q.port,
        &format!(
            "/api/v1/series?match[]={selector}&match[]={}&{range}",
            enc("{__name__=\"http_requests_total\",code=\"500\",job=\"api\"}")
        ),
    )
    .json();
    assert_eq!(both["data"], by_get["data"]);

    // Label values restricted by match[].
    let got = get(
        q.port,
        &format!(
            "/api/v1/label/le/values?match[]={}",
            enc("request_duration_seconds_bucket{job=\"web\"}")
        ),
    )
    .json();
    assert_eq!(
        got["data"],
        serde_json::json!(["+Inf", "0.05", "0.1", "0.25", "0.5", "1"])
    );
    // A range after the data holds nothing.
    let later = format!("start={}&end={}", START + 86_400, START + 90_000);
    assert_eq!(
        get(q.port, &format!("/api/v1/labels?{later}")).body,
        r#"{"status":"success","data":[]}"#
    );
    assert_eq!(
        get(
            q.port,
            &format!("/api/v1/series?match[]={selector}&{later}")
        )
        .body,
        r#"{"status":"success","data":[]}"#
    );
}

#[test]
fn impossible_parameters_get_prometheus_errors() {
    need_promtool!();
    let (_tmp, q) = start();
    let p = q.port;
    assert_error(
        &get(p, "/api/v1/query_range?query=up&start=2&end=1&step=1"),
        400,
        "bad_data",
        "invalid parameter \"end\": end timestamp must not be before start time",
    );
    let zero_step = "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer";
    assert_error(
        &get(p, "/api/v1/query_range?query=up&start=1&end=2&step=0"),
        400,
        "bad_data",
        zero_step,
    );
    assert_error(
        &get(p, "/api/v1/query_range?query=up&start=1&end=2&step=-5"),
        400,
        "bad_data",
        zero_step,
    );
    assert_error(
        &post(p, "/api/v1/query_range", "query=up&start=0&end=11001&step=1"),
        400,
        "bad_data",
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
    );
    assert_error(
        &get(
            p,
            "/api/v1/query_range?query=up&start=yesterday&end=2&step=1",
        ),
        400,
        "bad_data",
        "invalid parameter \"start\": cannot parse \"yesterday\" to a valid timestamp",
    );
    assert_error(
        &get(p, "/api/v1/query_range?query=up&start=1&end=2&step=1q"),
        400,
        "bad_data",
        "invalid parameter \"step\": cannot parse \"1q\" to a valid duration",
    );
    assert_error(
        &get(p, "/api/v1/query?query=up&time=x"),
        400,
        "bad_data",
        "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"x\" to a valid timestamp",
    );
    assert_error(
        &get(p, "/api/v1/query?query=up&timeout=soon"),
        400,
        "bad_data",
        "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration",
    );
    assert_error(
        &get(p, "/api/v1/series"),
        400,
        "bad_data",
        "no match[] parameter provided",
    );
    assert_error(
        &get(p, "/api/v1/label/0bad/values"),
        400,
        "bad_data",
        "invalid label name: \"0bad\"",
    );
    assert_error(
        &get(
            p,
            &format!("/api/v1/series?match[]={}", enc("{job=~\".*\"}")),
        ),
        400,
        "bad_data",
        "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher",
    );
    assert_error(
        &get(p, &format!("/api/v1/labels?match[]={}", enc("{job=\"\"}"))),
        400,
        "bad_data",
        "match[] must contain at least one non-empty matcher",
    );
    assert_error(
        &request(p, "DELETE", "/api/v1/series?match[]=up", None).expect("DELETE"),
        500,
        "internal",
        "not implemented",
    );
}

#[test]
fn a_timeout_that_has_passed_fails_as_execution_starts() {
    need_promtool!();
    let (_tmp, q) = start();
    assert_error(
        &get(q.port, "/api/v1/query?query=1&timeout=0.000001"),
        503,
        "timeout",
        "query timed out in query execution",
    );
    assert_error(
        &post(
            q.port,
            "/api/v1/query_range",
            "query=1&start=1&end=2&step=1&timeout=0",
        ),
        503,
        "timeout",
        "query timed out in query execution",
    );
}

#[test]
fn metrics_count_requests_by_handler_and_expose_bucket_metrics() {
    need_promtool!();
    let (_tmp, q) = start();
    for _ in 0..3 {
        assert_eq!(get(q.port, "/api/v1/labels").status, 200);
    }
    let m = get(q.port, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains(
            "http_requests_total{code=\"200\",handler=\"/api/v1/labels\",method=\"GET\"} 3"
        ),
        "{}",
        m.body
    );
    assert!(m.body.contains("http_request_duration_seconds_bucket{"));
    assert!(
        m.body.contains("strata_query_blocks_loaded 3"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .lines()
            .any(|l| l.starts_with("strata_objstore_bucket_operations_total{")),
        "bucket metrics are exposed: {}",
        m.body
    );
}

#[test]
fn stops_cleanly_on_sigterm() {
    need_promtool!();
    let (_tmp, mut q) = start();
    let status = q.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}\n{}", q.log());
    assert!(q.log().contains("stopped"), "{}", q.log());
}

/// The engine holds what it loads, so `--query.max-samples` stops a query while its samples are
/// being loaded, with Prometheus' error, and the querier goes on serving.
#[test]
fn a_query_loading_more_than_max_samples_fails_with_prometheus_error() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    let data = tmp.path().join("strata");
    copy_blocks(&blocks, &data.join("bucket"));
    let data_flag = format!("--data-dir={}", data.display());
    let mut q = StrataQuery::spawn(tmp.path(), &[&data_flag, "--query.max-samples=5000"]);
    q.wait_until("ready", Duration::from_secs(60), |q| {
        request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    let t = START + 6 * 3600;
    // 24 series x 1,440 samples over 6 h: far over 5,000.
    let big = get(
        q.port,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("sum(count_over_time(http_requests_total[6h]))")
        ),
    );
    assert_error(
        &big,
        422,
        "execution",
        "query processing would load too many samples into memory in query execution",
    );
    // A 5 m window (24 x 20 samples) fits.
    let small = get(
        q.port,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("count(http_requests_total)")
        ),
    );
    assert_eq!(small.status, 200, "{small:?}");
    assert_eq!(small.json()["data"]["result"][0]["value"][1], "24");
}

#[test]
fn an_invalid_cors_origin_regex_is_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "query",
            "--http-address=127.0.0.1:0",
            "--grpc-address=127.0.0.1:0",
            "--web.cors.origin=(grafana",
        ])
        .arg(format!("--data-dir={}", tmp.path().display()))
        .output()
        .expect("run strata");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--web.cors.origin \"(grafana\" is not a valid regex"),
        "{err}"
    );
}

#[test]
fn not_ready_while_the_bucket_is_unreachable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // An S3 endpoint where nothing listens: listing blocks keeps failing.
    let port = storage::testing::prometheus::free_port().expect("port");
    let config = format!(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:{port}\n  insecure: true\n  access_key: k\n  secret_key: s\n"
    );
    let cfg = format!("--objstore.config={config}");
    let mut q = StrataQuery::spawn(tmp.path(), &[&cfg]);
    q.wait_until("healthy", Duration::from_secs(30), |q| {
        request(q.port, "GET", "/-/healthy", None).is_ok_and(|r| r.status == 200)
    });
    assert_eq!(get(q.port, "/-/ready").status, 503);
    let api = get(q.port, "/api/v1/labels");
    assert_eq!(api.status, 503, "no answers from a partial view");
    assert_eq!(api.body, "Service Unavailable");
}
