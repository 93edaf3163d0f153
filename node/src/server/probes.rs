//! The routes every process serves whatever its roles: `/-/healthy`, `/-/ready`, `/-/reload`,
//! `/metrics`, and the 404 for everything else.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::Component;

#[derive(Clone)]
struct Shared {
    components: Arc<[Arc<dyn Component>]>,
    registry: prometheus::Registry,
}

/// The probes over `components`, exposing `registry`.
pub fn routes(components: Vec<Arc<dyn Component>>, registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .route("/metrics", get(metrics))
        .with_state(Shared {
            components: components.into(),
            registry,
        })
}

/// 404 in Prometheus' error envelope, as the query API answers unknown paths.
pub async fn not_found() -> Response {
    crate::http::response::error_response(StatusCode::NOT_FOUND, "not_found", "404 page not found")
}

async fn ready(State(s): State<Shared>) -> Response {
    if s.components.iter().all(|c| c.is_ready()) {
        (StatusCode::OK, "Strata is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

/// Prometheus' `/-/reload`: 200 when every component reloaded, else 500 with the errors.
async fn reload(State(s): State<Shared>) -> Response {
    let mut errors = Vec::new();
    for c in s.components.iter() {
        if let Err(e) = c.reload().await {
            tracing::error!(role = c.name(), error = %format!("{e:#}"), "reload failed");
            errors.push(format!("{}: {e:#}", c.name()));
        }
    }
    if errors.is_empty() {
        StatusCode::OK.into_response()
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {}\n", errors.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    crate::http::metrics::encode(&s.registry)
}
