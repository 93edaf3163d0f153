//! Raft invariants over the observations of [`super::observer`], beside the generic checkers
//! (`OneLeaderPerTerm`, `ConvergesAfterHeal`, `AckedAddsSurvive`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::checker::{CheckResult, Checker, Outcome};
use crate::history::{Actor, History, OpKind};
use crate::net::NodeId;

/// A checker shown under another name (e.g. one leader per term over claims, then over views).
pub struct Renamed<C> {
    /// The name shown.
    pub name: String,
    /// The checker.
    pub inner: C,
}

impl<C: Checker> Checker for Renamed<C> {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, history: &History) -> CheckResult {
        CheckResult {
            name: self.name.clone(),
            ..self.inner.check(history)
        }
    }
}

/// A node's commit index and applied index never decrease while its process runs, and a node
/// restarted after SIGKILL gets back to at least the commit index it had reported before the
/// kill (nothing it saw committed is lost).
///
/// Why not "never lower across a restart": Raft's commit index is volatile state, and openraft
/// makes persisting it optional. `raft` writes the committed index and the applied state to sled
/// without a flush of their own (only log appends and votes are flushed), so a SIGKILL loses up
/// to sled's flush interval (500 ms) of them; the restarted node re-applies those entries from
/// its durable log. The summary shows the largest such rollback seen (a restarted node briefly
/// serves that much older a registry). [`Restarts::Strict`] forbids it instead.
///
/// Observations: `commit` with `{"commit": c, "applied": a}`; restarts are the nemesis' `kill`s.
#[derive(Debug, Clone, Default)]
pub struct CommitNeverRegresses {
    /// What a restart may do.
    pub restarts: Restarts,
}

/// How [`CommitNeverRegresses`] treats a SIGKILL and restart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Restarts {
    /// The restarted node may start lower but must reach its pre-kill commit index again.
    #[default]
    MustRecover,
    /// Any decrease, even across a restart, is a violation.
    Strict,
}

/// One node's progress as [`CommitNeverRegresses`] follows it.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Highest (commit, applied) of this incarnation, and when the commit was seen.
    max: Option<(u64, u64, f64)>,
    /// Highest commit before the last kill, not yet reached again, and when it was killed.
    owed: Option<(u64, f64)>,
    /// Highest (commit, applied) ever, for strict mode.
    ever: (u64, u64),
}

impl Checker for CommitNeverRegresses {
    fn name(&self) -> &str {
        match self.restarts {
            Restarts::MustRecover => {
                "commit and applied index never go backwards on a running node; a restarted node regains its commit index"
            }
            Restarts::Strict => {
                "commit and applied index never go backwards on a node (across restarts too)"
            }
        }
    }

    fn check(&self, history: &History) -> CheckResult {
        let mut nodes: BTreeMap<NodeId, Progress> = BTreeMap::new();
        let mut details = Vec::new();
        let (mut observations, mut restarts) = (0usize, 0usize);
        let (mut rollback_c, mut rollback_a) = (0u64, 0u64);
        for op in history.ops() {
            let at = op.time_ns as f64 / 1e9;
            if op.actor == Actor::Nemesis && op.kind == OpKind::Info && op.f == "kill" {
                for n in killed(&op.value) {
                    let p = nodes.entry(n).or_default();
                    if let Some((c, _, _)) = p.max.take() {
                        restarts += 1;
                        let owed = p.owed.map_or(c, |(o, _)| o.max(c));
                        p.owed = Some((owed, at));
                    }
                }
                continue;
            }
            let (Some(node), true) = (op.node, op.kind == OpKind::Ok && op.f == "commit") else {
                continue;
            };
            let Some(commit) = op.value["commit"].as_u64() else {
                continue;
            };
            let applied = op.value["applied"].as_u64().unwrap_or(0);
            observations += 1;
            let p = nodes.entry(node).or_default();
            match p.max {
                None => {
                    // First observation of an incarnation.
                    let (ec, ea) = p.ever;
                    rollback_c = rollback_c.max(ec.saturating_sub(commit));
                    rollback_a = rollback_a.max(ea.saturating_sub(applied));
                    if self.restarts == Restarts::Strict && (commit < ec || applied < ea) {
                        details.push(format!(
                            "{node}: restarted at commit {commit} applied {applied} after \
                             {ec}/{ea} before its kill ({at:.3}s)"
                        ));
                    }
                    p.max = Some((commit, applied, at));
                }
                Some((mc, ma, when)) => {
                    if commit < mc {
                        details.push(format!(
                            "{node}: commit index {commit} at {at:.3}s after {mc} at {when:.3}s"
                        ));
                    }
                    if applied < ma {
                        details.push(format!(
                            "{node}: applied index {applied} at {at:.3}s after {ma} at {when:.3}s"
                        ));
                    }
                    if commit > mc {
                        p.max = Some((commit, applied.max(ma), at));
                    } else if applied > ma {
                        p.max = Some((mc, applied, when));
                    }
                }
            }
            p.ever = (p.ever.0.max(commit), p.ever.1.max(applied));
            if p.owed.is_some_and(|(o, _)| commit >= o) {
                p.owed = None;
            }
        }
        for (node, p) in &nodes {
            if let Some((owed, at)) = p.owed {
                details.push(format!(
                    "{node}: killed at {at:.3}s with commit index {owed} and never reported it \
                     again (highest since: {})",
                    p.max
                        .map_or("no answer".to_string(), |(c, _, _)| c.to_string())
                ));
            }
        }
        let outcome = match (details.is_empty(), observations) {
            (false, _) => Outcome::Invalid,
            (true, 0) => Outcome::Unknown,
            (true, _) => Outcome::Valid,
        };
        let summary = format!(
            "{observations} observations of {} nodes, {restarts} restarts, largest rollback \
             across a restart: commit {rollback_c}, applied {rollback_a}",
            nodes.len()
        );
        CheckResult {
            details,
            ..CheckResult::new(self.name(), outcome, summary)
        }
    }
}

