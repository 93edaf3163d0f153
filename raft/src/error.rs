//! Errors of the Raft node facade.

use crate::state::Rejection;
use crate::store::OpenError;
use crate::types::NodeId;

/// A failure to open, start or administer the local Raft node.
#[derive(Debug, thiserror::Error)]
pub enum RaftNodeError {
    /// The Raft database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The Raft configuration is invalid (e.g. election timeout not above the heartbeat).
    #[error("invalid Raft configuration: {0}")]
    Config(String),
    /// openraft could not start or failed fatally.
    #[error("raft node {node_id}: {reason}")]
    Raft {
        /// This node.
        node_id: NodeId,
        /// What went wrong.
        reason: String,
    },
    /// `initialize` on a node whose log already holds a membership.
    #[error("node {node_id} is already part of an initialized cluster; refusing to bootstrap a second time")]
    AlreadyInitialized {
        /// This node.
        node_id: NodeId,
    },
    /// More voters than the cluster allows.
    #[error("{requested} voters requested, at most {max} allowed")]
    TooManyVoters {
        /// How many were asked for.
        requested: usize,
        /// The limit.
        max: usize,
    },
    /// A write on the way failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Leaving the cluster failed.
    #[error("leave failed: {0}")]
    Leave(String),
}

/// A failure to commit a command or membership change.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; send the write to the leader (unknown while electing).
    #[error("not the leader; leader is {}", leader_display(*leader_id, leader_address.as_deref()))]
    ForwardToLeader {
        /// The leader's id, if known.
        leader_id: Option<NodeId>,
        /// The leader's gRPC address, if known.
        leader_address: Option<String>,
    },
    /// Some member would not understand the command (a mixed-version cluster).
    #[error(
        "command {command} needs protocol version {needed}, but a member speaks only {cluster_min}"
    )]
    NotSupportedByCluster {
        /// The command's tag.
        command: String,
        /// The version it needs.
        needed: u32,
        /// The oldest member's version.
        cluster_min: u32,
    },
    /// The state machine refused the command (its state is unchanged).
    #[error("command rejected: {0}")]
    Rejected(Rejection),
    /// No quorum answered in time, or the change conflicts with one in progress.
    #[error("not committed: {0}")]
    NotCommitted(String),
    /// The node is shutting down or has failed.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

fn leader_display(id: Option<NodeId>, addr: Option<&str>) -> String {
    match (id, addr) {
        (Some(id), Some(a)) => format!("node {id} at {a}"),
        (Some(id), None) => format!("node {id}"),
        _ => "unknown (election in progress)".to_string(),
    }
}

/// A failure of a cluster admin call to a peer.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address is not a valid endpoint.
    #[error("invalid peer address {address}: {reason}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The peer refused our credentials.
    #[error("peer {address} refused our cluster credentials: {message}")]
    Unauthenticated {
        /// The peer.
        address: String,
        /// Its message.
        message: String,
    },
    /// The peer speaks a protocol version we cannot use.
    #[error("peer {address} refused our protocol version: {message}")]
    Version {
        /// The peer.
        address: String,
        /// Its message.
        message: String,
    },
    /// Any other RPC failure (unreachable, timeout, not a Strata node).
    #[error("cluster RPC to {address} failed: {message}")]
    Rpc {
        /// The peer.
        address: String,
        /// What happened.
        message: String,
    },
    /// Redirects did not reach a leader.
    #[error("no leader reachable after {hops} redirects (last tried {address})")]
    NoLeader {
        /// The last address tried.
        address: String,
        /// Redirects followed.
        hops: usize,
    },
}
