//! Large inputs are evaluated on several cores: their answers must be exactly those of the
//! same work done in small pieces (which stay on one thread), series order included.

use promql::{Engine, MemoryQueryable, Sample, Series, Value};
use storage::labels::Labels;

const SERIES: usize = 240;
const SAMPLES: i64 = 2_000;
/// Groups small enough that one group's aggregation stays under the split threshold.
const GROUPS: usize = 12;
const STEP_MS: i64 = 15_000;

/// Counters with resets, gauges with NaNs and gaps: enough variety that a misplaced window
/// or a series swapped between parts changes some value.
fn store() -> MemoryQueryable {
    let mut q = MemoryQueryable::new();
    for i in 0..SERIES {
        let samples: Vec<(i64, f64)> = (0..SAMPLES)
            .filter(|k| (k + i as i64) % 97 != 0)
            .map(|k| {
                let v = match i % 3 {
                    0 => ((k * (i as i64 + 1)) % 500) as f64,
                    1 if k % 31 == 5 => f64::NAN,
                    _ => ((k as f64) * 0.37 + i as f64).sin() * 100.0,
                };
                (k * STEP_MS, v)
            })
            .collect();
        q.append(
            Labels::from_pairs([
                ("__name__", "m".to_string()),
                ("g", (i % GROUPS).to_string()),
                ("i", format!("{i:03}")),
            ]),
            &samples,
        );
    }
    q
}

async fn range(e: &Engine, q: &MemoryQueryable, query: &str) -> Vec<Series> {
    let end = (SAMPLES - 1) * STEP_MS;
    match e.range_query(q, query, 0, end, STEP_MS).await {
        Ok(r) => match r.value {
            Value::Matrix(m) => m,
            other => panic!("{query}: not a matrix: {other:?}"),
        },
        Err(err) => panic!("{query}: {err}"),
    }
}

fn bits(s: &[Series]) -> Vec<(String, Vec<(i64, u64)>)> {
    s.iter()
        .map(|s| {
            (
                s.metric.to_string(),
                s.points.iter().map(|&(t, v)| (t, v.to_bits())).collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn range_functions_split_across_cores_equal_series_by_series() {
    let (e, q) = (Engine::default(), store());
    for f in [
        "rate(m[5m])",
        "max_over_time(m[10m])",
        "min_over_time(m[3m])",
        "avg_over_time(m[10m])",
        "last_over_time(m[1m])",
        "predict_linear(m[10m], 60)",
    ] {
        let whole = range(&e, &q, f).await;
        let mut pieces = Vec::new();
        for i in 0..SERIES {
            let one = f.replacen("m[", &format!("m{{i=\"{i:03}\"}}["), 1);
            pieces.extend(range(&e, &q, &one).await);
        }
        pieces.sort_by(|a, b| a.metric.cmp(&b.metric));
        assert!(!whole.is_empty(), "{f}");
        let (w, p) = (bits(&whole), bits(&pieces));
        assert_eq!(w.len(), p.len(), "{f}: series count");
        for (a, b) in w.iter().zip(&p) {
            assert_eq!(a.0, b.0, "{f}: series order");
            let diff = a.1.iter().zip(&b.1).position(|(x, y)| x != y);
            assert_eq!(diff, None, "{f}: {} differs at point {diff:?}", a.0);
            assert_eq!(a.1.len(), b.1.len(), "{f}: {} point count", a.0);
        }
    }
}

#[tokio::test]
async fn aggregations_split_across_steps_equal_group_by_group() {
    let (e, q) = (Engine::default(), store());
    for (open, param) in [
        ("sum", ""),
        ("avg", ""),
        ("max", ""),
        ("stddev", ""),
        ("count", ""),
        ("quantile", "0.3, "),
    ] {
        let op = open;
        let whole = range(&e, &q, &format!("{open} by (g) ({param}m)")).await;
        assert_eq!(whole.len(), GROUPS, "{op}");
        for got in &whole {
            let k = got.metric.get("g").unwrap_or_default();
            let one = range(&e, &q, &format!("{open}({param}m{{g=\"{k}\"}})")).await;
            assert_eq!(
                bits(std::slice::from_ref(got))[0].1,
                bits(&one)[0].1,
                "{op} group {k}"
            );
        }
    }
}

#[tokio::test]
async fn instant_vectors_split_across_cores_keep_the_input_order() {
    let (e, q) = (Engine::default(), store());
    let at = (SAMPLES - 1) * STEP_MS;
    let instant = |query: String| {
        let (e, q) = (&e, &q);
        async move {
            match e.instant_query(q, &query, at).await.map(|r| r.value) {
                Ok(Value::Vector(v)) => v,
                other => panic!("{query}: {other:?}"),
            }
        }
    };
    // Long windows: every series' whole history, far above the split threshold.
    let whole: Vec<Sample> = instant("max_over_time(m[10h])".into()).await;
    let mut pieces = Vec::new();
    for i in 0..SERIES {
        pieces.extend(instant(format!("max_over_time(m{{i=\"{i:03}\"}}[10h])")).await);
    }
    pieces.sort_by(|a, b| a.metric.cmp(&b.metric));
    assert_eq!(whole.len(), SERIES);
    assert_eq!(whole, pieces);
}
