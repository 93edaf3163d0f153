//! Work only the leader does, on a timer: expire stores whose heartbeats stopped, return jobs
//! whose leases ended to pending, and promote learners while there are fewer than five voters.
//! Each is written to the log only when there is something to change, so an idle cluster's log
//! does not grow.

use std::time::Duration;

use raft::{now_ms, Command, JobState, RaftNode};
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
            self.once(&node).await;
        }
    }

    async fn once(&self, node: &RaftNode) {
        let now = now_ms();
        let max_age = i64::try_from(self.store_max_age.as_millis()).unwrap_or(i64::MAX);
        let state = node.local_state();
        if state.stores.values().any(|s| !s.is_live(now, max_age)) {
            match node
                .client_write(Command::ExpireStores {
                    now_ms: now,
                    max_age_ms: max_age,
                })
                .await
            {
                Ok(raft::Response::Expired { ids }) => {
                    tracing::info!(stores = ?ids, "expired stores whose heartbeats stopped")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot expire stores"),
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
