//! Jepsen-style harness for Strata's tier-1 chaos tests, and [`sim`], the tier-0 simulation of
//! the Raft layer.
//!
//! A test builds a [`Cluster`]: a private bridge network of network namespaces with a real DNS
//! server (dnsmasq) answering `peers` with every node's address, then starts one process per
//! node inside its namespace. [`nemesis`] injects faults (iptables partitions and packet loss,
//! SIGKILL, SIGSTOP), [`history`] records what clients and the nemesis did, and [`checker`]
//! judges that history. Everything a test creates is removed when the `Cluster` is dropped, even
//! on panic; [`cleanup::remove_leftovers`] removes what a killed earlier run left behind.
//!
//! [`strata`] holds the Strata-specific pieces (the `strata node` command line, a status
//! observer, the registry workload, Raft checkers, the tier-1 nemesis and [`strata::tier1::run`],
//! used by `tests/tier1_*.rs` and the `chaos-tests` binary). The generic calls look like this
//! (the stand-in tests in `tests/harness.rs` run them with `chaos-stand-in`):
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use std::time::Duration;
//! use chaos_tests::checker::{leader::OneLeaderPerTerm, set::AckedAddsSurvive, Report};
//! use chaos_tests::nemesis::{self, Schedule};
//! use chaos_tests::{Actor, Cluster, CommandSpec, History};
//!
//! # fn main() -> chaos_tests::Result<()> {
//! if !chaos_tests::env::ready_or_skip("raft_survives_partitions") {
//!     return Ok(());
//! }
//! let strata = std::env::var("STRATA_BIN").unwrap_or_else(|_| "strata".into());
//! let mut cluster = Cluster::new("raft_survives_partitions", 3)?; // `peers` -> 3 addresses
//! cluster.start_all(|n| {
//!     CommandSpec::new(&strata).args(["node".to_string(), "--data-dir".into(),
//!         n.data_dir.display().to_string(), "--grpc-address".into(), format!("{}:10901", n.addr),
//!         "--http-address".into(), format!("{}:10902", n.addr),
//!         "--cluster.peers".into(), "dns+peers:10901".into()])
//! })?;
//! let history = History::with_file(&cluster.dir().join("history.jsonl"))?;
//! let addrs: Vec<_> = cluster.net().hosts().map(|h| h.addr).collect(); // reachable from here
//! let stop = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     let h = history.clone();
//!     s.spawn(move || {
//!         // client workload: h.invoke(Actor::Client(0), "add", value, Some(node)).ok(..)
//!         # let _ = (h, addrs, Actor::Nemesis);
//!     });
//!     Schedule::new(42).run(&mut cluster, &history, Duration::from_secs(60), &stop)
//! })?;
//! nemesis::heal_all(&mut cluster)?;
//! let report = Report::run(&history, &[&AckedAddsSurvive::default(), &OneLeaderPerTerm::default()]);
//! println!("{report}"); // ends with "N passed, N failed"
//! assert!(report.is_valid());
//! # Ok(())
//! # }
//! ```
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
pub mod sim;
pub mod strata;

pub use cluster::{Cluster, NodeCtx};
pub use error::{Error, Result};
pub use history::{Actor, History, Op, OpKind};
pub use nemesis::{Fault, Grudge};
pub use net::{Host, Net, NodeId};
pub use process::{CommandSpec, Process};
