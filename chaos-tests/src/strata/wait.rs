//! Waiting, with a deadline, until the nodes form one settled cluster: every node answers, all
//! follow the same leader, the voters are exactly `voters` nodes with no learner left, no
//! membership change is in its joint phase, every node has applied what the leader committed,
//! and all hold the same workload registry entries. Faults are injected only from this state (a
//! leader lost mid-change can leave the survivors without a quorum until it returns, as Raft's
//! joint consensus allows).

use std::time::{Duration, Instant};

use super::observer::{snapshot, Target};
use super::status::NodeStatus;
use super::WORKLOAD_PREFIX;
use crate::error::{Error, Result};
use crate::net::NodeId;

/// A settled cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The leader's Raft id.
    pub leader: u64,
    /// The harness node that leads.
    pub leader_node: NodeId,
    /// The leader's term.
    pub term: u64,
    /// The voters' Raft ids, sorted.
    pub voters: Vec<u64>,
    /// How long the wait took.
    pub took: Duration,
}

/// Waits until `targets` form a settled cluster of `voters` voters.
pub fn wait_settled(targets: &[Target], voters: usize, deadline: Duration) -> Result<Settled> {
    let started = Instant::now();
    loop {
        let seen = snapshot(targets, Duration::from_secs(1));
        if let Some(mut s) = settled(&seen, voters) {
            s.took = started.elapsed();
            return Ok(s);
        }
        if started.elapsed() > deadline {
            return Err(Error::Timeout {
                what: format!(
                    "one leader and {voters} settled voters; last seen:\n{}",
                    describe(&seen)
                ),
                after: deadline,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn settled(seen: &[(NodeId, Option<NodeStatus>)], voters: usize) -> Option<Settled> {
    let all: Vec<(NodeId, &NodeStatus)> = seen
        .iter()
        .map(|(id, s)| s.as_ref().map(|s| (*id, s)))
        .collect::<Option<_>>()?;
    let (leader_node, leader) = all.iter().find(|(_, s)| s.is_leader())?;
    let committed = leader.commit_index?;
    let ok = all.iter().all(|(_, s)| {
        s.leader_id == Some(leader.node_id)
            && s.term == leader.term
            && s.voters() == leader.voters()
            && s.learners().is_empty()
            && !s.membership_joint
            && s.applied_index.is_some_and(|a| a >= committed)
            && s.stores_with_prefix(WORKLOAD_PREFIX) == leader.stores_with_prefix(WORKLOAD_PREFIX)
    });
    (ok && leader.voters().len() == voters).then(|| Settled {
        leader: leader.node_id,
        leader_node: *leader_node,
        term: leader.term,
        voters: leader.voters(),
        took: Duration::ZERO,
    })
}

/// One line per node, for timeout messages.
pub fn describe(seen: &[(NodeId, Option<NodeStatus>)]) -> String {
    seen.iter()
        .map(|(id, s)| match s {
            None => format!("  {id}: no answer"),
            Some(s) => format!(
                "  {id}: raft id {} {} term {} leader {:?} voters {:?} learners {:?} joint {} \
                 commit {:?} applied {:?}",
                s.node_id,
                s.server_state,
                s.term,
                s.leader_id,
                s.voters(),
                s.learners(),
                s.membership_joint,
                s.commit_index,
                s.applied_index
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
