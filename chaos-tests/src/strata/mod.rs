//! Strata-specific pieces of the tier-1 tests: how to start `strata node` in a [`Cluster`]
//! namespace, read its `/api/v1/status/cluster`, watch every node into the history, write store
//! registry entries as a client workload, and the Raft invariants checked over that history.
//!
//! - `binary`: where the `strata` binary under test is
//! - `node`: the `strata node` command line of a namespace node
//! - `status`: `GET /api/v1/status/cluster` over plain HTTP/1.0
//! - `observer`: one polling thread per node recording leader, commit and membership
//! - `workload`: registry announcements through the leader, and final reads
//! - `reads`: linearizable registry reads during the run (checked by `checker::linear_set`)
//! - `nemesis`: the seeded tier-1 fault mix (leader isolation, splits, kill, pause, clocks)
//! - `checkers`: commit index monotonicity and membership stability
//! - `tier1`: one whole tier-1 run (start, nemesis with observer and workload, checkers)
//! - `wait`: waiting for a formed, settled cluster
//! - `compact`: tier 1 of coordinated compaction (bucket, job watcher, nemesis, checkers)
//!
//! [`Cluster`]: crate::Cluster

pub mod binary;
pub mod checkers;
pub mod compact;
pub mod nemesis;
pub mod node;
pub mod observer;
pub mod reads;
pub mod status;
pub mod tier1;
pub mod wait;
pub mod workload;

/// The gRPC port every node listens on (Raft, admin, store registry).
pub const GRPC_PORT: u16 = 10901;
/// The HTTP port every node listens on (status, probes, metrics, query API).
pub const HTTP_PORT: u16 = 10902;
/// The prefix of registry entries the workload writes (nodes' own stores are left out).
pub const WORKLOAD_PREFIX: &str = "wl-";
