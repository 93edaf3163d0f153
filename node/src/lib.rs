//! Strata's node: every role (query, store, sidecar; compact and rule to come) as a library
//! component, the server that assembles a process from its roles, the cluster wiring under
//! Raft, and the operator tools. The `strata` binary (main.rs) only parses the command line,
//! starts logging and the runtime, and calls into here.
//!
//! - `server`: the component shape and the one HTTP and one gRPC server per process
//! - `node`: `strata node`, the roles under the Raft cluster
//! - `query`, `store`, `sidecar`: the roles and their standalone commands
//! - `cluster`: Raft membership, the store registry, `strata cluster`
//! - `ui`: the web UI every process serves
//! - `http`: Prometheus' HTTP API; `flags`: flags shared by commands; `tools`: `strata tools`

pub mod cluster;
pub mod compact;
pub mod flags;
pub mod format;
pub mod http;
pub mod logging;
pub mod node;
pub mod progress;
pub mod query;
pub mod rule;
pub mod server;
pub mod sidecar;
pub mod store;
pub mod tools;
pub mod ui;
