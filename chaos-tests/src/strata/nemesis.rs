//! The tier-1 nemesis for a Strata cluster: a seeded mix of the faults Raft must survive,
//! aimed at the current leader where that matters. Clock faults skew wall clocks only (see
//! [`crate::nemesis::clock`]): Raft must not care, and what uses wall time must not break. Each step applies one fault, holds it, heals
//! everything (restarting killed nodes, resuming paused ones) and lets the cluster recover
//! before the next. Every round draws each kind once in a seeded order, so even a short run
//! sees them all. The same seed gives the same kinds and choices; which node is the leader (and
//! so the target of "leader" faults) depends on the run and is in the history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::observer::LeaderHint;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::history::History;
use crate::nemesis::{apply_recorded, heal_recorded, Fault, Grudge};
use crate::net::NodeId;
use crate::rng::Rng;

/// A family of faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrataFault {
    /// Cut the leader (or, when none is known, a random node) off from every peer.
    IsolateLeader,
    /// A random majority and minority that cannot reach each other.
    MajorityMinority,
    /// SIGKILL a minority (the leader half the time); healing restarts it on its data.
    KillRestart,
    /// SIGSTOP a minority (the leader half the time); healing resumes it.
    PauseResume,
    /// Two halves joined by one node that sees both (Jepsen's bridge).
    Bridge,
    /// A minority (the leader half the time) stops hearing from the rest; they still hear it.
    OneWay,
    /// Every node drops 10-50% of its peers' packets.
    Loss,
    /// A minority's wall clocks (the leader's half the time) jump by 128 ms to 4.4 min, forward
    /// or back, each by its own offset.
    ClockBump,
    /// A minority's wall clocks (the leader's half the time) flip between an offset of 128 ms
    /// to 4.4 min and true time every 32-512 ms.
    ClockStrobe,
}

impl StrataFault {
    /// The kind named `name` (`isolate-leader`, `split`, `kill`, `pause`, `bridge`, `one-way`,
    /// `loss`, `clock-bump`, `clock-strobe`), both clock kinds for `clock`, the CI schedule's
    /// kinds for `core`, or every kind for `all`.
    pub fn parse(name: &str) -> Option<Vec<StrataFault>> {
        Some(match name {
            "all" => StrataFault::ALL.to_vec(),
            "core" => StrataFault::CORE.to_vec(),
            "bridge" => vec![StrataFault::Bridge],
            "one-way" => vec![StrataFault::OneWay],
            "loss" => vec![StrataFault::Loss],
            "isolate-leader" => vec![StrataFault::IsolateLeader],
            "split" => vec![StrataFault::MajorityMinority],
            "kill" => vec![StrataFault::KillRestart],
            "pause" => vec![StrataFault::PauseResume],
            "clock-bump" => vec![StrataFault::ClockBump],
            "clock-strobe" => vec![StrataFault::ClockStrobe],
            "clock" => vec![StrataFault::ClockBump, StrataFault::ClockStrobe],
            _ => return None,
        })
    }

    /// The kinds of the short CI schedule.
    pub const CORE: [StrataFault; 6] = [
        StrataFault::IsolateLeader,
        StrataFault::MajorityMinority,
        StrataFault::KillRestart,
        StrataFault::PauseResume,
        StrataFault::ClockBump,
        StrataFault::ClockStrobe,
    ];

    /// Every kind.
    pub const ALL: [StrataFault; 9] = [
        StrataFault::IsolateLeader,
        StrataFault::MajorityMinority,
        StrataFault::KillRestart,
        StrataFault::PauseResume,
        StrataFault::Bridge,
        StrataFault::OneWay,
        StrataFault::Loss,
        StrataFault::ClockBump,
        StrataFault::ClockStrobe,
    ];

    /// Whether the kind needs nodes running under libfaketime.
    pub fn needs_fake_clock(self) -> bool {
        matches!(self, StrataFault::ClockBump | StrataFault::ClockStrobe)
    }
}

/// A seeded fault schedule.
#[derive(Debug, Clone)]
pub struct StrataSchedule {
    /// Seed of every choice.
    pub seed: u64,
    /// How long each fault is held.
    pub fault_for: Duration,
    /// How long the healed cluster runs before the next fault.
    pub heal_for: Duration,
    /// The kinds drawn from (each once per round, in a seeded order).
    pub kinds: Vec<StrataFault>,
}

impl StrataSchedule {
    /// The core kinds, faults of 7 s with 4 s of recovery (elections take 1-2 s; the six core
    /// kinds all start within 60 s).
    pub fn new(seed: u64) -> StrataSchedule {
        StrataSchedule {
            seed,
            fault_for: Duration::from_secs(7),
            heal_for: Duration::from_secs(4),
            kinds: StrataFault::CORE.to_vec(),
        }
    }

    /// Runs fault/heal steps until `time_limit` passes or `stop` is set, then heals. Returns
    /// the faults applied, in order.
    pub fn run(
        &self,
        cluster: &mut Cluster,
        history: &History,
        hint: &LeaderHint,
        time_limit: Duration,
        stop: &AtomicBool,
    ) -> Result<Vec<Fault>> {
        let mut rng = Rng::new(self.seed);
        let end = Instant::now() + time_limit;
        let mut round: Vec<StrataFault> = Vec::new();
        let mut applied = Vec::new();
        let result = (|| {
            while !over(end, stop) {
                if round.is_empty() {
                    round = self.kinds.clone();
                    rng.shuffle(&mut round);
                }
                let Some(kind) = round.pop() else { break };
                let fault = self.draw(kind, &mut rng, &cluster.ids(), hint.leader());
                tracing::info!(seed = self.seed, ?fault, "nemesis");
                apply_recorded(cluster, history, &fault)?;
                applied.push(fault);
                hold(self.fault_for, end, stop);
                heal_recorded(cluster, history)?;
                hold(self.heal_for, end, stop);
            }
            Ok(())
        })();
        let healed = heal_recorded(cluster, history);
        result.and(healed).map(|()| applied)
    }

