//! Store liveness as the leader judges it: by its own monotonic clock on receipt of heartbeats,
//! never by comparing wall-clock stamps.
//!
//! A registry entry's `last_heartbeat_ms` is stamped with the wall clock of whichever node led
//! when the heartbeat committed. Comparing it with the current leader's wall clock judges a
//! store by two different clocks: a leader whose clock jumped ahead (an NTP step, a VM
//! resumed) by more than the expiry saw every store as dead and expired the whole registry
//! (found by the tier-1 clock nemesis), and one whose clock was behind stamped heartbeats that
//! the next leader found too old. Instead the leader notes, on its monotonic clock, when it
//! sees each entry's stamp change (a heartbeat was committed), counting every entry as fresh
//! when it becomes leader (a grace of one expiry period per election, as Consul and Nomad
//! give), and removes an entry only when it saw no heartbeat for the whole expiry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use raft::ClusterState;

/// What the leader saw of each store, and since when it leads.
#[derive(Debug, Default)]
pub struct Liveness {
    /// The term the observations belong to.
    term: Option<u64>,
    /// Address -> (the stamp last seen, when the leader saw it change).
    seen: BTreeMap<String, (i64, Instant)>,
}

impl Liveness {
    /// Records `state` as seen at `now` by the leader of `term`; returns the stores without a
    /// heartbeat for longer than `max_age`, by this leader's clock.
    pub fn observe(
        &mut self,
        term: u64,
        state: &ClusterState,
        now: Instant,
        max_age: Duration,
    ) -> Vec<String> {
        if self.term != Some(term) {
            self.term = Some(term);
            self.seen.clear();
        }
        self.seen.retain(|a, _| state.stores.contains_key(a));
        let mut dead = Vec::new();
        for (address, entry) in &state.stores {
            let stamp = entry.last_heartbeat_ms;
            match self.seen.get_mut(address) {
                Some((last, at)) if *last == stamp => {
                    if now.saturating_duration_since(*at) > max_age {
                        dead.push(address.clone());
                    }
                }
                Some((last, at)) => {
                    *last = stamp;
                    *at = now;
                }
                None => {
                    self.seen.insert(address.clone(), (stamp, now));
                }
            }
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{StoreEntry, StoreInfo};

    fn state(stamps: &[(&str, i64)]) -> ClusterState {
        let mut s = ClusterState::default();
        for (a, t) in stamps {
            let info = StoreInfo {
                address: (*a).to_string(),
                node_id: None,
                label_sets: Vec::new(),
                min_time_ms: 0,
                max_time_ms: 1,
            };
            s.stores.insert(
                (*a).to_string(),
                StoreEntry {
                    info,
                    registered_at_ms: 0,
                    last_heartbeat_ms: *t,
                },
            );
        }
        s
    }

    const AGE: Duration = Duration::from_secs(30);

    #[test]
    fn wall_clock_stamps_far_in_the_past_do_not_make_a_store_dead() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        // Stamped by a leader whose clock was an hour behind: only receipt time counts.
        let s = state(&[("a:1", 0), ("b:1", 0)]);
        assert!(l.observe(1, &s, t0, AGE).is_empty());
        assert!(l
            .observe(1, &s, t0 + Duration::from_secs(29), AGE)
            .is_empty());
    }

    #[test]
    fn a_store_whose_stamp_stops_changing_dies_after_the_expiry() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        l.observe(1, &state(&[("a:1", 10), ("b:1", 10)]), t0, AGE);
        let t1 = t0 + Duration::from_secs(20);
        l.observe(1, &state(&[("a:1", 10), ("b:1", -5)]), t1, AGE);
        let t2 = t0 + Duration::from_secs(31);
        let dead = l.observe(1, &state(&[("a:1", 10), ("b:1", -5)]), t2, AGE);
        assert_eq!(
            dead,
            vec!["a:1".to_string()],
            "b heartbeated (even backwards) at t1"
        );
    }

    #[test]
    fn a_new_term_starts_a_fresh_grace_period() {
        let mut l = Liveness::default();
        let t0 = Instant::now();
        let s = state(&[("a:1", 10)]);
        l.observe(1, &s, t0, AGE);
        let later = t0 + Duration::from_secs(60);
        assert!(l.observe(2, &s, later, AGE).is_empty());
        let dead = l.observe(2, &s, later + Duration::from_secs(31), AGE);
        assert_eq!(dead, vec!["a:1".to_string()]);
    }
}
