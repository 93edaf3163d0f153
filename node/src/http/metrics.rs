//! HTTP request metrics (Thanos' names: `http_requests_total`, `http_request_duration_seconds`
//! by handler, code and method) and the `/metrics` endpoint.
//!
//! The metrics are one set per process ([`HTTP`]), recorded by [`instrument`] around every
//! route of the process' one HTTP server and registered by `crate::server::self_metrics`.

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Instant;

/// This process' HTTP request metrics.
pub static HTTP: LazyLock<Result<HttpMetrics, prometheus::Error>> = LazyLock::new(HttpMetrics::new);

/// Counters and durations of HTTP requests.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "Tracks the number of HTTP requests."),
            &["code", "handler", "method"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Tracks the latencies for HTTP requests.",
            )
            .buckets(vec![
                0.001, 0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
            ]),
            &["code", "handler", "method"],
        )?;
        Ok(HttpMetrics { requests, duration })
    }

    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.requests.clone()))?;
        registry.register(Box::new(self.duration.clone()))
    }
}

/// Middleware recording every request under its route pattern (unknown paths as `other`, so
/// that scanners cannot grow the label set).
pub async fn instrument(req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let code = response.status().as_u16().to_string();
    if let Ok(m) = HTTP.as_ref() {
        let labels = [code.as_str(), handler.as_str(), method.as_str()];
        m.requests.with_label_values(&labels).inc();
        m.duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
    response
}

/// `registry`'s metrics in Prometheus' text format, as a response.
pub fn encode(registry: &prometheus::Registry) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut buf) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response();
    }
    let mut r = buf.into_response();
    if let Ok(v) = HeaderValue::from_str(encoder.format_type()) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}
