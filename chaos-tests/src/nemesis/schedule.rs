//! A seeded schedule of faults: fault, wait, heal, wait, ... for a time limit, every step
//! recorded in the history. The same seed and cluster size give the same faults.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::error::Result;
use crate::history::History;
use crate::net::NodeId;
use crate::rng::Rng;

use super::{apply_recorded, heal_recorded, Fault, Grudge};

/// The families of faults a schedule draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Isolate one node, majority/minority, bridge, or one-way (random among these).
    Partition,
    /// Random packet loss on all nodes.
    Loss,
    /// SIGKILL a minority.
    Kill,
    /// SIGSTOP a minority.
    Pause,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Kill,
        FaultKind::Pause,
    ];
}

/// A fault schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Seed of the RNG that picks faults and victims.
    pub seed: u64,
    /// How long each fault lasts, and each healthy gap after it.
    pub interval: Duration,
    /// What faults to draw from.
    pub kinds: Vec<FaultKind>,
}

impl Schedule {
    /// All kinds of faults, 10 s each (openraft's and Jepsen's usual interval).
    pub fn new(seed: u64) -> Schedule {
        Schedule {
            seed,
            interval: Duration::from_secs(10),
            kinds: FaultKind::ALL.to_vec(),
        }
    }

    /// Draws the next fault for a cluster of `nodes`.
    pub fn next_fault(&self, rng: &mut Rng, nodes: &[NodeId]) -> Option<Fault> {
        let kind = *rng.pick(&self.kinds)?;
        let mut shuffled = nodes.to_vec();
        rng.shuffle(&mut shuffled);
        let minority = 1 + rng.below(nodes.len().saturating_sub(1) / 2);
        let victims: Vec<NodeId> = shuffled.iter().take(minority).copied().collect();
        Some(match kind {
            FaultKind::Partition => {
                let grudge = match rng.below(4) {
                    0 => Grudge::isolate(*shuffled.first()?, nodes),
                    1 => Grudge::majority_minority(nodes, rng),
                    2 => Grudge::bridge(nodes, rng),
                    _ => Grudge::one_way(&victims, &shuffled[victims.len()..]),
                };
                Fault::Partition { grudge }
            }
            FaultKind::Loss => Fault::Loss {
                nodes: nodes.to_vec(),
                probability: 0.1 + 0.4 * rng.unit(),
            },
            FaultKind::Kill => Fault::Kill { nodes: victims },
            FaultKind::Pause => Fault::Pause { nodes: victims },
        })
    }

    /// Runs fault/heal cycles until `time_limit` passes or `stop` is set, then heals
    /// everything. Returns the faults applied, in order. Every step is in `history`.
    pub fn run(
        &self,
        cluster: &mut Cluster,
        history: &History,
        time_limit: Duration,
        stop: &AtomicBool,
    ) -> Result<Vec<Fault>> {
        let mut rng = Rng::new(self.seed);
        let end = Instant::now() + time_limit;
        let mut applied = Vec::new();
        let result = (|| {
            while !pause_until(end, self.interval, stop) {
                let Some(fault) = self.next_fault(&mut rng, &cluster.ids()) else {
                    break;
                };
                tracing::info!(seed = self.seed, ?fault, "nemesis");
                apply_recorded(cluster, history, &fault)?;
                applied.push(fault);
                let stopped = pause_until(end, self.interval, stop);
                heal_recorded(cluster, history)?;
                if stopped {
                    break;
                }
            }
            Ok(())
        })();
        // Always leave the cluster healthy, even after an error.
        let healed = heal_recorded(cluster, history);
        result.and(healed).map(|()| applied)
    }
}

/// Waits `interval` (cut short at `end` or when `stop` is set); true when the run is over.
fn pause_until(end: Instant, interval: Duration, stop: &AtomicBool) -> bool {
    let until = (Instant::now() + interval).min(end);
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(
            Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
        );
    }
    stop.load(Ordering::Relaxed) || Instant::now() >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let nodes: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let s = Schedule::new(9);
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..20)
                .filter_map(|_| s.next_fault(&mut rng, &nodes))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    #[test]
    fn kills_and_pauses_hit_a_minority() {
        let nodes: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let s = Schedule {
            kinds: vec![FaultKind::Kill, FaultKind::Pause],
            ..Schedule::new(3)
        };
        let mut rng = Rng::new(3);
        for _ in 0..50 {
            match s.next_fault(&mut rng, &nodes) {
                Some(Fault::Kill { nodes: v }) | Some(Fault::Pause { nodes: v }) => {
                    assert!((1..=2).contains(&v.len()), "{v:?}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
