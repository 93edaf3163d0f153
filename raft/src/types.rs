//! The openraft type configuration and the version numbers Strata's cluster speaks.

use std::io::Cursor;

use crate::state::{Request, Response};

/// A node's id in the Raft group: made once and kept in the node's data directory.
pub type NodeId = u64;

/// The cluster RPC protocol version this build speaks (carried in every request).
pub const PROTOCOL_VERSION: u32 = 1;

/// The oldest peer protocol version this build still accepts.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// The newest replicated-state (command and snapshot) version this build can apply.
pub const STATE_VERSION: u32 = 1;

openraft::declare_raft_types!(
    /// Strata's openraft type configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle of a Strata node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Strata's openraft log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// openraft's storage error for Strata's node ids.
pub type StorageError = openraft::StorageError<NodeId>;
