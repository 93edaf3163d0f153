//! A query past its deadline, or whose caller went away, stops its work: for each shape of
//! heavy query the engine answers Prometheus' timeout error and its evaluation thread ends
//! well before the work could have finished (each workload here needs many seconds).
//!
//! Run one test per process (nextest does): the check counts the process' query threads.

use promql::{Engine, MemoryQueryable, QueryControl, QueryError};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::labels::Labels;

/// `series` series `foo{i="<n>"}` with a sample every 15 s for `samples` samples.
fn store(series: usize, samples: i64) -> MemoryQueryable {
    let mut q = MemoryQueryable::new();
    for i in 0..series {
        let pts: Vec<(i64, f64)> = (0..samples)
            .map(|k| (k * 15_000, ((k * 7 + i as i64) % 101) as f64))
            .collect();
        q.append(
            Labels::from_pairs([("__name__", "foo".to_string()), ("i", i.to_string())]),
            &pts,
        );
    }
    q
}

/// Waits until no query thread of this process is left, failing after `limit`.
fn wait_threads_end(limit: Duration, what: &str) {
    let until = Instant::now() + limit;
    while promql::stack::running() > 0 {
        assert!(
            Instant::now() < until,
            "{what}: {} query thread(s) still running {limit:?} after the query ended",
            promql::stack::running()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `query` as a range query over the store's span with a deadline `after` from now and
/// checks that it times out and its thread stops.
async fn times_out_and_stops(store: &MemoryQueryable, query: &str, end_ms: i64, step_ms: i64) {
    let engine = Engine::default();
    let ctl = QueryControl {
        deadline: Instant::now() + Duration::from_millis(300),
        ..engine.control()
    };
    let r = engine
        .range_query_with(store, query, 0, end_ms, step_ms, ctl)
        .await;
    assert_eq!(
        r.err(),
        Some(QueryError::Timeout("expression evaluation")),
        "{query}"
    );
    assert_eq!(
        QueryError::Timeout("expression evaluation").to_string(),
        "query timed out in expression evaluation"
    );
    // Each workload takes far longer than this uninterrupted (tens of seconds or more).
    wait_threads_end(Duration::from_secs(3), query);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_binary_chain_stops_at_the_deadline() {
    let q = store(1_000, 1_000);
    // One selector (loading stays small and quick), two thousand operators over it.
    let chain = format!("foo{}", " + 1".repeat(2_000));
    times_out_and_stops(&q, &chain, 1_000 * 15_000, 15_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_aggregation_stops_at_the_deadline() {
    let q = store(2_000, 2_000);
    times_out_and_stops(&q, "count_values(\"v\", foo)", 2_000 * 15_000, 15_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subquery_over_long_windows_stops_at_the_deadline() {
    let q = store(50, 6_000);
    times_out_and_stops(
        &q,
        "quantile_over_time(0.5, foo[1d:15s])",
        6_000 * 15_000,
        15_000,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_relabelling_of_many_series_stops_at_the_deadline() {
    let q = store(20_000, 40);
    let query = format!(
        "{}foo{}",
        "label_replace(".repeat(300),
        ", \"x\", \"$1\", \"i\", \"(.*)1(.*)\")".repeat(300)
    );
    times_out_and_stops(&q, &query, 40 * 15_000, 15_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_query_is_cancelled_and_its_thread_stops() {
    let q = store(1_000, 1_000);
    let chain = format!("foo{}", " * 2".repeat(2_000));
    let engine = Engine::default();
    let cancel = Arc::new(AtomicBool::new(false));
    let ctl = QueryControl {
        cancel: cancel.clone(),
        ..engine.control()
    };
    // The caller gives up (like an HTTP client going away): its future is dropped.
    let fut = engine.range_query_with(&q, &chain, 0, 1_000 * 15_000, 15_000, ctl);
    let gave_up = tokio::time::timeout(Duration::from_millis(500), fut).await;
    assert!(
        gave_up.is_err(),
        "the chain finished before the caller gave up"
    );
    assert!(cancel.load(std::sync::atomic::Ordering::Relaxed));
    wait_threads_end(Duration::from_secs(3), "dropped query");
}
