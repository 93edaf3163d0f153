//! `/api/v1/query` and `/api/v1/query_range`: Prometheus 2.42's parameter checks in its order,
//! then evaluation under the concurrency limit and the deadline.
//!
//! The deadline starts when the request arrives, so time spent waiting for a permit counts, as
//! in Prometheus' query queue. The engine evaluates on its own threads and checks the deadline
//! and a cancel flag as it goes; dropping the handler (the client went away) sets that flag.
//! The concurrency permit stays held until the engine's threads have ended, so that
//! `--query.max-concurrent` bounds the work running, not only the requests waiting.

use super::json;
use super::params::{dedup_labels, parse_duration, parse_time, parse_time_param, read_form, Form};
use super::response::{ApiError, ApiResult};
use super::store_params::StoreOptions;
use super::ApiState;
use axum::extract::{Request, State};
use promql::{QueryControl, QueryError, QueryResult, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Prometheus' cap on points per series of a range query.
const MAX_POINTS: i128 = 11_000;

/// `GET|POST /api/v1/query`.
pub async fn instant(State(st): State<Arc<ApiState>>, req: Request) -> ApiResult {
    let arrived = Instant::now();
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let time = match parse_time_param(&form, "time", now_ms()) {
        Ok(t) => t,
        Err(e) => return ApiError::invalid_param("time", e).into(),
    };
    let deadline = match deadline(&st, &form, arrived) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    let dedup = match dedup_labels(&form, &st.replica_labels) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    let mut opts = match StoreOptions::read(&form).await {
        Ok(o) => o,
        Err(e) => return e.into(),
    };
    // Thanos' default for instant queries (--query.instant.default.max_source_resolution).
    opts.resolve_resolution(0, st.auto_downsampling);
    let query = form.value("query").to_string();
    tracing::debug!(%query, time, "instant query");
    let result = execute(
        &st,
        deadline,
        dedup,
        &opts,
        move |engine, source, ctl| async move {
            engine
                .instant_query_with(source.as_ref(), &query, time, ctl)
                .await
        },
    )
    .await;
    match result {
        Ok(r) => answer(r),
        // Prometheus parses before it executes and reports the query as the bad parameter.
        Err(QueryError::Parse(m)) => ApiError::invalid_param("query", m).into(),
        Err(e) => ApiError::from_query(&e).into(),
    }
}

/// `GET|POST /api/v1/query_range`.
pub async fn range(State(st): State<Arc<ApiState>>, req: Request) -> ApiResult {
    let arrived = Instant::now();
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let (start, end, step_ms) = match range_params(&form) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let deadline = match deadline(&st, &form, arrived) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    let dedup = match dedup_labels(&form, &st.replica_labels) {
        Ok(d) => d,
        Err(e) => return e.into(),
    };
    let mut opts = match StoreOptions::read(&form).await {
        Ok(o) => o,
        Err(e) => return e.into(),
    };
    opts.resolve_resolution(step_ms / 5, st.auto_downsampling);
    let query = form.value("query").to_string();
    tracing::debug!(%query, start, end, step_ms, "range query");
    let result = execute(
        &st,
        deadline,
        dedup,
        &opts,
        move |engine, source, ctl| async move {
            engine
                .range_query_with(source.as_ref(), &query, start, end, step_ms, ctl)
                .await
        },
    )
    .await;
    match result {
        Ok(mut r) => {
            // Prometheus sorts range results by labels; keep that even if an engine did not.
            if let Value::Matrix(series) = &mut r.value {
                series.sort_by(|a, b| a.metric.cmp(&b.metric));
            }
            answer(r)
        }
        Err(e) => ApiError::from_query(&e).into(),
    }
}

/// `start`, `end` and `step` (ms) checked in Prometheus' order and with its messages.
fn range_params(form: &Form) -> Result<(i64, i64, i64), ApiError> {
    let start = parse_time(form.value("start")).map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(form.value("end")).map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step_ns =
        parse_duration(form.value("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    // A step under 1 ms truncates to 0 in the engine and would never advance; Prometheus would
    // loop until its timeout, so it is refused like a zero step instead.
    if step_ns < 1_000_000 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Go's time.Sub saturates at the largest Duration.
    let span_ns = ((end as i128 - start as i128) * 1_000_000).min(i64::MAX as i128);
    if span_ns / step_ns as i128 > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok((start, end, step_ns / 1_000_000))
}

/// When the query must be done: the server's timeout, shortened by a `timeout` parameter.
fn deadline(st: &ApiState, form: &Form, arrived: Instant) -> Result<Instant, ApiError> {
    let mut timeout = st.limits.timeout;
    let param = form.value("timeout");
    if !param.is_empty() {
        let ns = parse_duration(param).map_err(|e| ApiError::invalid_param("timeout", e))?;
        timeout = timeout.min(Duration::from_nanos(ns.max(0) as u64));
    }
    Ok(arrived + timeout)
}

fn answer(r: QueryResult) -> ApiResult {
    let mut out = String::new();
    json::write_query_data(&mut out, &r.value);
    ApiResult::Data {
        json: out,
        warnings: r.warnings,
    }
}

/// Waits for a permit and evaluates `run` before `deadline`, over the source deduplicated
/// over `dedup` (replica labels; none: no deduplication).
async fn execute<F, Fut>(
    st: &ApiState,
    deadline: Instant,
    dedup: Vec<String>,
    opts: &StoreOptions,
    run: F,
) -> Result<QueryResult, QueryError>
where
    F: FnOnce(Arc<promql::Engine>, Arc<dyn super::SeriesSource>, QueryControl) -> Fut,
    Fut: std::future::Future<Output = Result<QueryResult, QueryError>>,
{
    let engine_metrics = crate::server::self_metrics::ENGINE.as_ref().ok();
    let _running = engine_metrics.map(|m| Running::new(&m.queries));
    let queued = Instant::now();
    let semaphore = st.limits.concurrency.clone();
    let permit = match semaphore.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => tokio::time::timeout_at(deadline, semaphore.acquire_owned())
            .await
            .map_err(|_| QueryError::Timeout("query queue"))?
            .map_err(|_| QueryError::Canceled("query queue"))?,
    };
    let observe = |slice: &str, since: Instant| {
        if let Some(m) = engine_metrics {
            m.duration
                .with_label_values(&[slice])
                .observe(since.elapsed().as_secs_f64());
        }
    };
    observe("queue_time", queued);
    // Prometheus checks its context once more as execution starts. (With a free slot and an
    // expired context its queue picks "query queue" or this at random; this is deterministic.)
    if Instant::now() >= deadline {
        return Err(QueryError::Timeout("query execution"));
    }
    let source = st
        .source
        .for_request(opts)
        .unwrap_or_else(|| st.source.clone());
    let source = crate::query::dedup::deduplicated(source, dedup);
    let engine = engine_for(st, opts.max_source_resolution);
    let ctl = QueryControl {
        deadline: deadline.into_std(),
        cancel: Arc::new(AtomicBool::new(false)),
        hold: Some(Arc::new(permit)),
    };
    // Dropping this future (the client went away) drops the engine's future, which sets the
    // cancel flag its threads watch.
    let evaluating = Instant::now();
    let result = tokio::time::timeout_at(deadline, run(engine, source.clone(), ctl))
        .await
        .unwrap_or(Err(QueryError::Timeout("expression evaluation")));
    observe("inner_eval", evaluating);
    result.map(|mut r| {
        r.warnings.extend(source.take_warnings());
        r
    })
}

/// The engine for a query reading up to `max_source_resolution` ms: the server's, or one with
/// the wider lookback Thanos' dynamic lookback gives downsampled reads.
fn engine_for(st: &ApiState, max_source_resolution: i64) -> Arc<promql::Engine> {
    let options = st.engine.options();
    let lookback = crate::query::lookback::lookback_delta_ms(
        options.lookback_delta_ms,
        st.dynamic_lookback,
        max_source_resolution,
    );
    if lookback == options.lookback_delta_ms {
        return st.engine.clone();
    }
    Arc::new(promql::Engine::new(promql::EngineOptions {
        lookback_delta_ms: lookback,
        ..options.clone()
    }))
}

/// Counts a query in `prometheus_engine_queries` while it waits or runs (Prometheus counts
/// both); the drop uncounts it whichever way the query ends.
struct Running(prometheus::IntGauge);

impl Running {
    fn new(g: &prometheus::IntGauge) -> Self {
        g.inc();
        Running(g.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: &str) -> Form {
        Form::new(None, Some(q))
    }

    #[test]
    fn range_parameters_are_checked_in_prometheus_order() {
        let err = |q: &str| range_params(&form(q)).expect_err("refused").message;
        assert_eq!(
            err("end=2&step=1"),
            "invalid parameter \"start\": cannot parse \"\" to a valid timestamp"
        );
        assert_eq!(
            err("start=2&end=1&step=x"),
            "invalid parameter \"end\": end timestamp must not be before start time"
        );
        assert_eq!(
            err("start=1&end=2&step=x"),
            "invalid parameter \"step\": cannot parse \"x\" to a valid duration"
        );
        assert_eq!(
            err("start=1&end=2&step=0"),
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"
        );
        assert_eq!(
            err("start=0&end=11001&step=1"),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        );
        assert_eq!(
            range_params(&form("start=0&end=11000&step=1")),
            Ok((0, 11_000_000, 1_000))
        );
        assert_eq!(
            range_params(&form("start=1&end=2&step=0.5")),
            Ok((1_000, 2_000, 500))
        );
    }
}
