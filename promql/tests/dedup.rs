//! Deduplication of two HA replicas under PromQL: clocks skewed by 20-40 s, gaps on both
//! replicas, scrape latency jitter. Counter functions over the deduplicated data must stay in
//! the true rate's range wherever the counter sits in the expression (thanos#2890, #7623).

use promql::dedup::Deduplicated;
use promql::{Engine, MemoryQueryable, Value};
use storage::dedup::{dedup_samples, Mode};
use storage::labels::Labels;

const SCRAPE: i64 = 15_000;
const END: i64 = 2 * 3600 * 1000;
/// The true rate is 10/s ± 5/s.
const RATE_LO: f64 = 5.0;
const RATE_HI: f64 = 15.0;

/// The true counter at real time `t` ms (starting high, so a fake reset is a huge spike).
fn truth(t: i64) -> f64 {
    let s = t as f64 / 1000.0;
    let w = std::f64::consts::TAU / 600.0;
    1e6 + 10.0 * s + 5.0 * (1.0 - (w * s).cos()) / w
}

/// One replica: scrapes every 15 s from `phase`, stamps `skew` ms off real time, reads the
/// value up to 2 s late, nothing inside `gaps` (minutes).
fn replica(phase: i64, skew: i64, gaps: &[(i64, i64)], seed: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut at = phase;
    let mut k = seed;
    while at <= END {
        k = (k * 1_103_515_245 + 12_345) % 2_147_483_648;
        let latency = k % 2_000;
        if !gaps
            .iter()
            .any(|&(a, b)| at >= a * 60_000 && at < b * 60_000)
        {
            out.push((at + skew, truth(at + latency)));
        }
        at += SCRAPE;
    }
    out
}

fn labels(name: &str, replica: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", "api"), ("replica", replica)])
}

/// Two replicas of counter `x` and gauge `up`; `skew_a`, `skew_b` in ms.
fn store(skew_a: i64, skew_b: i64) -> (MemoryQueryable, Vec<Vec<(i64, f64)>>) {
    let a = replica(0, skew_a, &[(40, 46), (80, 83), (110, 112)], 7);
    let b = replica(6_000, skew_b, &[(20, 24), (60, 65), (95, 97)], 11);
    let mut q = MemoryQueryable::new();
    for (r, s) in [("A", &a), ("B", &b)] {
        q.append(labels("x", r), s);
        let up: Vec<_> = s.iter().map(|&(t, _)| (t, 1.0)).collect();
        q.append(labels("up", r), &up);
    }
    (q, vec![a, b])
}

fn points(v: &Value) -> Vec<(i64, f64)> {
    match v {
        Value::Vector(s) => s.iter().map(|s| (s.t, s.v)).collect(),
        Value::Matrix(m) => m.iter().flat_map(|s| s.points.iter().copied()).collect(),
        Value::Scalar { t, v } => vec![(*t, *v)],
        Value::String { .. } => Vec::new(),
    }
}

fn series_count(v: &Value) -> usize {
    match v {
        Value::Vector(s) => s.len(),
        Value::Matrix(m) => m.len(),
        _ => 0,
    }
}

const SKEWS: [(i64, i64); 3] = [(-20_000, 20_000), (0, 40_000), (25_000, -15_000)];

#[tokio::test]
async fn the_scenario_makes_naive_dedup_invent_resets() {
    // Guards the test data: without counter handling these replicas produce fake resets.
    for (sa, sb) in SKEWS {
        let (_, replicas) = store(sa, sb);
        let plain = dedup_samples(replicas, Mode::Plain);
        let drops = plain.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(drops > 0, "skews {sa}/{sb}: no switch to a late replica");
    }
}

