//! Running a node as a member of the Raft group, on top of the `raft` crate.
//!
//! - `discovery`: `--cluster.peers` (`host:port`, `dns+name:port`) resolution
//! - `jobs`: job reports (lease renewals, progress) from assignees, committed on the leader
//! - `join`: joining, and the bootstrap rule (explicit flag or the agreed seed)
//! - `leader`: the leader's periodic duties (store expiry, lease expiry, learner promotion)
//! - `liveness`: store liveness by the leader's own clock on receipt of heartbeats
//! - `registry`: store announcements (heartbeats) and the service forwarding them to the leader
//! - `status`: the cluster status JSON and table
//! - `stores`: `/api/v1/cluster/stores`, the registry (linearizable with `consistent=true`)
//! - `http`: `/api/v1/status/cluster`, probes and `/metrics` of a node
//! - `metrics`: Raft gauges
//! - `cli`: `strata cluster status|leave`

pub mod cli;
pub mod discovery;
pub mod http;
pub mod jobs;
pub mod join;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod registry;
pub mod status;
pub mod stores;

use anyhow::Context as _;
use raft::ClusterSecret;
use std::path::Path;

/// The secret every `--cluster.insecure` node uses: publicly known, so it authenticates nothing.
const INSECURE_SECRET: &[u8] = b"strata-insecure-cluster-secret-for-local-experiments";

/// The cluster secret from `--cluster.secret-file`, or the well-known one of `--cluster.insecure`.
pub fn load_secret(file: Option<&Path>, insecure: bool) -> anyhow::Result<ClusterSecret> {
    match file {
        Some(p) => ClusterSecret::from_file(p).context("loading --cluster.secret-file"),
        None if insecure => {
            tracing::warn!("--cluster.insecure: cluster RPCs are not authenticated; for local experiments only");
            ClusterSecret::from_bytes(INSECURE_SECRET).context("insecure secret")
        }
        None => anyhow::bail!(
            "--cluster.secret-file is required (or --cluster.insecure for local experiments)"
        ),
    }
}
