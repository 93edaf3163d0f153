//! Strata's Raft layer: openraft 0.9 over a sled log store and state machine, a tonic transport
//! authenticated with the cluster secret, and the replicated cluster state (members, store
//! registry, job table) changed only by versioned commands.
//!
//! The binary uses [`RaftNode`]: open it on a data directory, mount [`RaftNode::grpc_routes`] on
//! the node's gRPC server, then [`RaftNode::initialize`] (bootstrap, only when told) or join an
//! existing cluster with [`AdminClient::join`].

// openraft's traits dictate its (large) error types in storage and network results.
#![allow(clippy::result_large_err)]

pub mod error;
pub mod network;
pub mod node;
pub mod state;
pub mod store;
pub mod types;

pub use error::{AdminError, RaftNodeError, WriteError};
pub use network::auth::{ClusterSecret, SecretError};
pub use network::client::{AdminClient, JoinOutcome};
pub use node::{
    now_ms, AdminServer, Admission, ClusterMetrics, NodeMetrics, RaftNode, RaftNodeConfig,
    Timeouts, TransportServer,
};
pub use state::{
    ClusterState, Command, FencingToken, Job, JobState, Lapse, Member, Rejection, Request,
    Response, Role, StoreEntry, StoreInfo, UnknownRole,
};
pub use types::{NodeId, TypeConfig, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, STATE_VERSION};
