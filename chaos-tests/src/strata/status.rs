//! A node's `GET /api/v1/status/cluster`, read with a tiny HTTP/1.0 client (the node closes the
//! connection after one answer), so a paused node costs one timeout and nothing more.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Deserialize;

/// Why a status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Connecting, sending or reading failed (down, paused, partitioned).
    #[error("{addr}: {source}")]
    Io {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The answer was not a successful status document.
    #[error("{addr}: {reason}")]
    Bad {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
}

/// The fields of the status the tests use (the node sends more).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeStatus {
    /// The answering node's Raft id.
    pub node_id: u64,
    /// "Leader", "Follower", "Candidate", "Learner" or "Shutdown".
    pub server_state: String,
    /// The leader it knows, if any.
    pub leader_id: Option<u64>,
    /// Its current term.
    pub term: u64,
    /// Last committed index it knows.
    pub commit_index: Option<u64>,
    /// Last index applied to its state machine.
    pub applied_index: Option<u64>,
    /// Whether a membership change is in its joint phase.
    #[serde(default)]
    pub membership_joint: bool,
    /// Raft members and member-table entries.
    pub members: Vec<MemberStatus>,
    /// The store registry as applied on this node.
    #[serde(default)]
    pub stores: Vec<StoreStatus>,
}

/// One member in a status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemberStatus {
    /// Raft id.
    pub id: u64,
    /// gRPC address.
    pub grpc_address: String,
    /// "voter", "learner", or "none" (in the member table only).
    pub raft_role: String,
    /// Software version; empty when the node is a Raft member missing from the member table.
    #[serde(default)]
    pub version: String,
}

/// One registry entry in a status.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoreStatus {
    /// StoreAPI address (the registry key).
    pub address: String,
}

impl NodeStatus {
    /// Raft voters, sorted.
    pub fn voters(&self) -> Vec<u64> {
        self.ids_where(|m| m.raft_role == "voter")
    }

    /// Raft learners, sorted.
    pub fn learners(&self) -> Vec<u64> {
        self.ids_where(|m| m.raft_role == "learner")
    }

    /// Ids in the replicated member table (members the status could describe), sorted.
    pub fn member_table(&self) -> Vec<u64> {
        self.ids_where(|m| !m.version.is_empty())
    }

    fn ids_where(&self, f: impl Fn(&MemberStatus) -> bool) -> Vec<u64> {
        let mut v: Vec<u64> = self.members.iter().filter(|m| f(m)).map(|m| m.id).collect();
        v.sort_unstable();
        v
    }

    /// Registry addresses starting with `prefix`, sorted.
    pub fn stores_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .stores
            .iter()
            .filter(|s| s.address.starts_with(prefix))
            .map(|s| s.address.clone())
            .collect();
        v.sort();
        v
    }

    /// Whether this node says it leads.
    pub fn is_leader(&self) -> bool {
        self.server_state == "Leader"
    }
}

/// Reads `addr`'s status, each step bounded by `timeout`.
pub fn fetch(addr: SocketAddr, timeout: Duration) -> Result<NodeStatus, StatusError> {
    let body = http_get(addr, "/api/v1/status/cluster", timeout)?;
    let bad = |reason: String| StatusError::Bad { addr, reason };
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| bad(format!("not JSON ({e}): {body:.200}")))?;
    if v["status"] != "success" {
        return Err(bad(format!("status is not success: {body:.200}")));
    }
    serde_json::from_value(v["data"].clone()).map_err(|e| bad(format!("unexpected shape: {e}")))
}

fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, StatusError> {
    let (code, status_line, body) = http_get_any(addr, path, timeout)?;
    if code != 200 {
        return Err(StatusError::Bad {
            addr,
            reason: format!("HTTP {status_line}"),
        });
    }
    Ok(body)
}

/// `GET path` from `addr`, each step bounded by `timeout`: the HTTP status code and the body
/// parsed as JSON, whatever the code (a node's API errors are JSON too).
pub fn get_json(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, serde_json::Value), StatusError> {
    let (code, _, body) = http_get_any(addr, path, timeout)?;
    let v = serde_json::from_str(&body).map_err(|e| StatusError::Bad {
        addr,
        reason: format!("HTTP {code}, not JSON ({e}): {body:.200}"),
    })?;
    Ok((code, v))
}

/// The status code, status line and body of `GET path`.
fn http_get_any(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String, String), StatusError> {
    let io = |source| StatusError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(StatusError::Bad {
            addr,
            reason: "malformed HTTP answer".into(),
        });
    };
    let status_line = head.lines().next().unwrap_or_default().to_owned();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| StatusError::Bad {
            addr,
            reason: format!("malformed HTTP status line {status_line:?}"),
        })?;
    Ok((code, status_line, body.to_owned()))
}
