//! Leadership handover, Raft's TimeoutNow, built on what openraft 0.9 offers (it has no
//! leadership transfer of its own).
//!
//! What makes it work, in openraft 0.9.25's terms:
//! - A voter refuses a vote request while `now <= vote_utime + leader_lease` if its vote is
//!   committed (`Engine::handle_vote_req`); the lease is `election_max`. Followers refresh
//!   `vote_utime` on every heartbeat, so they refuse any candidate while the leader lives.
//! - The leader's own `vote_utime` is set once, when it is established, and its heartbeats do
//!   not refresh it. A leader that has led for longer than the lease therefore grants a vote of
//!   a higher term to a candidate whose log is at least as long as its own, and steps down.
//! - `raft.trigger().elect()` makes a node campaign at once, whatever its timers say.
//!
//! So the leader picks a voter whose log has caught up with its own, stops taking writes (so it
//! stays caught up), and sends it `TimeoutNow`; the voter campaigns in the next term and wins
//! with its own vote and the old leader's. In a 3-voter cluster that is a majority at once. With
//! 5 voters the other followers still refuse until their lease since the last heartbeat lapses,
//! so the successor wins on a later attempt, after about `election_max`: still sooner than the
//! fallback, which needs the lease *and* an election timeout.
//!
//! A leader younger than the lease would refuse the vote, and the failed candidacy (a higher
//! term) would depose it without a successor: the handover first waits out the rest of the
//! lease, measured from when this node saw itself become leader (later than openraft's
//! `vote_utime`, so the wait is never too short).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use proto::raft_v1 as pb;
use tokio::time::Instant;

use super::RaftNode;
use crate::error::AdminError;
use crate::network::client;
use crate::types::{NodeId, Raft, PROTOCOL_VERSION};

/// The term this node leads in and since when, if it leads.
pub(super) type LeaderSince = Arc<Mutex<Option<(u64, Instant)>>>;

/// Why a leadership handover did not happen (the caller falls back and logs this).
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Only the leader hands over.
    #[error("this node is not the leader")]
    NotLeader,
    /// Writes in flight did not finish in time (no quorum?).
    #[error("writes in flight did not finish within {waited:?}")]
    WritesInFlight {
        /// How long the leader waited.
        waited: Duration,
    },
    /// A one-voter cluster has no one to hand over to.
    #[error("no other voter to hand over to")]
    NoOtherVoter,
    /// A membership change or another handover holds this node's membership lock.
    #[error("another membership change or handover is in progress on this node")]
    Busy,
    /// No other voter's replication reached the leader's last log entry in time.
    #[error("no voter caught up with the leader's log (last index {last_log_index:?}) within {waited:?}")]
    NoCaughtUpVoter {
        /// The leader's last log index.
        last_log_index: Option<u64>,
        /// How long the leader waited.
        waited: Duration,
    },
    /// The successor could not be asked, or refused.
    #[error("successor {target} refused or could not be asked to campaign: {error}")]
    Refused {
        /// The chosen successor.
        target: NodeId,
        /// What the call returned.
        error: AdminError,
    },
    /// No other leader appeared in time (this node may still lead, or no one does yet).
    #[error("successor {target} did not take over within {waited:?} (leader now: {leader:?})")]
    NotElected {
        /// The chosen successor.
        target: NodeId,
        /// How long the leader waited.
        waited: Duration,
        /// The leader this node knows of now.
        leader: Option<NodeId>,
    },
}

