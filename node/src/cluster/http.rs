//! The node's own HTTP endpoints: `/api/v1/status/cluster`, and the probes and `/metrics` when
//! the query role (whose router has them) is off. With the query role on, these routes are
//! merged into the querier's router and readiness also requires the cluster (see [`gate_ready`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, TextEncoder};
use raft::RaftNode;
use serde_json::json;

use super::status::ClusterStatus;

/// What the node's handlers share.
pub struct NodeHttp {
    /// The local Raft node.
    pub node: RaftNode,
    /// Heartbeat age past which a store is shown as stale.
    pub store_max_age_ms: i64,
    /// The registry `/metrics` exposes (when the query role is off).
    pub registry: prometheus::Registry,
}

impl NodeHttp {
    /// Ready once this node is in a cluster that has a leader.
    pub fn is_ready(&self) -> bool {
        let m = self.node.raft().metrics().borrow().clone();
        m.current_leader.is_some()
            && m.membership_config
                .membership()
                .get_node(&self.node.id())
                .is_some()
    }
}

/// `/api/v1/status/cluster` only.
pub fn status_routes(st: Arc<NodeHttp>) -> Router {
    Router::new()
        .route("/api/v1/status/cluster", get(cluster_status))
        .merge(super::stores::routes())
        .with_state(st)
}

/// Everything a node without the query role serves.
pub fn standalone_router(st: Arc<NodeHttp>) -> Router {
    Router::new()
        .route("/api/v1/status/cluster", get(cluster_status))
        .merge(super::stores::routes())
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(st)
}

/// Middleware for the querier's router: `/-/ready` answers 503 until the node is in a cluster
/// with a leader, then the querier's own readiness decides.
pub async fn gate_ready(State(st): State<Arc<NodeHttp>>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/-/ready" && !st.is_ready() {
        return not_ready();
    }
    next.run(req).await
}

fn not_ready() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
}

async fn ready(State(st): State<Arc<NodeHttp>>) -> Response {
    if st.is_ready() {
        (StatusCode::OK, "Strata is Ready.\n").into_response()
    } else {
        not_ready()
    }
}

async fn cluster_status(State(st): State<Arc<NodeHttp>>) -> Response {
    let s = ClusterStatus::local(&st.node, st.store_max_age_ms).await;
    Json(json!({"status": "success", "data": s})).into_response()
}

async fn metrics(State(st): State<Arc<NodeHttp>>) -> Response {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&st.registry.gather(), &mut buf) {
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
