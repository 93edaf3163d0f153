//! The sidecar's HTTP endpoints: `/metrics`, `/-/healthy`, and `/-/ready` (200 only while
//! Prometheus answers and its external labels are known).

use super::state::PromState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use std::sync::Arc;

#[derive(Clone)]
struct Shared {
    state: Arc<PromState>,
    registry: Registry,
}

/// The router over `state`, exposing `registry`.
pub fn router(state: Arc<PromState>, registry: Registry) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Shared { state, registry })
}

async fn healthy() -> &'static str {
    "Strata is Healthy.\n"
}

async fn ready(State(s): State<Shared>) -> Response {
    if s.state.is_ready() {
        (StatusCode::OK, "Strata is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    crate::http::metrics::encode(&s.registry)
}