fn killed(value: &Value) -> Vec<NodeId> {
    value["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_u64().and_then(|n| u32::try_from(n).ok()).map(NodeId))
                .collect()
        })
        .unwrap_or_default()
}

/// Every node's member list agrees with the cluster's committed one. In a run without
/// membership changes (kills, pauses and partitions only), the voters and the replicated member
/// table that every node agreed on when the cluster settled must be what every node reports
/// throughout: a node that shows other voters, a learner, or another member table (say, a
/// restarted node that bootstrapped a cluster of its own) contradicts the committed state.
#[derive(Debug, Clone)]
pub struct MembershipStable {
    /// The committed voters (Raft ids, sorted), as agreed when the cluster settled.
    pub voters: Vec<u64>,
}

impl Checker for MembershipStable {
    fn name(&self) -> &str {
        "no node reports members that contradict the committed membership"
    }

    fn check(&self, history: &History) -> CheckResult {
        let want = serde_json::json!(self.voters);
        let mut details = Vec::new();
        let mut observations = 0;
        for op in history.ops() {
            if op.kind != OpKind::Ok || op.f != "members" {
                continue;
            }
            observations += 1;
            let v = &op.value;
            let empty = v["learners"].as_array().is_some_and(Vec::is_empty);
            if v["voters"] != want || v["table"] != want || !empty {
                details.push(format!(
                    "{} reported voters {} learners {} member table {} at {:.3}s (entry #{})",
                    op.node.map(|n| n.to_string()).unwrap_or_default(),
                    v["voters"],
                    v["learners"],
                    v["table"],
                    op.time_ns as f64 / 1e9,
                    op.index
                ));
            }
        }
        let outcome = match (details.is_empty(), observations) {
            (false, _) => Outcome::Invalid,
            (true, 0) => Outcome::Unknown,
            (true, _) => Outcome::Valid,
        };
        let summary = format!(
            "{observations} observations, {} contradicting, committed voters {want}",
            details.len()
        );
        CheckResult {
            details,
            ..CheckResult::new(self.name(), outcome, summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kill(h: &History, node: u32) {
        let v = json!({"fault": "kill", "nodes": [node]});
        h.record(Actor::Nemesis, OpKind::Info, "kill", v, None);
    }

    #[test]
    fn commit_going_back_on_a_running_node_is_invalid() {
        let h = History::new();
        h.observe(NodeId(1), "commit", json!({"commit": 10, "applied": 10}));
        h.observe(NodeId(1), "commit", json!({"commit": 9, "applied": 10}));
        let r = CommitNeverRegresses::default().check(&h);
        assert_eq!(r.outcome, Outcome::Invalid);
        assert!(
            r.details[0].starts_with("node-1: commit index 9"),
            "{:?}",
            r.details
        );
    }

    #[test]
    fn a_restarted_node_may_restart_lower_but_must_catch_up() {
        let h = History::new();
        h.observe(NodeId(1), "commit", json!({"commit": 10, "applied": 10}));
        kill(&h, 1);
        h.observe(NodeId(1), "commit", json!({"commit": 9, "applied": 9}));
        let lenient = CommitNeverRegresses::default();
        let r = lenient.check(&h);
        assert_eq!(r.outcome, Outcome::Invalid, "never caught up: {r:?}");
        assert!(
            r.details[0].contains("never reported it again"),
            "{:?}",
            r.details
        );
        h.observe(NodeId(1), "commit", json!({"commit": 11, "applied": 11}));
        let r = lenient.check(&h);
        assert_eq!(r.outcome, Outcome::Valid, "{r:?}");
        assert!(
            r.summary
                .contains("rollback across a restart: commit 1, applied 1"),
            "{}",
            r.summary
        );
        let strict = CommitNeverRegresses {
            restarts: Restarts::Strict,
        };
        assert_eq!(strict.check(&h).outcome, Outcome::Invalid);
    }

    #[test]
    fn a_node_with_other_voters_contradicts_the_committed_membership() {
        let c = MembershipStable {
            voters: vec![1, 2, 3],
        };
        let h = History::new();
        let ok = json!({"voters": [1, 2, 3], "learners": [], "table": [1, 2, 3]});
        h.observe(NodeId(1), "members", ok);
        assert_eq!(c.check(&h).outcome, Outcome::Valid);
        let alone = json!({"voters": [2], "learners": [], "table": [2]});
        h.observe(NodeId(2), "members", alone);
        let r = c.check(&h);
        assert_eq!(r.outcome, Outcome::Invalid);
        assert!(
            r.details[0].starts_with("node-2 reported voters [2]"),
            "{:?}",
            r.details
        );
    }
}
