//! Membership changes on the leader: admit (learner, then voter up to the limit), remove,
//! promote. This node's graceful leave is in `leave.rs`.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, ChangeMembers, ServerState};

use super::{now_ms, write_error, RaftNode};
use crate::error::{RaftNodeError, WriteError};
use crate::state::{Command, Member, Rejection};
use crate::types::NodeId;

/// The result of admitting a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The leader that admitted it (this node).
    pub leader_id: NodeId,
    /// Whether it is now a voter.
    pub voter: bool,
}

impl RaftNode {
    fn not_leader(&self) -> WriteError {
        let m = self.raft().metrics().borrow().clone();
        let leader_address = m.current_leader.and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        WriteError::ForwardToLeader {
            leader_id: m.current_leader,
            leader_address,
        }
    }

    /// Whether the membership this node works with (possibly not yet committed) leaves this node
    /// out of its target voters: its own removal is under way.
    fn removing_self(&self) -> bool {
        let m = self.raft().metrics().borrow().clone();
        let joint = m.membership_config.membership().get_joint_config().clone();
        joint
            .last()
            .is_some_and(|target| !target.contains(&self.id()))
    }

    /// Runs one Raft membership change, serialised with this node's others. openraft 0.9
    /// asserts (and panics in debug builds) when a change reaches a leader whose own removal is
    /// under way, so no other change starts while the membership excludes this node, and
    /// leadership is checked again right before the change, under the lock.
    async fn membership_change<T, F>(&self, self_removal: bool, change: F) -> Result<T, WriteError>
    where
        F: std::future::Future<Output = Result<T, WriteError>>,
    {
        // Fail fast like openraft's own "change in progress" rather than queue behind a change
        // that may wait long for a quorum.
        let Ok(_guard) = self.inner.membership.try_lock() else {
            return Err(WriteError::NotCommitted(
                "another membership change is in progress on this node; retry".into(),
            ));
        };
        if !self_removal && self.removing_self() {
            return Err(WriteError::NotCommitted(
                "this node is removing itself from the cluster; ask the next leader".into(),
            ));
        }
        self.ensure_leader()?;
        change.await
    }

    fn ensure_leader(&self) -> Result<(), WriteError> {
        let m = self.raft().metrics().borrow().clone();
        if m.current_leader == Some(self.id()) && m.state == ServerState::Leader {
            Ok(())
        } else {
            Err(self.not_leader())
        }
    }

    /// Adds a learner (or updates its address) and waits until it has caught up, at most
    /// `timeouts.join`.
    pub async fn add_learner(&self, id: NodeId, grpc_address: &str) -> Result<(), WriteError> {
        self.ensure_leader()?;
        let node = BasicNode::new(grpc_address);
        let known = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned();
        let fut = async {
            match known {
                Some(n) if n == node => Ok(()),
                Some(_) => {
                    let change = ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
                    self.membership_change(false, async {
                        self.raft()
                            .change_membership(change, true)
                            .await
                            .map(|_| ())
                            .map_err(write_error)
                    })
                    .await
                }
                None => {
                    self.membership_change(false, async {
                        self.raft()
                            .add_learner(id, node, true)
                            .await
                            .map(|_| ())
                            .map_err(write_error)
                    })
                    .await
                }
            }
        };
        let join = self.config().timeouts.join;
        tokio::time::timeout(join, fut).await.map_err(|_| {
            WriteError::NotCommitted(format!("learner {id} did not catch up within {join:?}"))
        })?
    }

    /// Sets the voters to exactly `voters` (each must already be a learner or voter); nodes
    /// dropped from the voters stay learners. At most `max_voters`.
    pub async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<(), RaftNodeError> {
        let max = self.config().max_voters;
        if voters.len() > max || voters.is_empty() {
            return Err(RaftNodeError::TooManyVoters {
                requested: voters.len(),
                max,
            });
        }
        self.membership_change(false, async {
            self.raft()
                .change_membership(ChangeMembers::ReplaceAllVoters(voters), true)
                .await
                .map(|_| ())
                .map_err(write_error)
        })
        .await
        .map_err(RaftNodeError::Write)
    }

    /// The leader side of a join: learner first, member record, then voter while there are
    /// fewer than `max_voters`. Idempotent for a node that joins again after a restart.
    pub async fn admit(&self, mut member: Member) -> Result<super::Admission, WriteError> {
        self.ensure_leader()?;
        let id = member.node_id;
        self.add_learner(id, &member.grpc_address).await?;
        member.joined_at_ms = match self.local_state().members.get(&id) {
            Some(old) => old.joined_at_ms,
            None => now_ms(),
        };
        self.client_write(Command::AddMember { member }).await?;
        let voter = self.promote_learners().await?.contains(&id);
        Ok(Admission {
            leader_id: self.id(),
            voter,
        })
    }

    /// Promotes learners to voters (lowest ids first) until there are `max_voters`; returns the
    /// voter set afterwards. The binary may call it periodically on the leader.
    pub async fn promote_learners(&self) -> Result<BTreeSet<NodeId>, WriteError> {
        self.ensure_leader()?;
        let membership = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let mut voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let room = self.config().max_voters.saturating_sub(voters.len());
        let add: BTreeSet<NodeId> = membership.learner_ids().take(room).collect();
        if add.is_empty() {
            return Ok(voters);
        }
        self.membership_change(false, async {
            self.raft()
                .change_membership(ChangeMembers::AddVoterIds(add.clone()), true)
                .await
                .map_err(write_error)
        })
        .await?;
        voters.extend(add);
        Ok(voters)
    }

    /// Removes `node_id` from the member table and the Raft membership; returns the leader's id.
    /// When the node is this leader, the member record goes first (a removed leader cannot
    /// write); openraft steps the leader down once the new membership is committed.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<NodeId, WriteError> {
        self.ensure_leader()?;
        let membership = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if voters.contains(&node_id) && voters.len() == 1 {
            return Err(WriteError::NotCommitted(format!(
                "node {node_id} is the only voter; a cluster cannot remove its last voter"
            )));
        }
        match self.client_write(Command::RemoveMember { node_id }).await {
            Ok(_) | Err(WriteError::Rejected(Rejection::UnknownMember { .. })) => {}
            Err(e) => return Err(e),
        }
        let change = if voters.contains(&node_id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
        };
        if membership.get_node(&node_id).is_some() {
            self.membership_change(node_id == self.id(), async {
                self.raft()
                    .change_membership(change, false)
                    .await
                    .map_err(write_error)
            })
            .await?;
        }
        if node_id != self.id() {
            // Keep the voter count up when learners are waiting.
            let _ = self.promote_learners().await;
        }
        Ok(self.id())
    }
}
