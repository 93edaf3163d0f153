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

/// A node's commit index and applied index never decrease, within one process and across
/// SIGKILL and restart (the node keeps its committed index and applied state in sled).
/// Observations: `commit` with `{"commit": c, "applied": a}`; restarts are the nemesis' `kill`s.
#[derive(Debug, Clone, Default)]
pub struct CommitNeverRegresses;

impl Checker for CommitNeverRegresses {
    fn name(&self) -> &str {
        "commit and applied index never go backwards on a node (across restarts too)"
    }

    fn check(&self, history: &History) -> CheckResult {
        // node -> (highest commit, highest applied, when, restarted since)
        let mut last: BTreeMap<NodeId, (u64, u64, f64, bool)> = BTreeMap::new();
        let mut details = Vec::new();
        let (mut observations, mut restarts) = (0usize, 0usize);
        for op in history.ops() {
            if op.actor == Actor::Nemesis && op.kind == OpKind::Info && op.f == "kill" {
                for n in killed(&op.value) {
                    if let Some(e) = last.get_mut(&n) {
                        e.3 = true;
                        restarts += 1;
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
            let at = op.time_ns as f64 / 1e9;
            let entry = last.entry(node).or_insert((commit, applied, at, false));
            let (max_c, max_a, when, restarted) = *entry;
            let across = if restarted { " (across a restart)" } else { "" };
            if commit < max_c {
                details.push(format!(
                    "{node}: commit index {commit} at {at:.3}s after {max_c} at {when:.3}s{across}"
                ));
            }
            if applied < max_a {
                details.push(format!(
                    "{node}: applied index {applied} at {at:.3}s after {max_a} at {when:.3}s{across}"
                ));
            }
            if commit >= max_c && applied >= max_a {
                *entry = (commit, applied, at, false);
            }
        }
        let outcome = match (details.is_empty(), observations) {
            (false, _) => Outcome::Invalid,
            (true, 0) => Outcome::Unknown,
            (true, _) => Outcome::Valid,
        };
        let summary = format!(
            "{observations} observations of {} nodes, {restarts} restarts",
            last.len()
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

    #[test]
    fn commit_going_back_after_a_restart_is_invalid() {
        let h = History::new();
        h.observe(NodeId(1), "commit", json!({"commit": 10, "applied": 10}));
        h.record(
            Actor::Nemesis,
            OpKind::Info,
            "kill",
            json!({"fault": "kill", "nodes": [1]}),
            None,
        );
        h.observe(NodeId(1), "commit", json!({"commit": 12, "applied": 12}));
        assert_eq!(CommitNeverRegresses.check(&h).outcome, Outcome::Valid);
        h.record(
            Actor::Nemesis,
            OpKind::Info,
            "kill",
            json!({"fault": "kill", "nodes": [1]}),
            None,
        );
        h.observe(NodeId(1), "commit", json!({"commit": 9, "applied": 12}));
        let r = CommitNeverRegresses.check(&h);
        assert_eq!(r.outcome, Outcome::Invalid);
        assert!(r.details[0].contains("across a restart"), "{:?}", r.details);
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