    /// The concrete fault of `kind` for `nodes`, aimed at `leader` where the kind says so.
    pub fn draw(
        &self,
        kind: StrataFault,
        rng: &mut Rng,
        nodes: &[NodeId],
        leader: Option<NodeId>,
    ) -> Fault {
        let mut shuffled = nodes.to_vec();
        rng.shuffle(&mut shuffled);
        let at_leader = rng.below(2) == 0;
        if let Some(l) = leader.filter(|_| at_leader) {
            shuffled.retain(|n| *n != l);
            shuffled.insert(0, l);
        }
        let minority = 1 + rng.below(nodes.len().saturating_sub(1) / 2);
        let victims: Vec<NodeId> = shuffled.iter().take(minority).copied().collect();
        match kind {
            StrataFault::IsolateLeader => {
                let target = leader.or(shuffled.first().copied());
                let grudge = target.map_or_else(Grudge::default, |t| Grudge::isolate(t, nodes));
                Fault::Partition { grudge }
            }
            StrataFault::MajorityMinority => Fault::Partition {
                grudge: Grudge::majority_minority(nodes, rng),
            },
            StrataFault::KillRestart => Fault::Kill { nodes: victims },
            StrataFault::PauseResume => Fault::Pause { nodes: victims },
            StrataFault::Bridge => Fault::Partition {
                grudge: Grudge::bridge(nodes, rng),
            },
            StrataFault::OneWay => {
                let rest: Vec<NodeId> = shuffled[victims.len()..].to_vec();
                Fault::Partition {
                    grudge: Grudge::one_way(&rest, &victims),
                }
            }
            StrataFault::Loss => Fault::Loss {
                nodes: nodes.to_vec(),
                probability: 0.1 + 0.4 * rng.unit(),
            },
            StrataFault::ClockBump => Fault::ClockBump {
                offsets: victims.iter().map(|n| (*n, skew_ms(rng))).collect(),
            },
            StrataFault::ClockStrobe => Fault::ClockStrobe {
                nodes: victims,
                delta_ms: skew_ms(rng),
                period_ms: 1 << (5 + rng.below(5)),
            },
        }
    }
}

/// A clock offset of 2^7 to 2^18 ms (128 ms to 4.4 min, log-uniform as Jepsen draws them),
/// forward or back: from below a heartbeat to far beyond an election timeout, but under the
/// tests' one-hour store expiry.
fn skew_ms(rng: &mut Rng) -> i64 {
    let magnitude = 1i64 << (7 + rng.below(12));
    if rng.below(2) == 0 {
        magnitude
    } else {
        -magnitude
    }
}

fn over(end: Instant, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed) || Instant::now() >= end
}

/// Waits `d`, cut short at `end` or on `stop`.
fn hold(d: Duration, end: Instant, stop: &AtomicBool) {
    let until = (Instant::now() + d).min(end);
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u32) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    #[test]
    fn isolate_leader_cuts_off_the_leader_named_by_the_hint() {
        let s = StrataSchedule::new(3);
        let f = s.draw(
            StrataFault::IsolateLeader,
            &mut Rng::new(1),
            &ids(5),
            Some(NodeId(4)),
        );
        assert_eq!(
            f,
            Fault::Partition {
                grudge: Grudge::isolate(NodeId(4), &ids(5))
            }
        );
    }

    #[test]
    fn same_seed_same_faults_and_kills_stay_a_minority() {
        let s = StrataSchedule::new(9);
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..20)
                .map(|i| {
                    let kind = StrataFault::ALL[i % StrataFault::ALL.len()];
                    s.draw(kind, &mut rng, &ids(5), Some(NodeId(2)))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        for f in draw(7) {
            if let Fault::Kill { nodes } | Fault::Pause { nodes } = f {
                assert!((1..=2).contains(&nodes.len()), "{nodes:?}");
            }
        }
    }

    #[test]
    fn clock_skews_stay_within_128ms_and_4_4_minutes() {
        let s = StrataSchedule::new(5);
        let mut rng = Rng::new(11);
        let mut signs = std::collections::BTreeSet::new();
        for i in 0..200 {
            let kind = [StrataFault::ClockBump, StrataFault::ClockStrobe][i % 2];
            let (skews, period) = match s.draw(kind, &mut rng, &ids(3), Some(NodeId(1))) {
                Fault::ClockBump { offsets } => {
                    assert_eq!(offsets.len(), 1, "a minority of 3 is one node");
                    (offsets.iter().map(|(_, o)| *o).collect::<Vec<_>>(), 32)
                }
                Fault::ClockStrobe {
                    nodes,
                    delta_ms,
                    period_ms,
                } => {
                    assert_eq!(nodes.len(), 1);
                    (vec![delta_ms], period_ms)
                }
                other => panic!("unexpected {other:?}"),
            };
            assert!((32..=512).contains(&period), "{period}");
            for o in skews {
                assert!((128..=262_144).contains(&o.abs()), "{o}");
                signs.insert(o.signum());
            }
        }
        assert_eq!(signs.len(), 2, "both forward and backward jumps are drawn");
    }
}
