//! The querier's HTTP server: Prometheus' HTTP API v1 (2.42 shapes), health and readiness
//! probes, and `/metrics`.
//!
//! - `params`: parameter parsing (times, durations, `match[]`, form bodies)
//! - `json`: Prometheus-identical JSON for results
//! - `response`: the envelope and error classes
//! - `query`: `/query` and `/query_range` with limits, timeouts and cancellation
//! - `meta`: series, labels, label values, status and the empty endpoints
//! - `metrics`: request counters and durations
//! - `cors`: `--web.cors.origin` headers and preflight answers
//! - `store_params`: `partial_response` and `storeMatch[]`
//! - `stores`: `/api/v1/stores`, the querier's endpoints and their health
//!
//! API answers are gzip- or deflate-compressed when the client accepts it, like Prometheus'.
//! Unfinished: the `stats` query parameter.

pub mod cors;
pub mod json;
pub mod long_uri;
mod meta;
pub mod metrics;
pub mod params;
mod query;
pub mod response;
pub mod store_params;
pub mod stores;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use promql::{Engine, QueryError, Queryable};
use std::sync::Arc;
use std::time::Duration;
use storage::labels::Labels;
use storage::matcher::Matcher;
use tokio::sync::Semaphore;

/// What the API reads: a [`Queryable`] for PromQL plus series listing and readiness.
#[async_trait]
pub trait SeriesSource: Queryable {
    /// Label sets of the series matching `matchers` that have data overlapping
    /// `[mint, maxt]`, sorted and unique.
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError>;

    /// Whether the source has loaded what it serves (`/-/ready`).
    fn is_ready(&self) -> bool;

    /// A view of the source for one request that records the request's warnings (a store that
    /// failed under partial response) and applies its StoreAPI options; `None` for sources
    /// that never warn.
    fn for_request(&self, _opts: &store_params::StoreOptions) -> Option<Arc<dyn SeriesSource>> {
        None
    }

    /// The warnings recorded so far by a request view, emptied.
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// The StoreAPI endpoints read and their health (`/api/v1/stores`); none for a source
    /// that reads no endpoint.
    async fn stores(&self) -> Vec<stores::StoreStatus> {
        Vec::new()
    }
}

/// Query limits: Prometheus' `--query.timeout` and `--query.max-concurrent`.
#[derive(Debug)]
pub struct QueryLimits {
    /// Longest a query may take, queue time included.
    pub timeout: Duration,
    /// Permits for concurrently evaluated queries.
    pub concurrency: Arc<Semaphore>,
}

impl QueryLimits {
    /// Limits with `timeout` and `max_concurrent` permits.
    pub fn new(timeout: Duration, max_concurrent: usize) -> Self {
        if let Ok(m) = crate::server::self_metrics::ENGINE.as_ref() {
            m.concurrent_max.set(max_concurrent.max(1) as i64);
        }
        QueryLimits {
            timeout,
            concurrency: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }
}

/// Everything the handlers share.
pub struct ApiState {
    /// Where data comes from.
    pub source: Arc<dyn SeriesSource>,
    /// The PromQL engine.
    pub engine: Arc<Engine>,
    /// Timeout and concurrency.
    pub limits: QueryLimits,
    /// `/api/v1/status/flags`: flag name and value as the command line has them.
    pub flags: Vec<(String, String)>,
    /// The registry `/metrics` exposes.
    pub registry: prometheus::Registry,
    /// Origins allowed by `--web.cors.origin`.
    pub cors: Arc<cors::CorsOrigin>,
    /// `--query.replica-label`: what requests deduplicate over unless they say otherwise.
    pub replica_labels: Vec<String>,
    /// `--query.auto-downsampling`: range queries without `max_source_resolution` read
    /// downsampled data up to step / 5.
    pub auto_downsampling: bool,
    /// `--query.dynamic-lookback-delta`: queries reading downsampled data look back further
    /// (`crate::query::lookback`).
    pub dynamic_lookback: bool,
}

/// The query API's routes (`/api/v1/...`); the process' server adds the probes, `/metrics` and
/// the 404 fallback (crate::server).
pub fn api_routes(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/query", get(query::instant).post(query::instant))
        .route("/query_range", get(query::range).post(query::range))
        .route(
            "/series",
            get(meta::series)
                .post(meta::series)
                .delete(meta::drop_series),
        )
        .route("/labels", get(meta::labels).post(meta::labels))
        .route("/label/{name}/values", get(meta::label_values))
        .route("/metadata", get(meta::metadata))
        .route(
            "/query_exemplars",
            get(meta::query_exemplars).post(meta::query_exemplars),
        )
        .route("/status/buildinfo", get(meta::buildinfo))
        .route("/status/flags", get(meta::flags))
        .route("/stores", get(stores::stores))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_ready))
        .layer(middleware::from_fn_with_state(
            state.cors.clone(),
            cors::layer,
        ))
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        .nest("/api/v1", api)
        .layer(middleware::from_fn(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(state)
}

/// Go's limit on a form body (`maxFormSize`, 10 MiB).
pub(crate) const FORM_LIMIT: usize = 10 << 20;

fn service_unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
}

/// Like Prometheus before its TSDB is open: API calls get a plain 503 until the blocks are
/// loaded, rather than answers from a partial view.
async fn require_ready(State(st): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    if st.source.is_ready() {
        next.run(req).await
    } else {
        service_unavailable()
    }
}

/// Longest non-JSON error body read to be re-wrapped (router and extractor rejections are a
/// line of text).
const REWRAP_LIMIT: usize = 64 << 10;

/// Every client error answers in Prometheus' envelope (`{"status":"error","errorType":...,
/// "error":...}`), also those the router and extractors produce as plain text or an empty body
/// (405 method not allowed, 413 body too large, 415, 400 path rejections). Headers such as
/// `Allow` are kept. 503 "Service Unavailable" before readiness stays plain, as Prometheus'.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let compressed = parts
        .headers
        .remove(axum::http::header::CONTENT_ENCODING)
        .is_some();
    let text = match axum::body::to_bytes(body, REWRAP_LIMIT).await {
        Ok(b) if !compressed => String::from_utf8_lossy(&b).trim().to_string(),
        _ => String::new(),
    };
    let message = if text.is_empty() {
        format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        )
    } else {
        text
    };
    let typ = if status == StatusCode::NOT_FOUND {
        "not_found"
    } else {
        "bad_data"
    };
    let json = response::error_response(status, typ, &message);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, json.into_body())
}

/// Serves `router` on `listener` until `shutdown` completes, then drains connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(long_uri::LongUriListener::new(listener), router)
        .with_graceful_shutdown(shutdown)
        .await
}
