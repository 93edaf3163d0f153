//! Raft and cluster gauges on `/metrics`, refreshed from the node's Raft metrics.

use std::time::Duration;

use prometheus::{IntGauge, Registry};
use raft::RaftNode;
use tokio::sync::watch;

/// The gauges.
#[derive(Clone)]
pub struct RaftGauges {
    term: IntGauge,
    leader: IntGauge,
    commit: IntGauge,
    applied: IntGauge,
    last_log: IntGauge,
    members: IntGauge,
    voters: IntGauge,
    stores: IntGauge,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn as_i64(v: Option<u64>) -> i64 {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl RaftGauges {
    /// Registers the gauges.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(RaftGauges {
            term: gauge(registry, "strata_raft_term", "Current Raft term.")?,
            leader: gauge(
                registry,
                "strata_raft_leader",
                "1 when this node is the Raft leader.",
            )?,
            commit: gauge(
                registry,
                "strata_raft_commit_index",
                "Last committed Raft log index known here (-1: none).",
            )?,
            applied: gauge(
                registry,
                "strata_raft_applied_index",
                "Last Raft log index applied to the state machine (-1: none).",
            )?,
            last_log: gauge(
                registry,
                "strata_raft_last_log_index",
                "Last index in the local Raft log (-1: none).",
            )?,
            members: gauge(
                registry,
                "strata_cluster_members",
                "Nodes in the Raft membership (voters and learners).",
            )?,
            voters: gauge(
                registry,
                "strata_cluster_voters",
                "Voters in the Raft membership.",
            )?,
            stores: gauge(
                registry,
                "strata_cluster_stores",
                "Stores in the replicated store registry.",
            )?,
        })
    }

    async fn update(&self, node: &RaftNode) {
        let m = node.metrics().await;
        self.term.set(i64::try_from(m.term).unwrap_or(i64::MAX));
        self.leader.set(i64::from(m.leader_id == Some(m.node_id)));
        self.commit.set(as_i64(m.committed_index));
        self.applied.set(as_i64(m.applied_index));
        self.last_log.set(as_i64(m.last_log_index));
        self.members
            .set(i64::try_from(m.nodes.len()).unwrap_or(i64::MAX));
        self.voters
            .set(i64::try_from(m.voters.len()).unwrap_or(i64::MAX));
        self.stores
            .set(i64::try_from(node.local_state().stores.len()).unwrap_or(i64::MAX));
    }

    /// Refreshes on every Raft metrics change and at least every second, until `stop`.
    pub async fn run(self, node: RaftNode, mut stop: watch::Receiver<bool>) {
        let mut changes = node.raft().metrics();
        loop {
            self.update(&node).await;
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
