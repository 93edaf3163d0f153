//! Tick phases: when in its tick cycle each simulated node starts.
//!
//! openraft 0.9 draws one election timeout per `Raft` instance (not per election) and checks it
//! only on its tick, which runs every 1.5 heartbeats from the instant the instance starts. With
//! the default timing (250 ms heartbeat, 1-2 s election timeout) a 375 ms tick leaves only four
//! effective timeouts (3 to 6 ticks). On tokio's paused clock every timer fires exactly on its
//! millisecond, so two nodes started at the same virtual instant tick at the same instants for
//! ever; if their timeouts also round to the same number of ticks, they campaign at the same
//! instant every round, each votes for itself before the other's request arrives (1 ms away on
//! a healthy network), and no one ever wins: a livelock no real cluster sees, because real
//! processes never start, or stay, within a network round trip of each other's tick. (It is what
//! left removals unfinished after healing: the heal step restarted every crashed node at one
//! instant, and the removal waited for a leader that never came.) So the simulation gives every
//! node incarnation a tick phase of its own, at least [`MIN_GAP_MS`] from every running node's.

use std::time::Duration;

use raft::Timeouts;
use tokio::time::Instant;

/// The least distance between two running nodes' tick phases: well above the healthy network's
/// one-way delay (1 ms), so that the earlier candidate's vote request arrives first.
pub const MIN_GAP_MS: u64 = 5;

/// openraft's tick interval for these timeouts, in milliseconds (1.5 heartbeats, as in
/// openraft 0.9's `Raft::new`).
pub fn tick_ms(timeouts: &Timeouts) -> u64 {
    let hb = u64::try_from(timeouts.heartbeat.as_millis()).unwrap_or(u64::MAX);
    (hb.saturating_mul(3) / 2).max(1)
}

/// The phase (ms into the tick cycle, counted from `origin`) of a node started at `at`.
pub fn phase_at(origin: Instant, at: Instant, tick_ms: u64) -> u64 {
    let ms = u64::try_from(at.saturating_duration_since(origin).as_millis()).unwrap_or(0);
    ms % tick_ms.max(1)
}

/// How long to wait from phase `now` so that a node started then ticks at least
/// [`MIN_GAP_MS`] away from every phase in `taken`. Returns zero when `now` is already free; in
/// a cycle too full to leave such a gap (dozens of nodes at the default timing) it waits for
/// the phase farthest from the others.
pub fn wait_for_free_phase(now: u64, taken: &[u64], tick_ms: u64) -> Duration {
    let tick = tick_ms.max(1);
    // Circular distance from `p` to the nearest taken phase.
    let clearance = |p: u64| {
        taken
            .iter()
            .map(|t| {
                let d = (p + tick - t % tick) % tick;
                d.min(tick - d)
            })
            .min()
            .unwrap_or(tick)
    };
    let mut best = (0, clearance(now % tick));
    for wait in 0..tick {
        let c = clearance((now + wait) % tick);
        if c >= MIN_GAP_MS {
            return Duration::from_millis(wait);
        }
        if c > best.1 {
            best = (wait, c);
        }
    }
    Duration::from_millis(best.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_phase_needs_no_wait() {
        assert_eq!(wait_for_free_phase(100, &[], 375), Duration::ZERO);
        assert_eq!(wait_for_free_phase(100, &[200, 300], 375), Duration::ZERO);
    }

    #[test]
    fn a_taken_phase_waits_until_the_gap_is_kept() {
        // 100 is taken: 101..=104 are too close, 105 is the first free phase.
        assert_eq!(
            wait_for_free_phase(100, &[100], 375),
            Duration::from_millis(5)
        );
        assert_eq!(
            wait_for_free_phase(98, &[100], 375),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn phases_wrap_around_the_tick_cycle() {
        // 373 is 4 ms from phase 2 across the wrap: wait until 7.
        assert_eq!(
            wait_for_free_phase(373, &[2], 375),
            Duration::from_millis(9)
        );
        let t = Instant::now();
        assert_eq!(phase_at(t, t + Duration::from_millis(380), 375), 5);
    }

    #[test]
    fn a_full_cycle_gets_the_most_distant_phase() {
        let taken: Vec<u64> = (0..10).map(|i| i * 2).collect();
        // Phases 0..=18 (step 2) in a 20 ms cycle: no 5 ms gap exists; odd phases are 1 away.
        let w = wait_for_free_phase(0, &taken, 20);
        assert_eq!(w, Duration::from_millis(1));
    }

    #[test]
    fn the_tick_is_one_and_a_half_heartbeats() {
        assert_eq!(tick_ms(&Timeouts::default()), 375);
    }
}
