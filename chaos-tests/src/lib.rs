//! Jepsen-style harness for Strata's tier-1 chaos tests.
//!
//! A test builds a [`Cluster`]: a private bridge network of network namespaces with a real DNS
//! server (dnsmasq) answering `peers` with every node's address, then starts one process per
//! node inside its namespace. [`nemesis`] injects faults (iptables partitions and packet loss,
//! SIGKILL, SIGSTOP), [`history`] records what clients and the nemesis did, and [`checker`]
//! judges that history. Everything a test creates is removed when the `Cluster` is dropped, even
//! on panic; [`cleanup::remove_leftovers`] removes what a killed earlier run left behind.
//!
//! The harness needs root and Debian's `iproute2`, `iptables` and `dnsmasq-base`; tests call
//! [`env::ready_or_skip`] first and print a `SKIPPED` line when they are missing.

pub mod checker;
pub mod cleanup;
pub mod cluster;
mod cmd;
pub mod env;
pub mod error;
pub mod history;
pub mod naming;
pub mod nemesis;
pub mod net;
pub mod process;
pub mod rng;

pub use cluster::{Cluster, NodeCtx};
pub use error::{Error, Result};
pub use history::{Actor, History, Op, OpKind};
pub use nemesis::{Fault, Grudge};
pub use net::{Host, Net, NodeId};
pub use process::{CommandSpec, Process};
