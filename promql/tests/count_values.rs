//! `count_values` range queries whose every distinct value is a series of its own: answered
//! like Prometheus (checked against a reference computed here from the raw samples), and
//! counted against `--query.max-samples` by the points present, not by series times steps.

use promql::{Engine, EngineOptions, MemoryQueryable, QueryError, Value};
use std::collections::BTreeMap;
use storage::labels::Labels;

const SCRAPE_MS: i64 = 15_000;
const LOOKBACK_MS: i64 = 300_000;

/// Series as appended: labels and samples.
type Raw = Vec<(Labels, Vec<(i64, f64)>)>;

/// Six series over two hours; values repeat across series at some steps and differ from step
/// to step, and series 5 has a gap from 30 to 60 minutes (longer than the lookback).
fn six_series() -> (MemoryQueryable, Raw) {
    let mut q = MemoryQueryable::new();
    let mut raw = Vec::new();
    for i in 0..6i64 {
        let samples: Vec<(i64, f64)> = (0..=480i64)
            .map(|k| (k * SCRAPE_MS, (k * ((i % 4) + 1)) as f64 / 4.0))
            .filter(|&(t, _)| i != 5 || !(1_800_000..3_600_000).contains(&t))
            .collect();
        let labels = Labels::from_pairs([
            ("__name__", "m".to_string()),
            ("i", i.to_string()),
            ("grp", (i % 2).to_string()),
        ]);
        q.append(labels.clone(), &samples);
        raw.push((labels, samples));
    }
    (q, raw)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` for the finite values used here.
fn go_float(v: f64) -> String {
    format!("{v}")
}

/// The answer keyed by label set: (timestamp, value) points.
type Answer = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

fn key(l: &Labels) -> Vec<(String, String)> {
    l.iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}

fn answer(v: &Value) -> Answer {
    let Value::Matrix(m) = v else {
        panic!("not a matrix: {v:?}")
    };
    m.iter()
        .map(|s| (key(&s.metric), s.points.clone()))
        .collect()
}

/// `count_values [by (grp)] ("v", m)` computed directly: at each step, each series' latest
/// sample within the lookback, counted per (group, formatted value).
fn reference(raw: &Raw, by_grp: bool, start: i64, end: i64, step: i64) -> Answer {
    let mut out = Answer::new();
    let mut t = start;
    while t <= end {
        let mut counts: BTreeMap<Vec<(String, String)>, f64> = BTreeMap::new();
        for (labels, samples) in raw {
            let Some(&(ts, v)) = samples.iter().rev().find(|&&(ts, _)| ts <= t) else {
                continue;
            };
            if t - ts >= LOOKBACK_MS {
                continue;
            }
            let mut k = Vec::new();
            if by_grp {
                k.push((
                    "grp".to_string(),
                    labels.get("grp").unwrap_or("").to_string(),
                ));
            }
            k.push(("v".to_string(), go_float(v)));
            *counts.entry(k).or_default() += 1.0;
        }
        for (k, c) in counts {
            out.entry(k).or_default().push((t, c));
        }
        t += step;
    }
    out
}

#[tokio::test]
async fn count_values_range_query_answers_like_the_reference() {
    let (q, raw) = six_series();
    let e = Engine::default();
    let (start, end, step) = (0, 2 * 3_600_000, 60_000);
    for (query, by_grp) in [
        (r#"count_values("v", m)"#, false),
        (r#"count_values by (grp) ("v", m)"#, true),
        (r#"(count_values by (grp) ("v", m))"#, true),
    ] {
        let got = e
            .range_query(&q, query, start, end, step)
            .await
            .unwrap_or_else(|err| panic!("{query}: {err}"));
        let want = reference(&raw, by_grp, start, end, step);
        assert!(want.len() > 200, "the reference has {} series", want.len());
        assert_eq!(answer(&got.value), want, "{query}");
        // An instant query at one step answers that step's points.
        let t = 40 * 60_000;
        let inst = e
            .instant_query(&q, query, t)
            .await
            .unwrap_or_else(|err| panic!("{query} at {t}: {err}"));
        let Value::Vector(v) = inst.value else {
            panic!("not a vector")
        };
        let mut at_t: Vec<(Vec<(String, String)>, f64)> =
            v.iter().map(|s| (key(&s.metric), s.v)).collect();
        at_t.sort_by(|a, b| a.0.cmp(&b.0));
        let want_t: Vec<(Vec<(String, String)>, f64)> = want
            .iter()
            .filter_map(|(k, p)| p.iter().find(|p| p.0 == t).map(|p| (k.clone(), p.1)))
            .collect();
        assert!(!want_t.is_empty());
        assert_eq!(at_t, want_t, "{query} at {t}");
    }
}

#[tokio::test]
async fn count_values_as_an_argument_answers_like_the_reference() {
    let (q, raw) = six_series();
    let e = Engine::default();
    let (start, end, step) = (0, 2 * 3_600_000, 60_000);
    // The sparse result is made dense for the consumer: same answer, summed per group.
    let got = e
        .range_query(
            &q,
            r#"sum by (grp) (count_values by (grp) ("v", m))"#,
            start,
            end,
            step,
        )
        .await
        .expect("sum of count_values");
    let mut want = Answer::new();
    for (k, points) in reference(&raw, true, start, end, step) {
        let g = k
            .into_iter()
            .filter(|(n, _)| n == "grp")
            .collect::<Vec<_>>();
        let e = want.entry(g).or_default();
        for (t, c) in points {
            match e.iter_mut().find(|p| p.0 == t) {
                Some(p) => p.1 += c,
                None => e.push((t, c)),
            }
        }
    }
    for p in want.values_mut() {
        p.sort_by_key(|p| p.0);
    }
    assert_eq!(answer(&got.value), want);
}

/// Four counters whose every value is distinct, over `steps` steps of 15 s.
fn distinct_counters(steps: i64) -> MemoryQueryable {
    let mut q = MemoryQueryable::new();
    for cpu in 0..4i64 {
        let samples: Vec<(i64, f64)> = (0..steps)
            .map(|k| (k * SCRAPE_MS, (cpu * 1_000_000 + k) as f64))
            .collect();
        q.append(
            Labels::from_pairs([
                ("__name__", "cpu_seconds".to_string()),
                ("cpu", cpu.to_string()),
            ]),
            &samples,
        );
    }
    q
}

#[tokio::test]
async fn max_samples_counts_the_points_present_like_prometheus() {
    const STEPS: i64 = 2_000;
    let q = distinct_counters(STEPS);
    let query = r#"count_values("v", cpu_seconds)"#;
    let end = (STEPS - 1) * SCRAPE_MS;
    // Prometheus holds the selected input (4 x 2,000 points) plus every output point (one per
    // input point here: 8,000 series of one point each), 16,000 in all. Counting a cell per
    // step for each output series instead would need 8,000 x 2,000 = 16 million.
    let points = 2 * 4 * STEPS as usize;
    let run = |max_samples: usize| {
        let q = &q;
        async move {
            Engine::new(EngineOptions {
                max_samples,
                ..EngineOptions::default()
            })
            .range_query(q, query, 0, end, SCRAPE_MS)
            .await
        }
    };
    let ok = run(points).await.expect("answer at the limit");
    let Value::Matrix(m) = &ok.value else {
        panic!("not a matrix")
    };
    assert_eq!(m.len(), 4 * STEPS as usize);
    assert!(m
        .iter()
        .all(|s| s.points.len() == 1 && s.points[0].1 == 1.0));
    assert_eq!(
        run(points - 1).await,
        Err(QueryError::TooManySamples("query execution"))
    );
    // Not sparse yet: a consumer gets the output made dense, whose cells are counted (and
    // refused here) before they are allocated.
    let r = Engine::new(EngineOptions {
        max_samples: 1_000_000,
        ..EngineOptions::default()
    })
    .range_query(&q, &format!("count({query})"), 0, end, SCRAPE_MS)
    .await;
    assert_eq!(r, Err(QueryError::TooManySamples("query execution")));
}