/// Why a voter refused a `TimeoutNow`.
#[derive(Debug, thiserror::Error)]
pub enum TimeoutNowRefusal {
    /// The sender is not the leader this node follows in that term: a stale or misdirected
    /// request must not depose a healthy leader.
    #[error(
        "this node follows leader {leader:?} in term {term}, not node {from} in term {asked_term}"
    )]
    NotFollowing {
        /// The leader this node knows.
        leader: Option<NodeId>,
        /// This node's term.
        term: u64,
        /// The sender.
        from: NodeId,
        /// The sender's term.
        asked_term: u64,
    },
    /// Learners do not campaign.
    #[error("this node is not a voter")]
    NotVoter,
    /// This node's log is shorter than the leader's: the leader would refuse its vote.
    #[error("this node's log ends at index {have:?}, behind the leader's {want:?}")]
    Behind {
        /// This node's last log index.
        have: Option<u64>,
        /// The leader's.
        want: Option<u64>,
    },
    /// Raft stopped.
    #[error("cannot start an election: {0}")]
    Fatal(String),
}

/// Follows the node's metrics and records when it became leader, until Raft stops.
pub(super) fn track_leadership(raft: &Raft, id: NodeId) -> LeaderSince {
    let since: LeaderSince = Arc::new(Mutex::new(None));
    let mut rx = raft.metrics();
    let record = since.clone();
    tokio::spawn(async move {
        loop {
            {
                let m = rx.borrow_and_update();
                let leading = m.state == ServerState::Leader && m.current_leader == Some(id);
                let mut g = record.lock().unwrap_or_else(|p| p.into_inner());
                match (*g, leading) {
                    (Some((term, _)), true) if term == m.current_term => {}
                    (_, true) => *g = Some((m.current_term, Instant::now())),
                    (_, false) => *g = None,
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    since
}

impl RaftNode {
    /// Whether this node is the leader now.
    pub fn is_leader(&self) -> bool {
        let m = self.raft().metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.id())
    }

    /// Hands leadership to a caught-up voter (Raft's TimeoutNow) and returns the new leader.
    /// Writes through this node are refused meanwhile. On an error this node may still lead
    /// (nothing happened), or may have stepped down without a successor yet (an election
    /// follows within the election timeout); it never leaves two leaders in one term.
    pub async fn hand_over_leadership(&self) -> Result<NodeId, HandoverError> {
        let Ok(_guard) = self.inner.membership.try_lock() else {
            return Err(HandoverError::Busy);
        };
        if !self.is_leader() {
            return Err(HandoverError::NotLeader);
        }
        self.wait_out_lease().await;
        self.inner.handing_over.store(true, Ordering::SeqCst);
        let r = async {
            // Writes already handed to openraft finish first (committed, or failed), so the
            // log stops growing before a successor is picked.
            let drain = self.config().timeouts.election_max;
            let _writes = tokio::time::timeout(drain, self.inner.writes.write())
                .await
                .map_err(|_| HandoverError::WritesInFlight { waited: drain })?;
            self.hand_over_locked().await
        }
        .await;
        self.inner.handing_over.store(false, Ordering::SeqCst);
        r
    }

    /// Sleeps until this node has led for longer than openraft's leader lease, so that it
    /// grants its successor's vote.
    async fn wait_out_lease(&self) {
        let term = self.raft().metrics().borrow().current_term;
        let since = *self
            .inner
            .leader_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let since = match since {
            Some((t, at)) if t == term => at,
            _ => Instant::now(),
        };
        // openraft compares with `<=`; a few ms more avoid the tie.
        let until = since + self.config().timeouts.election_max + Duration::from_millis(5);
        if until > Instant::now() {
            tracing::info!(
                wait = ?until.saturating_duration_since(Instant::now()),
                "leader younger than its lease; waiting before the handover"
            );
            tokio::time::sleep_until(until).await;
        }
    }

    async fn hand_over_locked(&self) -> Result<NodeId, HandoverError> {
        let id = self.id();
        let (target, address, term, last) = self.caught_up_voter().await?;
        tracing::info!(
            successor = target,
            term,
            last_log_index = ?last,
            "handing over leadership"
        );
        let req = pb::TimeoutNowRequest {
            protocol_version: PROTOCOL_VERSION,
            from_node: id,
            term,
            last_log_index: last,
        };
        let secret = &self.config().secret;
        let rpc_timeout = self.config().timeouts.election_max;
        client::timeout_now(&address, secret, rpc_timeout, req)
            .await
            .map_err(|error| HandoverError::Refused { target, error })?;
        // The successor's first AppendEntries tells this node who leads the next term.
        let waited = self.config().timeouts.election_max * 3;
        let seen = self
            .raft()
            .wait(Some(waited))
            .metrics(
                |m| m.current_term > term && m.current_leader.is_some_and(|l| l != id),
                "a new leader after the handover",
            )
            .await;
        match seen {
            Ok(m) => {
                let leader = m.current_leader.unwrap_or(target);
                if leader != target {
                    tracing::info!(
                        successor = target,
                        leader,
                        "another voter won the handover election"
                    );
                }
                Ok(leader)
            }
            Err(_) => Err(HandoverError::NotElected {
                target,
                waited,
                leader: self.raft().metrics().borrow().current_leader,
            }),
        }
    }

    /// Waits (at most `election_max`) for another voter whose replication has reached this
    /// leader's last log entry; the lowest such id wins. Returns it, its address, the term and
    /// the last log index.
    async fn caught_up_voter(&self) -> Result<(NodeId, String, u64, Option<u64>), HandoverError> {
        let id = self.id();
        let pick = |m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>| {
            let membership = m.membership_config.membership();
            let replication = m.replication.as_ref()?;
            let last = m.last_log_index?;
            membership
                .voter_ids()
                .filter(|v| *v != id)
                .find(|v| {
                    replication
                        .get(v)
                        .and_then(|l| l.as_ref())
                        .is_some_and(|l| l.index >= last)
                })
                .and_then(|v| membership.get_node(&v).map(|n| (v, n.addr.clone())))
        };
        let others = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v != id);
        if !others {
            return Err(HandoverError::NoOtherVoter);
        }
        let waited = self.config().timeouts.election_max;
        let m = self
            .raft()
            .wait(Some(waited))
            .metrics(|m| pick(m).is_some(), "a caught-up voter")
            .await
            .map_err(|_| HandoverError::NoCaughtUpVoter {
                last_log_index: self.raft().metrics().borrow().last_log_index,
                waited,
            })?;
        if m.state != ServerState::Leader || m.current_leader != Some(id) {
            return Err(HandoverError::NotLeader);
        }
        let (target, address) = pick(&m).ok_or(HandoverError::NoCaughtUpVoter {
            last_log_index: m.last_log_index,
            waited,
        })?;
        Ok((target, address, m.current_term, m.last_log_index))
    }

    /// The successor's side of a handover: campaigns now if the request comes from the leader
    /// it follows, in its current term, and its log has reached the leader's (waiting up to a
    /// heartbeat interval for entries still in flight).
    pub async fn accept_timeout_now(
        &self,
        from: NodeId,
        term: u64,
        last_log_index: Option<u64>,
    ) -> Result<(), TimeoutNowRefusal> {
        let m = self.raft().metrics().borrow().clone();
        if m.current_leader != Some(from) || m.current_term != term {
            return Err(TimeoutNowRefusal::NotFollowing {
                leader: m.current_leader,
                term: m.current_term,
                from,
                asked_term: term,
            });
        }
        if !m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.id())
        {
            return Err(TimeoutNowRefusal::NotVoter);
        }
        let caught_up = self
            .raft()
            .wait(Some(self.config().timeouts.heartbeat))
            .metrics(
                |m| m.last_log_index >= last_log_index,
                "log caught up with the leader's",
            )
            .await;
        if caught_up.is_err() {
            return Err(TimeoutNowRefusal::Behind {
                have: self.raft().metrics().borrow().last_log_index,
                want: last_log_index,
            });
        }
        tracing::info!(
            from,
            term,
            "leadership handover: campaigning for the next term"
        );
        self.raft()
            .trigger()
            .elect()
            .await
            .map_err(|e| TimeoutNowRefusal::Fatal(e.to_string()))
    }
}