#[tokio::test]
async fn counter_functions_stay_within_the_true_rate_over_deduplicated_replicas() {
    let engine = Engine::default();
    let (lo, hi) = (RATE_LO * 0.8, RATE_HI * 1.2);
    let cases: [(&str, f64); 8] = [
        ("rate(x[5m])", 1.0),
        ("irate(x[5m])", 1.0),
        ("increase(x[5m])", 300.0),
        ("sum(rate(x[5m]))", 1.0),
        ("sum by (job) (rate(x[5m]))", 1.0),
        ("rate(x[5m])[30m:1m]", 1.0),
        ("max_over_time(rate(x[5m])[30m:1m])", 1.0),
        ("rate(sum(x)[5m:30s])", 1.0),
    ];
    for (sa, sb) in SKEWS {
        let (q, _) = store(sa, sb);
        let q = Deduplicated::new(q, vec!["replica".into()]);
        for (query, scale) in cases {
            let r = if query.contains("[30m:1m]") {
                engine.instant_query(&q, query, END).await
            } else {
                engine.range_query(&q, query, 1_800_000, END, 60_000).await
            }
            .unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(series_count(&r.value), 1, "{query}");
            let pts = points(&r.value);
            let want = if query.starts_with("max_over_time") {
                1
            } else {
                30
            };
            assert!(pts.len() >= want, "{query}: {} points", pts.len());
            for (t, v) in pts {
                let per_s = v / scale;
                assert!(
                    per_s >= lo && per_s <= hi,
                    "skews {sa}/{sb}: {query} at {t} = {v}, true rate is {RATE_LO}..{RATE_HI}/s"
                );
            }
        }
        let r = engine
            .range_query(&q, "resets(x[5m])", 1_800_000, END, 60_000)
            .await
            .expect("resets");
        assert!(
            points(&r.value).iter().all(|p| p.1 == 0.0),
            "skews {sa}/{sb}: resets"
        );
    }
}

#[tokio::test]
async fn dedup_halves_series_counts_and_drops_the_replica_label() {
    let engine = Engine::default();
    let (q, _) = store(0, 40_000);
    let raw = engine
        .instant_query(&q, "count(up)", END)
        .await
        .expect("raw");
    assert_eq!(points(&raw.value)[0].1, 2.0);
    let d = Deduplicated::new(q, vec!["replica".into()]);
    let dd = engine
        .instant_query(&d, "count(up)", END)
        .await
        .expect("dedup");
    assert_eq!(points(&dd.value)[0].1, 1.0);
    let r = engine.instant_query(&d, "up", END).await.expect("up");
    match &r.value {
        Value::Vector(v) => assert_eq!(v[0].metric.get("replica"), None),
        other => panic!("{other:?}"),
    }
    // A matcher on the replica label still selects that replica.
    let a = engine
        .instant_query(&d, "count(up{replica=\"A\"})", END)
        .await
        .expect("replica A");
    assert_eq!(points(&a.value)[0].1, 1.0);
}

/// Records the hints the engine passes with each selection.
struct Recorder(std::sync::Mutex<Vec<(String, bool)>>);

#[async_trait::async_trait]
impl promql::Queryable for Recorder {
    async fn select(
        &self,
        _: &[storage::matcher::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<promql::SeriesData>, promql::QueryError> {
        Ok(Vec::new())
    }

    async fn select_hinted(
        &self,
        matchers: &[storage::matcher::Matcher],
        _: i64,
        _: i64,
        _: &promql::SampleBudget,
        hints: promql::SelectHints,
    ) -> Result<Vec<promql::SeriesData>, promql::QueryError> {
        let name = format!("{:?}", matchers.first());
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, hints.counter));
        Ok(Vec::new())
    }

    async fn label_names(
        &self,
        _: &[storage::matcher::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, promql::QueryError> {
        Ok(Vec::new())
    }

    async fn label_values(
        &self,
        _: &str,
        _: &[storage::matcher::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, promql::QueryError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn selectors_beneath_counter_functions_are_read_as_counters() {
    let engine = Engine::default();
    for (query, want) in [
        ("x", vec![false]),
        ("rate(x[5m])", vec![true]),
        ("sum(rate(x[5m])) / sum(y)", vec![true, false]),
        ("max_over_time(increase(x[1m])[10m:1m])", vec![true]),
        ("rate(sum(x)[5m:1m])", vec![true]),
        (
            "resets(x[5m]) + irate(y[5m]) + delta(z[5m])",
            vec![true, true, false],
        ),
        ("avg_over_time(x[5m])", vec![false]),
    ] {
        let rec = Recorder(std::sync::Mutex::new(Vec::new()));
        engine
            .instant_query(&rec, query, 600_000)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let got: Vec<bool> = rec
            .0
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        assert_eq!(got, want, "{query}");
    }
}
