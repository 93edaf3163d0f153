//! Replica deduplication as a user meets it: a real `strata query --query.replica-label
//! replica` over a FILESYSTEM bucket holding two Prometheus replicas' blocks (promtool-made,
//! uploaded with `--label replica="A"` and `"B"`), with clocks 40 s apart, gaps on both and
//! scrape latency jitter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::*;
use std::path::Path;
use std::process::Command;
use storage::labels::Labels;
use storage::testing::prometheus::create_blocks_from_openmetrics;
use storage::testing::{promtool_available, write_openmetrics};

const SCRAPE_MS: i64 = 15_000;
const SPAN_MS: i64 = 2 * 3600 * 1000;

/// The true counter at `t` ms after START: 10/s ± 5/s, starting high so that a fake reset
/// would be a huge spike.
fn truth(t: i64) -> f64 {
    let s = t as f64 / 1000.0;
    let w = std::f64::consts::TAU / 600.0;
    1e6 + 10.0 * s + 5.0 * (1.0 - (w * s).cos()) / w
}

/// One replica's series: scrapes every 15 s from `phase`, stamps `skew` ms off, the value read
/// up to 2 s late, nothing inside `gaps` (minutes after START).
fn replica(phase: i64, skew: i64, gaps: &[(i64, i64)]) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let base = START * 1000;
    let mut x = Vec::new();
    let mut up = Vec::new();
    let mut at = phase;
    let mut k: i64 = phase + 1;
    while at + skew.max(0) < SPAN_MS {
        k = (k * 1_103_515_245 + 12_345) % 2_147_483_648;
        if !gaps
            .iter()
            .any(|&(a, b)| at >= a * 60_000 && at < b * 60_000)
        {
            x.push((base + at + skew, truth(at + k % 2_000)));
            up.push((base + at + skew, 1.0));
        }
        at += SCRAPE_MS;
    }
    let l = |n: &str| Labels::from_pairs([("__name__", n), ("job", "api")]);
    vec![(l("x_total"), x), (l("up"), up)]
}

fn strata(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata");
    assert!(
        out.status.success(),
        "strata {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes each replica's blocks with promtool and uploads them with its replica label.
fn bucket_with_two_replicas(work: &Path) -> std::path::PathBuf {
    let data = work.join("strata");
    let replicas = [
        ("A", replica(0, -20_000, &[(30, 36), (70, 73)])),
        ("B", replica(6_000, 20_000, &[(10, 14), (50, 55), (95, 97)])),
    ];
    for (name, series) in replicas {
        let om = work.join(format!("{name}.om"));
        write_openmetrics(&om, &series).expect("openmetrics");
        let prom = work.join(format!("prom-{name}"));
        create_blocks_from_openmetrics(&om, &prom).expect("promtool");
        strata(&[
            "tools",
            "bucket",
            "upload",
            "--data-dir",
            data.to_str().unwrap(),
            "--path",
            prom.to_str().unwrap(),
            "--label",
            &format!("replica=\"{name}\""),
        ]);
    }
    data
}

fn result(reply: &Reply) -> Vec<serde_json::Value> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn instant(port: u16, query: &str, extra: &str) -> Vec<serde_json::Value> {
    let t = (START * 1000 + SPAN_MS - 60_000) / 1000;
    result(&post(
        port,
        "/api/v1/query",
        &format!("query={}&time={t}{extra}", enc(query)),
    ))
}

fn value(v: &serde_json::Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

#[test]
fn a_querier_deduplicates_two_skewed_gappy_replicas_without_rate_spikes() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = bucket_with_two_replicas(tmp.path());
    let data_flag = format!("--data-dir={}", data.display());
    let mut q = StrataQuery::spawn(tmp.path(), &[&data_flag, "--query.replica-label=replica"]);
    q.wait_until("ready", std::time::Duration::from_secs(60), |q| {
        request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    let port = q.port;

    // Series counts: halved by dedup, doubled without it; the request's label list wins.
    let count = |extra: &str| value(&instant(port, "count(up)", extra)[0]["value"][1]);
    assert_eq!(count(""), 1.0);
    assert_eq!(count("&dedup=false"), 2.0);
    assert_eq!(count("&replicaLabels[]=zone"), 2.0);
    assert_eq!(count("&replicaLabels[]=replica&dedup=true"), 1.0);
    let up = instant(port, "up", "");
    assert!(up[0]["metric"].get("replica").is_none(), "{up:?}");

    // Counter functions over the whole range stay within the true rate (5..15/s).
    let (start, end) = (START + 600, START + SPAN_MS / 1000 - 60);
    for (query, scale) in [
        ("rate(x_total[5m])", 1.0),
        ("irate(x_total[5m])", 1.0),
        ("increase(x_total[5m])", 300.0),
        ("sum(rate(x_total[5m]))", 1.0),
        ("max_over_time(rate(x_total[5m])[30m:1m])", 1.0),
    ] {
        let r = result(&post(
            port,
            "/api/v1/query_range",
            &format!("query={}&start={start}&end={end}&step=60", enc(query)),
        ));
        assert_eq!(r.len(), 1, "{query}: {r:?}");
        let points = r[0]["values"].as_array().expect("values");
        assert!(points.len() > 60, "{query}: {} points", points.len());
        for p in points {
            let per_s = value(&p[1]) / scale;
            assert!(
                (4.0..=18.0).contains(&per_s),
                "{query} at {}: {per_s}/s",
                p[0]
            );
        }
    }
    let resets = result(&post(
        port,
        "/api/v1/query",
        &format!("query={}&time={end}", enc("resets(x_total[2h])")),
    ));
    assert_eq!(value(&resets[0]["value"][1]), 0.0, "{resets:?}");

    // Metadata endpoints follow the same parameters.
    let series = |extra: &str| {
        let r = get(port, &format!("/api/v1/series?match[]=up{extra}"));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"].as_array().cloned().unwrap_or_default()
    };
    assert_eq!(series("").len(), 1);
    assert_eq!(series("&dedup=false").len(), 2);
    let labels =
        |extra: &str| get(port, &format!("/api/v1/labels?x=1{extra}")).json()["data"].clone();
    assert!(!labels("")
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "replica"));
    assert!(labels("&dedup=false")
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "replica"));
    let values = get(port, "/api/v1/label/replica/values?dedup=false").json();
    assert_eq!(values["data"], serde_json::json!(["A", "B"]));

    // A bad parameter is refused with Thanos' message.
    let bad = get(port, "/api/v1/query?query=up&dedup=perhaps");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["errorType"], "bad_data");
    assert!(bad.body.contains("'dedup' parameter"), "{}", bad.body);
}
