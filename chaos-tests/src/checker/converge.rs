//! Liveness after healing: once the nemesis' last `heal` completed, every node's observed
//! state (e.g. its member list, or its applied registry) must become equal within a deadline.
//! Observations are `ok` entries with `f` = the given name, `node` set, and the state as value.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{CheckResult, Checker, Outcome};
use crate::history::{Actor, History, OpKind};
use crate::net::NodeId;

/// All observed nodes agree within `within` of the last heal.
#[derive(Debug, Clone)]
pub struct ConvergesAfterHeal {
    /// The observation's `f`.
    pub f: String,
    /// The deadline after the last heal (the issue asks for 10 s).
    pub within: Duration,
}

impl Checker for ConvergesAfterHeal {
    fn name(&self) -> &str {
        "converges after healing"
    }

    fn check(&self, history: &History) -> CheckResult {
        let ops = history.ops();
        let healed_at = ops
            .iter()
            .filter(|o| o.actor == Actor::Nemesis && o.f == "heal" && o.kind == OpKind::Info)
            .map(|o| o.time_ns)
            .max()
            .unwrap_or(0);
        let nodes: std::collections::BTreeSet<NodeId> = ops
            .iter()
            .filter(|o| o.f == self.f && o.kind == OpKind::Ok)
            .filter_map(|o| o.node)
            .collect();
        let mut latest: BTreeMap<NodeId, &Value> = BTreeMap::new();
        for op in ops
            .iter()
            .filter(|o| o.f == self.f && o.kind == OpKind::Ok && o.time_ns >= healed_at)
        {
            let Some(node) = op.node else { continue };
            latest.insert(node, &op.value);
            let mut values = latest.values();
            let first = values.next();
            if latest.len() == nodes.len() && values.all(|v| Some(v) == first) {
                let took = Duration::from_nanos(op.time_ns - healed_at);
                let outcome = if took <= self.within {
                    Outcome::Valid
                } else {
                    Outcome::Invalid
                };
                let summary = format!(
                    "{} nodes agreed {:.3}s after the last heal",
                    nodes.len(),
                    took.as_secs_f64()
                );
                return CheckResult::new(self.name(), outcome, summary);
            }
        }
        let mut r = CheckResult::new(
            self.name(),
            Outcome::Invalid,
            format!("{} nodes never agreed", nodes.len()),
        );
        r.details = latest
            .iter()
            .map(|(n, v)| format!("{n} last observed {v}"))
            .collect();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checker() -> ConvergesAfterHeal {
        ConvergesAfterHeal {
            f: "members".into(),
            within: Duration::from_secs(10),
        }
    }

    #[test]
    fn agreement_after_the_heal_is_valid_and_disagreement_is_not() {
        let h = History::new();
        h.observe(NodeId(1), "members", json!([1, 2]));
        h.record(Actor::Nemesis, OpKind::Info, "heal", json!("healed"), None);
        h.observe(NodeId(1), "members", json!([1, 2, 3]));
        h.observe(NodeId(2), "members", json!([1, 2]));
        assert_eq!(checker().check(&h).outcome, Outcome::Invalid);
        h.observe(NodeId(2), "members", json!([1, 2, 3]));
        assert_eq!(checker().check(&h).outcome, Outcome::Valid);
    }
}
