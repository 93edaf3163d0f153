//! The node's own HTTP endpoints: `/api/v1/status/cluster` and the cluster's `/api/v1/stores`.
//! The probes and `/metrics` are the process' (crate::server); the node's readiness there is
//! [`NodeHttp::is_ready`].

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use raft::RaftNode;
use serde_json::json;

use super::status::ClusterStatus;

/// What the node's handlers share.
pub struct NodeHttp {
    /// The local Raft node.
    pub node: RaftNode,
    /// Heartbeat age past which a store is shown as stale.
    pub store_max_age_ms: i64,
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

async fn cluster_status(State(st): State<Arc<NodeHttp>>) -> Response {
    let s = ClusterStatus::local(&st.node, st.store_max_age_ms).await;
    Json(json!({"status": "success", "data": s})).into_response()
}
