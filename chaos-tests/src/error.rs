//! The harness' error type.

use std::path::PathBuf;
use std::time::Duration;

use crate::net::NodeId;

/// Result with the harness' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while building, driving or tearing down a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The machine cannot run the harness (not root, or a tool is missing).
    #[error("chaos harness cannot run here: {0}")]
    NotReady(String),
    /// A helper command (ip, iptables, ...) ran but failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command could not be started at all.
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// Every test subnet is taken (too many live tests, or leftovers: see `cleanup`).
    #[error("no free test subnet in 10.{first}.0.0/16 .. 10.{last}.255.0/24")]
    NoSubnet {
        /// First second octet tried.
        first: u8,
        /// Last second octet tried.
        last: u8,
    },
    /// A node id the network does not have.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// A node has no process (never started, or removed).
    #[error("node {0} has no process")]
    NoProcess(NodeId),
    /// Sending a signal failed.
    #[error("signal {signal} to {name} (pid {pid}): {source}")]
    Signal {
        /// Signal name.
        signal: &'static str,
        /// Process name.
        name: String,
        /// Process id.
        pid: u32,
        /// The OS error.
        source: std::io::Error,
    },
    /// A DNS answer could not be parsed.
    #[error("bad DNS answer from {server}: {reason}")]
    Dns {
        /// The server asked.
        server: String,
        /// What was wrong.
        reason: String,
    },
    /// A history line could not be read or written.
    #[error("history {path}, line {line}: {reason}")]
    History {
        /// The JSON-lines file.
        path: PathBuf,
        /// 1-based line number (0 when writing).
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The test bucket could not be read (a checker cannot judge what it cannot read).
    #[error("test bucket: {0}")]
    Bucket(String),
    /// A fault that cannot be applied as asked (e.g. a node in both sides of a partition).
    #[error("invalid fault: {0}")]
    InvalidFault(String),
}
