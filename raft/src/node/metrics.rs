//! A node's view of the cluster: leader, term, log positions and per-node replication lag.

use std::collections::BTreeSet;

use proto::raft_v1 as pb;
use serde::Serialize;

use super::{convert::member_to_pb, RaftNode};
use crate::state::ClusterState;
use crate::types::{NodeId, PROTOCOL_VERSION};

/// One Raft member's replication as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMetrics {
    /// The node.
    pub node_id: NodeId,
    /// Its Raft (gRPC) address.
    pub address: String,
    /// Voter (true) or learner.
    pub voter: bool,
    /// Highest index known replicated to it (leader only).
    pub matched_index: Option<u64>,
    /// `last_log_index - matched_index` (leader only).
    pub lag: Option<u64>,
}

/// This node's view of the Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterMetrics {
    /// This node.
    pub node_id: NodeId,
    /// "Leader", "Follower", "Candidate", "Learner" or "Shutdown".
    pub server_state: String,
    /// The leader, if known.
    pub leader_id: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Last index in the local log.
    pub last_log_index: Option<u64>,
    /// Last committed index known here.
    pub committed_index: Option<u64>,
    /// Last index applied to the local state machine.
    pub applied_index: Option<u64>,
    /// Raft voters.
    pub voters: BTreeSet<NodeId>,
    /// Raft learners.
    pub learners: BTreeSet<NodeId>,
    /// Every Raft member, with replication progress when this node leads.
    pub nodes: Vec<NodeMetrics>,
}

impl RaftNode {
    /// A snapshot of this node's Raft metrics.
    pub async fn metrics(&self) -> ClusterMetrics {
        let committed = self
            .raft()
            .with_raft_state(|s| s.committed.map(|l| l.index))
            .await
            .ok()
            .flatten();
        let m = self.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        let nodes = membership
            .nodes()
            .map(|(id, n)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .and_then(|l| l.map(|l| l.index));
                let matched_index = if *id == m.id && m.replication.is_some() {
                    m.last_log_index
                } else {
                    matched
                };
                let lag = match (m.replication.is_some(), m.last_log_index) {
                    (true, Some(last)) => Some(last.saturating_sub(matched_index.unwrap_or(0))),
                    _ => None,
                };
                NodeMetrics {
                    node_id: *id,
                    address: n.addr.clone(),
                    voter: voters.contains(id),
                    matched_index,
                    lag,
                }
            })
            .collect();
        ClusterMetrics {
            node_id: m.id,
            server_state: format!("{:?}", m.state),
            leader_id: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            committed_index: committed,
            applied_index: m.last_applied.map(|l| l.index),
            voters,
            learners,
            nodes,
        }
    }
}

impl ClusterMetrics {
    /// The admin protocol's status reply: Raft metrics joined with the member table.
    pub fn to_pb(&self, state: &ClusterState) -> pb::StatusReply {
        let mut members: Vec<pb::MemberStatus> = Vec::new();
        for n in &self.nodes {
            let member = state
                .members
                .get(&n.node_id)
                .map(member_to_pb)
                .unwrap_or_else(|| pb::Member {
                    node_id: n.node_id,
                    grpc_address: n.address.clone(),
                    ..Default::default()
                });
            members.push(pb::MemberStatus {
                member: Some(member),
                raft_role: if n.voter { "voter" } else { "learner" }.to_string(),
                matched_index: n.matched_index,
                lag: n.lag,
            });
        }
        for (id, m) in &state.members {
            if !self.nodes.iter().any(|n| n.node_id == *id) {
                members.push(pb::MemberStatus {
                    member: Some(member_to_pb(m)),
                    raft_role: "none".to_string(),
                    matched_index: None,
                    lag: None,
                });
            }
        }
        pb::StatusReply {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.node_id,
            leader_id: self.leader_id,
            term: self.term,
            server_state: self.server_state.clone(),
            last_log_index: self.last_log_index,
            committed_index: self.committed_index,
            applied_index: self.applied_index,
            members,
        }
    }
}
