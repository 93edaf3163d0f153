//! Limits and bad input: Prometheus' errors for impossible range parameters, the samples limit,
//! the timeout, cancellation and parse errors.

use promql::engine::parse;
use promql::{Engine, EngineOptions, MemoryQueryable, QueryError, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use storage::labels::Labels;

fn store(series: usize) -> MemoryQueryable {
    let mut q = MemoryQueryable::new();
    for i in 0..series {
        let samples: Vec<(i64, f64)> = (0..10).map(|k| (k * 15_000, k as f64)).collect();
        q.append(
            Labels::from_pairs([("__name__", "foo".to_string()), ("i", i.to_string())]),
            &samples,
        );
    }
    q
}

#[tokio::test]
async fn range_query_rejects_impossible_parameters_with_prometheus_texts() {
    let (e, q) = (Engine::default(), store(1));
    let err = |r: Result<_, QueryError>| r.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        err(e.range_query(&q, "foo", 10, 0, 1).await),
        "end timestamp must not be before start time"
    );
    assert_eq!(
        err(e.range_query(&q, "foo", 0, 10, 0).await),
        "zero or negative query resolution step widths are not accepted. Try a positive integer"
    );
    assert!(err(e.range_query(&q, "foo", 0, 11_001, 1).await)
        .starts_with("exceeded maximum resolution of 11,000 points per timeseries"));
    assert!(e.range_query(&q, "foo", 0, 11_000, 1).await.is_ok());
}

#[tokio::test]
async fn too_many_samples_fails_with_the_limit_error() {
    let q = store(20);
    let e = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let r = e.instant_query(&q, "foo", 60_000).await;
    assert_eq!(r, Err(QueryError::TooManySamples("query execution")));
    let r = e.instant_query(&q, "sum(rate(foo[5m]))", 60_000).await;
    assert_eq!(r, Err(QueryError::TooManySamples("query execution")));
    let ok = Engine::default().instant_query(&q, "foo", 60_000).await;
    assert!(matches!(ok, Ok(r) if matches!(&r.value, Value::Vector(v) if v.len() == 20)));
}

#[tokio::test]
async fn timeout_and_cancellation_stop_the_evaluation() {
    let q = store(3);
    let e = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    });
    let r = e.instant_query(&q, "sum(foo)", 60_000).await;
    assert!(matches!(r, Err(QueryError::Timeout(_))), "{r:?}");
    let expr = Arc::new(parse("sum(foo)").expect("parses"));
    let engine = Engine::default();
    let ctl = promql::QueryControl {
        cancel: Arc::new(AtomicBool::new(true)),
        ..engine.control()
    };
    let r = engine
        .range_query_expr(&q, expr, 0, 120_000, 15_000, ctl)
        .await;
    assert_eq!(r, Err(QueryError::Canceled("expression evaluation")));
}

#[tokio::test]
async fn malformed_promql_is_a_parse_error_not_a_panic() {
    let (e, q) = (Engine::default(), store(1));
    for bad in [
        "sum(",
        "foo{",
        "rate(foo)",
        "foo[5m",
        "1 +",
        "}",
        "foo offset",
        "@",
    ] {
        let r = e.instant_query(&q, bad, 0).await;
        assert!(matches!(r, Err(QueryError::Parse(_))), "{bad}: {r:?}");
    }
}

#[tokio::test]
async fn range_query_result_is_sorted_and_scalar_becomes_one_series() {
    let q = store(3);
    let e = Engine::default();
    let r = e
        .range_query(&q, "-foo", 0, 60_000, 15_000)
        .await
        .expect("runs");
    let Value::Matrix(m) = r.value else {
        panic!("not a matrix")
    };
    assert_eq!(m.len(), 3);
    assert!(m.windows(2).all(|w| w[0].metric < w[1].metric));
    assert!(m.iter().all(|s| s.metric.get("__name__").is_none()));
    let r = e
        .range_query(&q, "time()", 0, 60_000, 30_000)
        .await
        .expect("runs");
    assert_eq!(
        r.value,
        Value::Matrix(vec![promql::Series {
            metric: Labels::empty(),
            points: vec![(0, 0.0), (30_000, 30.0), (60_000, 60.0)],
        }])
    );
}
