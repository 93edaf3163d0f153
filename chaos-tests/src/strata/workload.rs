//! The client workload: a grow-only set of store registry entries. Each `add` announces a new
//! store `wl-<n>:1` through the node's gRPC `StoreRegistry.Announce` (authenticated with the
//! cluster secret), sent to the node that last claimed leadership; the reply comes after the
//! leader committed the registration, so an `ok` is an acknowledged write. Any error is `info`
//! (outcome unknown: a timed-out write may still commit), except a follower's "not the leader"
//! refusal, which is `fail`.
//!
//! [`read_all`] reads each node's applied registry (`/api/v1/status/cluster`, possibly stale by
//! design) once after the cluster converged, for the "acknowledged adds survive" check on
//! every node. Reads during faults are linearizable reads of their own (see `reads`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::observer::{LeaderHint, Target};
use super::status::fetch;
use super::WORKLOAD_PREFIX;
use crate::history::{Actor, History};

/// The generated StoreRegistry client (`strata.node.v1`, from node/proto).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("strata.node.v1");
}

use pb::store_registry_client::StoreRegistryClient;

/// What the workload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Adds invoked.
    pub invoked: usize,
    /// Adds acknowledged.
    pub acked: usize,
}

/// Announces one new registry entry every `interval` until stopped.
#[derive(Debug, Clone)]
pub struct RegistryWorkload {
    /// The cluster secret.
    pub secret: raft::ClusterSecret,
    /// Pause between two adds.
    pub interval: Duration,
    /// Timeout of one announcement (an isolated leader never answers).
    pub timeout: Duration,
}

impl RegistryWorkload {
    /// Runs until `stop`, recording every add as client 0.
    pub fn run(
        &self,
        targets: &[Target],
        history: &History,
        hint: &LeaderHint,
        stop: &AtomicBool,
    ) -> WorkloadStats {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "workload runtime");
                return WorkloadStats::default();
            }
        };
        rt.block_on(self.run_async(targets, history, hint, stop))
    }

    async fn run_async(
        &self,
        targets: &[Target],
        history: &History,
        hint: &LeaderHint,
        stop: &AtomicBool,
    ) -> WorkloadStats {
        let mut clients = Vec::new();
        for t in targets {
            let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", t.grpc));
            let Ok(endpoint) = endpoint else { continue };
            let ch = endpoint
                .connect_timeout(Duration::from_secs(1))
                .timeout(self.timeout)
                .connect_lazy();
            let auth = raft::network::auth::ClientAuth::new(&self.secret);
            clients.push((t.id, StoreRegistryClient::with_interceptor(ch, auth)));
        }
        let mut stats = WorkloadStats::default();
        let mut round_robin = 0usize;
        while !stop.load(Ordering::Relaxed) && !clients.is_empty() {
            let started = Instant::now();
            let i = hint
                .leader()
                .and_then(|l| clients.iter().position(|(id, _)| *id == l))
                .unwrap_or_else(|| {
                    round_robin += 1;
                    round_robin % clients.len()
                });
            let Some((node, client)) = clients.get_mut(i) else {
                break;
            };
            let address = format!("{WORKLOAD_PREFIX}{:05}:1", stats.invoked);
            stats.invoked += 1;
            let op = history.invoke(Actor::Client(0), "add", json!(address), Some(*node));
            let req = pb::AnnounceRequest {
                protocol_version: raft::PROTOCOL_VERSION,
                node_id: 0,
                address,
                label_sets: Vec::new(),
                min_time_ms: 0,
                max_time_ms: 1,
            };
            match client.announce(req).await {
                Ok(r) => {
                    stats.acked += 1;
                    op.ok(json!({"registered": r.into_inner().registered}));
                }
                // A follower refuses before appending anything: certainly not applied.
                Err(s)
                    if s.code() == tonic::Code::Unavailable
                        && s.message().starts_with("not the leader") =>
                {
                    op.fail(json!({"code": s.code().to_string(), "message": s.message()}));
                }
                Err(s) => {
                    op.info(json!({"code": s.code().to_string(), "message": s.message()}));
                }
            }
            tokio::time::sleep(self.interval.saturating_sub(started.elapsed())).await;
        }
        stats
    }
}

/// Reads every node's applied workload entries once, as client 1's `read` operations.
pub fn read_all(targets: &[Target], history: &History, timeout: Duration) {
    for t in targets {
        let op = history.invoke(Actor::Client(1), "read", json!(null), Some(t.id));
        match fetch(t.http, timeout) {
            Ok(s) => op.ok(json!(s.stores_with_prefix(WORKLOAD_PREFIX))),
            Err(e) => op.info(json!(e.to_string())),
        };
    }
}
