//! This node's graceful leave: a leader first hands over leadership (`handover.rs`) so that the
//! new leader removes it; a follower asks the leader to remove it.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;

use super::RaftNode;
use crate::error::RaftNodeError;
use crate::network::client::AdminClient;
use crate::types::NodeId;

/// How a leave went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveOutcome {
    /// The voter this leader handed leadership to before leaving; `None` when the node was not
    /// the leader, or the handover could not happen (the log says why) and the leader removed
    /// itself instead.
    pub handed_over_to: Option<NodeId>,
    /// Why a leader left without a handover.
    pub no_handover: Option<String>,
    /// The leader that committed the removal.
    pub removed_by: NodeId,
}

/// Pause between attempts to reach the leader while leaving.
const RETRY: Duration = Duration::from_millis(200);

impl RaftNode {
    /// Leaves the cluster gracefully. The leader first hands leadership to a caught-up voter,
    /// which then removes it (a new leader within a round trip or two instead of an election
    /// timeout); when that cannot happen it removes itself, steps down and asks the most
    /// caught-up voter to campaign, and followers elect a leader once openraft's lease
    /// (`election_max`) since the last heartbeat has passed. A follower asks the leader to
    /// remove it. Gives up after `timeouts.join` without a leader to leave through.
    pub async fn leave(&self) -> Result<LeaveOutcome, RaftNodeError> {
        let (mut handed_over_to, mut no_handover) = (None, None);
        if self.is_leader() {
            match self.hand_over_leadership().await {
                Ok(leader) => {
                    tracing::info!(
                        successor = leader,
                        "leadership handed over; the new leader removes this node"
                    );
                    handed_over_to = Some(leader);
                }
                Err(e) => {
                    tracing::warn!(
                        reason = %e,
                        "no leadership handover; leaving by a membership change that removes this leader (a new leader follows after about the election timeout)"
                    );
                    no_handover = Some(e.to_string());
                }
            }
        }
        let removed_by = self.leave_through_leader().await?;
        Ok(LeaveOutcome {
            handed_over_to,
            no_handover,
            removed_by,
        })
    }

    /// Asks whichever node leads to remove this one, waiting for a leader and retrying
    /// transient refusals until `timeouts.join`. Returns the leader that committed it.
    async fn leave_through_leader(&self) -> Result<NodeId, RaftNodeError> {
        let id = self.id();
        let limit = self.config().timeouts.join;
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .raft()
                .wait(Some(left))
                .metrics(|m| m.current_leader.is_some(), "a leader to leave through")
                .await
                .map_err(|_| {
                    RaftNodeError::Leave(format!("no leader known within {limit:?}; cannot leave"))
                })?;
            if m.current_leader == Some(id) && m.state == ServerState::Leader {
                return self.remove_self_as_leader().await;
            }
            let leader = m.current_leader.unwrap_or_default();
            let address = m
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|n| n.addr.clone());
            let err = match address {
                Some(a) => match AdminClient::leave(&a, &self.config().secret, left, id).await {
                    Ok(by) => return Ok(by),
                    Err(e) => e.to_string(),
                },
                None => format!("leader {leader} has no known address"),
            };
            if Instant::now() + RETRY >= deadline {
                return Err(RaftNodeError::Leave(err));
            }
            tracing::info!(leader, error = %err, "leave not committed yet; retrying");
            tokio::time::sleep(RETRY).await;
        }
    }

    /// The fallback for a leader: it commits a membership without itself, steps down, and asks
    /// the most caught-up remaining voter to campaign at once. Followers still refuse votes
    /// until openraft's leader lease (`election_max`) since the last heartbeat has passed.
    async fn remove_self_as_leader(&self) -> Result<NodeId, RaftNodeError> {
        let id = self.id();
        let m = self.raft().metrics().borrow().clone();
        let successor = m.replication.as_ref().and_then(|r| {
            let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
            r.iter()
                .filter(|(n, _)| **n != id && voters.contains(n))
                .max_by_key(|(n, matched)| (matched.map(|l| l.index), std::cmp::Reverse(**n)))
                .and_then(|(n, _)| {
                    m.membership_config
                        .membership()
                        .get_node(n)
                        .map(|a| (*n, a.addr.clone()))
                })
        });
        self.remove_node(id).await.map_err(RaftNodeError::Write)?;
        let wait = self.config().timeouts.election_max * 2;
        let _ = self
            .raft()
            .wait(Some(wait))
            .metrics(
                |x| x.state != ServerState::Leader,
                "leader steps down after removing itself",
            )
            .await;
        if let Some((sid, addr)) = successor {
            let t = Duration::from_secs(2);
            match AdminClient::new(&addr, &self.config().secret, t) {
                Ok(mut c) => {
                    if let Err(e) = c.trigger_election(id).await {
                        tracing::warn!(successor = sid, error = %e, "election request after removal failed");
                    }
                }
                Err(e) => tracing::warn!(successor = sid, error = %e, "no client for successor"),
            }
        }
        Ok(id)
    }
}
