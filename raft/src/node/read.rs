//! Linearizable reads of the replicated state, for clients that must never see a stale
//! registry (the chaos tests' checker, `GET /api/v1/cluster/stores?consistent=true`).
//!
//! The leader confirms with a quorum that it still leads (openraft 0.9's
//! `Raft::ensure_linearizable`: a heartbeat round acknowledged by a majority after the read
//! began) and waits until its state machine has applied everything committed before the read;
//! only then does it read. A follower does not answer: it refuses with the leader it knows, as
//! a write is refused, so the client retries there. A deposed leader cut off from the majority
//! cannot confirm and never returns data; the read times out instead.

use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::BasicNode;

use super::RaftNode;
use crate::state::ClusterState;
use crate::types::NodeId;

/// What a linearizable read returned, and where in the log it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearRead<T> {
    /// The value read.
    pub value: T,
    /// The leader that answered (this node).
    pub leader_id: NodeId,
    /// The leader's term just after the read.
    pub term: u64,
    /// The log index the state machine had applied at least up to (`None`: empty log).
    pub read_index: Option<u64>,
}

/// Why a linearizable read returned nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// This node is not the leader; read from the leader (unknown while electing).
    #[error("not the leader; leader is {}", leader_display(*leader_id, leader_address.as_deref()))]
    NotLeader {
        /// The leader's id, if known.
        leader_id: Option<NodeId>,
        /// The leader's gRPC address, if known.
        leader_address: Option<String>,
    },
    /// A quorum did not confirm this node's leadership (a newer term exists).
    #[error("leadership not confirmed by a quorum: {0}")]
    NoQuorum(String),
    /// Confirmation or catching up took longer than allowed (e.g. the leader is partitioned).
    #[error("linearizable read not confirmed within {after:?}")]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// The node is shutting down or has failed.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

impl ReadError {
    /// Whether the client should retry at another node (the leader named, or any).
    pub fn is_not_leader(&self) -> bool {
        matches!(self, ReadError::NotLeader { .. })
    }
}

fn leader_display(id: Option<NodeId>, addr: Option<&str>) -> String {
    match (id, addr) {
        (Some(id), Some(a)) => format!("node {id} at {a}"),
        (Some(id), None) => format!("node {id}"),
        _ => "unknown (election in progress)".to_string(),
    }
}

fn read_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>) -> ReadError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => ReadError::NotLeader {
            leader_id: f.leader_id,
            leader_address: f.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            ReadError::NoQuorum(q.to_string())
        }
        RaftError::Fatal(f) => ReadError::Fatal(f.to_string()),
    }
}

impl RaftNode {
    /// Reads `read(state)` linearizably: the result reflects every write acknowledged before
    /// this call began, and nothing a later leader could take back. Only the leader answers;
    /// gives up after `timeout` (openraft's own wait has no limit).
    pub async fn linearizable_read<T>(
        &self,
        timeout: Duration,
        read: impl FnOnce(&ClusterState) -> T,
    ) -> Result<LinearRead<T>, ReadError> {
        let confirmed = tokio::time::timeout(timeout, self.raft().ensure_linearizable())
            .await
            .map_err(|_| ReadError::Timeout { after: timeout })?
            .map_err(read_error)?;
        // The applied state may be newer than the read index: still linearizable, as those
        // entries were committed before this point in time.
        let value = read(&self.inner.shared.read().state);
        // Informational: the term can only have grown since the confirmation.
        let term = self.raft().metrics().borrow().current_term;
        Ok(LinearRead {
            value,
            leader_id: self.id(),
            term,
            read_index: confirmed.map(|l| l.index),
        })
    }
}
