//! The owner's side of rule groups under Raft: which groups this node holds, under which
//! fencing token, and until when it may evaluate them. A group is evaluated only while the
//! local deadline (when the renewal was *sent*, plus the lease, minus a margin) is ahead: the
//! leader's lease started no earlier than the send, so this node stops at least `margin`
//! before the leader may give the group to another node. The `for` state travels as the job's
//! progress: saved after each iteration, sent with the next renewal, and handed to the next
//! owner in its first renewal's reply.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use raft::{ClusterState, FencingToken, JobState, NodeId};

use super::assign::JOB_KIND;
use super::for_state::{ForStateStore, GroupForState};
use super::manager::GroupGate;

struct Holding {
    token: FencingToken,
    until: Instant,
    /// The previous owner's state, restored at the first iteration.
    handed_over: Option<GroupForState>,
    restore_pending: bool,
    latest: Option<GroupForState>,
    reported: Option<String>,
}

/// The groups this node holds.
pub struct Holdings {
    lease: Duration,
    margin: Duration,
    held: Mutex<BTreeMap<String, Holding>>,
}

/// The rule groups `state` assigns to `node_id` (group key -> token), whatever their lease.
pub fn assigned_to(state: &ClusterState, node_id: NodeId) -> BTreeMap<String, FencingToken> {
    state
        .jobs
        .values()
        .filter(|j| j.kind == JOB_KIND)
        .filter_map(|j| match &j.state {
            JobState::Assigned {
                node_id: n, token, ..
            } if *n == node_id => Some((j.spec.clone(), token.clone())),
            _ => None,
        })
        .collect()
}

impl Holdings {
    /// Nothing held yet; renewals ask for `lease`, evaluation stops `margin` before it ends.
    pub fn new(lease: Duration, margin: Duration) -> Holdings {
        Holdings {
            lease,
            margin,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Holding>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets groups the state no longer assigns to this node under the token held.
    pub fn retain(&self, assigned: &BTreeMap<String, FencingToken>) {
        self.lock()
            .retain(|key, h| assigned.get(key) == Some(&h.token));
    }

    /// The progress to send with the next renewal of `key`: the latest state, when it changed.
    pub fn progress_to_report(&self, key: &str, token: &FencingToken) -> Option<String> {
        let held = self.lock();
        let h = held.get(key).filter(|h| &h.token == token)?;
        let latest = serde_json::to_string(h.latest.as_ref()?).ok()?;
        (h.reported.as_ref() != Some(&latest)).then_some(latest)
    }

    /// A renewal of `key` under `token`, sent at `sent` with `progress`, was committed; the
    /// reply carries the job's recorded progress (the previous owner's, on a takeover).
    pub fn renewed(
        &self,
        key: &str,
        token: &FencingToken,
        sent: Instant,
        progress: Option<String>,
        recorded: &str,
    ) {
        let until = sent + self.lease.saturating_sub(self.margin);
        let mut held = self.lock();
        match held.get_mut(key).filter(|h| &h.token == token) {
            Some(h) => {
                h.until = h.until.max(until);
                if progress.is_some() {
                    h.reported = progress;
                }
            }
            None => {
                let handed_over = serde_json::from_str(recorded).ok();
                tracing::info!(group = %key, %token, restore = handed_over.is_some(), "took over rule group");
                held.insert(
                    key.to_string(),
                    Holding {
                        token: token.clone(),
                        until,
                        handed_over,
                        restore_pending: true,
                        latest: None,
                        reported: Some(recorded.to_string()),
                    },
                );
            }
        }
    }

    /// The leader refused a renewal of `key`: stop evaluating it at once.
    pub fn lost(&self, key: &str) {
        if self.lock().remove(key).is_some() {
            tracing::info!(group = %key, "rule group lost");
        }
    }

    /// [`GroupGate::admit`] at `now`.
    pub fn admit_at(&self, key: &str, now: Instant) -> Option<bool> {
        let mut held = self.lock();
        let h = held.get_mut(key)?;
        if now >= h.until {
            return None;
        }
        Some(std::mem::take(&mut h.restore_pending))
    }

    /// The keys held now (for status and logs).
    pub fn held_keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

impl GroupGate for Holdings {
    fn admit(&self, key: &str) -> Option<bool> {
        self.admit_at(key, Instant::now())
    }
}

impl ForStateStore for Holdings {
    fn load(&self, key: &str) -> Option<GroupForState> {
        self.lock().get(key).and_then(|h| h.handed_over.clone())
    }

    fn save(&self, key: &str, state: GroupForState) {
        if let Some(h) = self.lock().get_mut(key) {
            h.latest = Some(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::for_state::SavedAlert;
    use super::*;

    fn token(attempt: u64) -> FencingToken {
        FencingToken {
            term: 1,
            job_id: "rule-group/f;g".into(),
            attempt,
        }
    }

    fn state(at: i64) -> GroupForState {
        GroupForState {
            evaluated_at_ms: at,
            alerts: vec![SavedAlert {
                labels: [("alertname".to_string(), "A".to_string())].into(),
                active_at_ms: 1,
            }],
        }
    }

    #[test]
    fn evaluates_only_until_margin_before_the_lease_from_the_send_time() {
        let h = Holdings::new(Duration::from_secs(4), Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(h.admit_at("f;g", t0), None, "not held before a renewal");
        h.renewed("f;g", &token(1), t0, None, "");
        assert_eq!(
            h.admit_at("f;g", t0),
            Some(true),
            "first iteration restores"
        );
        assert_eq!(
            h.admit_at("f;g", t0 + Duration::from_millis(2999)),
            Some(false)
        );
        assert_eq!(h.admit_at("f;g", t0 + Duration::from_secs(3)), None);
        // A renewal sent later extends it; an older one never shortens it.
        h.renewed("f;g", &token(1), t0 + Duration::from_secs(2), None, "");
        h.renewed("f;g", &token(1), t0, None, "");
        assert_eq!(h.admit_at("f;g", t0 + Duration::from_secs(4)), Some(false));
        h.lost("f;g");
        assert_eq!(h.admit_at("f;g", t0), None);
    }

    #[test]
    fn state_travels_through_progress_to_the_next_owner() {
        let old = Holdings::new(Duration::from_secs(4), Duration::from_secs(1));
        let t0 = Instant::now();
        old.renewed("f;g", &token(1), t0, None, "");
        assert_eq!(old.load("f;g"), None);
        old.save("f;g", state(5));
        let p = old
            .progress_to_report("f;g", &token(1))
            .expect("changed state is sent");
        old.renewed("f;g", &token(1), t0, Some(p.clone()), &p);
        assert_eq!(old.progress_to_report("f;g", &token(1)), None, "sent once");
        let new = Holdings::new(Duration::from_secs(4), Duration::from_secs(1));
        new.renewed("f;g", &token(2), t0, None, &p);
        assert_eq!(new.load("f;g"), Some(state(5)));
        assert_eq!(new.admit_at("f;g", t0), Some(true));
    }

    #[test]
    fn a_token_no_longer_assigned_stops_evaluation() {
        let h = Holdings::new(Duration::from_secs(4), Duration::from_secs(1));
        let t0 = Instant::now();
        h.renewed("f;g", &token(1), t0, None, "");
        h.retain(&BTreeMap::from([("f;g".to_string(), token(2))]));
        assert_eq!(h.admit_at("f;g", t0), None);
        assert!(h.held_keys().is_empty());
    }
}
