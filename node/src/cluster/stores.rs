//! `GET /api/v1/cluster/stores[?consistent=true]`: the store registry, in Prometheus' envelope.
//!
//! Without `consistent` (or `consistent=false`) any node answers from its own applied copy,
//! which may be stale. With `consistent=true` the read is linearizable
//! ([`RaftNode::linearizable_read`]): only the leader answers, after a quorum confirmed its
//! leadership; a follower answers 503 with `errorType` `unavailable`, the error
//! `not the leader; leader is node N at ADDR` and the leader's id and addresses under `data`,
//! so the client retries there, as a write is redirected. A leader that cannot confirm within
//! two seconds answers 503 with `errorType` `timeout`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use raft::node::read::ReadError;
use raft::{now_ms, ClusterState, RaftNode};
use serde_json::{json, Value};

use super::http::NodeHttp;
use super::status::StoreStatus;

/// How long a consistent read may wait for the leader's confirmation.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The route, to merge into a node's router before its state is given.
pub fn routes() -> Router<Arc<NodeHttp>> {
    Router::new().route("/api/v1/cluster/stores", get(stores))
}

/// Whether the query asks for a consistent read; `Err` names a bad value.
fn consistent(query: Option<&str>) -> Result<bool, String> {
    let mut want = false;
    for pair in query.unwrap_or_default().split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "consistent" {
            continue;
        }
        want = match v {
            "" | "true" | "1" => true,
            "false" | "0" => false,
            other => return Err(format!("invalid parameter \"consistent\": {other:?}")),
        };
    }
    Ok(want)
}

fn store_list(state: &ClusterState, max_age_ms: i64) -> Vec<StoreStatus> {
    let now = now_ms();
    state
        .stores
        .values()
        .map(|e| StoreStatus {
            address: e.info.address.clone(),
            node_id: e.info.node_id,
            label_sets: e.info.label_sets.clone(),
            min_time_ms: e.info.min_time_ms,
            max_time_ms: e.info.max_time_ms,
            last_heartbeat_ms: e.last_heartbeat_ms,
            live: e.is_live(now, max_age_ms),
        })
        .collect()
}

fn error(code: StatusCode, error_type: &str, message: String, data: Value) -> Response {
    let body = json!({"status": "error", "errorType": error_type, "error": message, "data": data});
    (code, Json(body)).into_response()
}

async fn stores(State(st): State<Arc<NodeHttp>>, RawQuery(query): RawQuery) -> Response {
    let want = match consistent(query.as_deref()) {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_data", e, Value::Null),
    };
    let max_age = st.store_max_age_ms;
    if !want {
        let state = st.node.local_state();
        let leader = st.node.raft().metrics().borrow().current_leader;
        let data = json!({
            "consistent": false,
            "node_id": st.node.id(),
            "leader_id": leader,
            "stores": store_list(&state, max_age),
        });
        return Json(json!({"status": "success", "data": data})).into_response();
    }
    match st
        .node
        .linearizable_read(READ_TIMEOUT, |s| store_list(s, max_age))
        .await
    {
        Ok(r) => {
            let data = json!({
                "consistent": true,
                "node_id": st.node.id(),
                "leader_id": r.leader_id,
                "term": r.term,
                "read_index": r.read_index,
                "stores": r.value,
            });
            Json(json!({"status": "success", "data": data})).into_response()
        }
        Err(e) => read_refusal(&st.node, e),
    }
}

fn read_refusal(node: &RaftNode, e: ReadError) -> Response {
    let message = e.to_string();
    match e {
        ReadError::NotLeader {
            leader_id,
            leader_address,
        } => {
            let http = leader_id
                .and_then(|id| node.local_state().members.get(&id).cloned())
                .map(|m| m.http_address);
            let data = json!({
                "leader_id": leader_id,
                "leader_grpc_address": leader_address,
                "leader_http_address": http,
            });
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                message,
                data,
            )
        }
        ReadError::NoQuorum(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            message,
            Value::Null,
        ),
        ReadError::Timeout { .. } => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            message,
            Value::Null,
        ),
        ReadError::Fatal(_) => {
            tracing::error!(error = %message, "consistent registry read");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "raft stopped".into(),
                Value::Null,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::consistent;

    #[test]
    fn consistent_parameter_accepts_flags_and_refuses_nonsense() {
        assert_eq!(consistent(None), Ok(false));
        assert_eq!(consistent(Some("consistent=true")), Ok(true));
        assert_eq!(consistent(Some("x=1&consistent")), Ok(true));
        assert_eq!(consistent(Some("consistent=0")), Ok(false));
        assert!(consistent(Some("consistent=maybe")).is_err_and(|e| e.contains("\"maybe\"")));
    }
}
