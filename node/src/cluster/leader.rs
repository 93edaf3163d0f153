//! Work only the leader does, on a timer: remove stores whose heartbeats stopped (judged by the
//! leader's own monotonic clock, see `liveness`), return jobs
//! whose leases ended to pending, and promote learners while there are fewer than five voters.
//! Each is written to the log only when there is something to change, so an idle cluster's log
//! does not grow.

use std::time::{Duration, Instant};

use raft::{now_ms, Command, JobState, RaftNode};

use super::liveness::Liveness;
use tokio::sync::watch;

/// Timing of the leader's duties.
#[derive(Debug, Clone, Copy)]
pub struct LeaderDuties {
    /// How often to look.
    pub interval: Duration,
    /// Heartbeat age past which a store is dead.
    pub store_max_age: Duration,
}

impl LeaderDuties {
    /// Runs until `stop`.
    pub async fn run(self, node: RaftNode, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = Liveness::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let m = node.raft().metrics().borrow().clone();
            if m.current_leader != Some(node.id()) {
                continue;
            }
            let span = tracing::info_span!("leader", node_id = node.id(), term = m.current_term);
            let _enter = span.enter();
            self.once(&node, m.current_term, &mut liveness).await;
        }
    }

    async fn once(&self, node: &RaftNode, term: u64, liveness: &mut Liveness) {
        let now = now_ms();
        let state = node.local_state();
        // A heartbeat committed between this read and the removal loses the race: the store
        // is removed and registers again on its next heartbeat.
        let dead = liveness.observe(term, &state, Instant::now(), self.store_max_age);
        for address in dead {
            let cmd = Command::DeregisterStore {
                address: address.clone(),
            };
            match node.client_write(cmd).await {
                Ok(_) => {
                    tracing::info!(store = %address, max_age = ?self.store_max_age, "removed a store whose heartbeats stopped")
                }
                Err(e) => {
                    tracing::warn!(store = %address, error = %e, "cannot remove a dead store")
                }
            }
        }
        let lapsed = state.jobs.values().any(|j| {
            matches!(j.state, JobState::Assigned { lease_expiry_ms, .. } if lease_expiry_ms <= now)
        });
        if lapsed {
            match node
                .client_write(Command::ExpireLeases { now_ms: now })
                .await
            {
                Ok(raft::Response::Expired { ids }) => {
                    tracing::info!(jobs = ?ids, "job leases expired; jobs back to pending")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot expire job leases"),
            }
        }
        let has_learners = node
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .learner_ids()
            .next()
            .is_some();
        if has_learners {
            match node.promote_learners().await {
                Ok(voters) => tracing::debug!(?voters, "voters after promotion"),
                Err(e) => tracing::warn!(error = %e, "cannot promote learners"),
            }
        }
    }
}
