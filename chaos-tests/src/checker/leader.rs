//! Election safety over observations: no two nodes ever claim leadership of the same term.
//! Observations are `ok` entries with `f` = `leader` and value `{"node": N, "term": T}`
//! (`node` being who claims to lead; `null` when the observed node knows no leader).

use std::collections::BTreeMap;

use super::{CheckResult, Checker, Outcome};
use crate::history::{History, OpKind};

/// At most one leader per term.
#[derive(Debug, Clone)]
pub struct OneLeaderPerTerm {
    /// The observation's `f`.
    pub f: String,
}

impl Default for OneLeaderPerTerm {
    fn default() -> Self {
        OneLeaderPerTerm { f: "leader".into() }
    }
}

impl Checker for OneLeaderPerTerm {
    fn name(&self) -> &str {
        "at most one leader per term"
    }

    fn check(&self, history: &History) -> CheckResult {
        // term -> leader -> first observation index
        let mut terms: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
        let mut observations = 0;
        for op in history.ops() {
            if op.kind != OpKind::Ok || op.f != self.f {
                continue;
            }
            let (Some(term), Some(node)) = (op.value["term"].as_u64(), op.value["node"].as_u64())
            else {
                continue;
            };
            observations += 1;
            terms
                .entry(term)
                .or_default()
                .entry(node)
                .or_insert(op.index);
        }
        let details: Vec<String> = terms
            .iter()
            .filter(|(_, leaders)| leaders.len() > 1)
            .map(|(term, leaders)| {
                let who: Vec<String> = leaders
                    .iter()
                    .map(|(n, i)| format!("node {n} (entry #{i})"))
                    .collect();
                format!(
                    "term {term} has {} leaders: {}",
                    leaders.len(),
                    who.join(", ")
                )
            })
            .collect();
        let outcome = match (details.is_empty(), observations) {
            (false, _) => Outcome::Invalid,
            (true, 0) => Outcome::Unknown,
            (true, _) => Outcome::Valid,
        };
        let summary = format!("{observations} observations over {} terms", terms.len());
        CheckResult {
            details,
            ..CheckResult::new(self.name(), outcome, summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NodeId;
    use serde_json::json;

    #[test]
    fn two_leaders_in_one_term_is_invalid() {
        let h = History::new();
        h.observe(NodeId(1), "leader", json!({"node": 1, "term": 2}));
        h.observe(NodeId(2), "leader", json!({"node": 1, "term": 2}));
        h.observe(NodeId(3), "leader", json!({"node": 3, "term": 3}));
        assert_eq!(
            OneLeaderPerTerm::default().check(&h).outcome,
            Outcome::Valid
        );
        h.observe(NodeId(2), "leader", json!({"node": 2, "term": 3}));
        let r = OneLeaderPerTerm::default().check(&h);
        assert_eq!(r.outcome, Outcome::Invalid);
        assert!(
            r.details[0].starts_with("term 3 has 2 leaders"),
            "{:?}",
            r.details
        );
    }
}
