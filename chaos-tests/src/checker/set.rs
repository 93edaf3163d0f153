//! "An acknowledged write is never lost": every value whose `add` was acknowledged must appear
//! in every successful read invoked after the acknowledgement (a grow-only set; Jepsen's set
//! workload). Registry entries and committed log entries are checked this way.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{CheckResult, Checker, Outcome};
use crate::history::{pairs, History, OpKind};

/// Acknowledged adds are seen by every later successful read.
#[derive(Debug, Clone)]
pub struct AckedAddsSurvive {
    /// The add operation's `f` (its value is the element).
    pub add_f: String,
    /// The read operation's `f` (its ok value is an array of elements).
    pub read_f: String,
}

impl Default for AckedAddsSurvive {
    fn default() -> Self {
        AckedAddsSurvive {
            add_f: "add".into(),
            read_f: "read".into(),
        }
    }
}

impl Checker for AckedAddsSurvive {
    fn name(&self) -> &str {
        "acknowledged adds survive"
    }

    fn check(&self, history: &History) -> CheckResult {
        let ops = pairs(&history.ops());
        // element (as JSON text) -> time its add was acknowledged
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        let mut reads = Vec::new();
        for p in &ops {
            let Some(done) = p.complete.as_ref().filter(|c| c.kind == OpKind::Ok) else {
                continue;
            };
            if p.invoke.f == self.add_f {
                acked
                    .entry(p.invoke.value.to_string())
                    .or_insert(done.time_ns);
            } else if p.invoke.f == self.read_f {
                reads.push((p.invoke.time_ns, done));
            }
        }
        let mut details = Vec::new();
        let mut checked = 0;
        for (elem, acked_at) in &acked {
            let later: Vec<_> = reads
                .iter()
                .filter(|(invoked, _)| invoked > acked_at)
                .collect();
            checked += usize::from(!later.is_empty());
            let missing = later.iter().find(|(_, done)| !contains(&done.value, elem));
            if let Some((invoked, done)) = missing {
                details.push(format!(
                    "{elem} acknowledged at {:.3}s is missing from read #{} invoked at {:.3}s{}",
                    secs(*acked_at),
                    done.index,
                    secs(*invoked),
                    done.node.map(|n| format!(" on {n}")).unwrap_or_default(),
                ));
            }
        }
        let outcome = if !details.is_empty() {
            Outcome::Invalid
        } else if checked < acked.len() {
            details.push(format!(
                "{} acknowledged adds have no later read",
                acked.len() - checked
            ));
            Outcome::Unknown
        } else {
            Outcome::Valid
        };
        let summary = format!(
            "{} acknowledged, {} reads, {} lost",
            acked.len(),
            reads.len(),
            if outcome == Outcome::Invalid {
                details.len()
            } else {
                0
            }
        );
        CheckResult {
            details,
            ..CheckResult::new(self.name(), outcome, summary)
        }
    }
}

fn contains(read: &Value, elem: &str) -> bool {
    let elem: Value = serde_json::from_str(elem).unwrap_or(Value::Null);
    read.as_array().is_some_and(|a| a.contains(&elem))
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Actor;
    use serde_json::json;

    #[test]
    fn lost_add_is_reported_with_the_read_that_missed_it() {
        let h = History::new();
        h.invoke(Actor::Client(0), "add", json!(1), None)
            .ok(json!(null));
        h.invoke(Actor::Client(0), "add", json!(2), None)
            .ok(json!(null));
        h.invoke(Actor::Client(1), "read", json!(null), None)
            .ok(json!([1]));
        let r = AckedAddsSurvive::default().check(&h);
        assert_eq!(r.outcome, Outcome::Invalid, "{r:?}");
        assert_eq!(r.details.len(), 1);
        assert!(
            r.details[0].starts_with("2 acknowledged"),
            "{}",
            r.details[0]
        );
    }

    #[test]
    fn reads_concurrent_with_the_add_may_miss_it() {
        let h = History::new();
        let read = h.invoke(Actor::Client(1), "read", json!(null), None);
        h.invoke(Actor::Client(0), "add", json!(1), None)
            .ok(json!(null));
        read.ok(json!([]));
        h.invoke(Actor::Client(1), "read", json!(null), None)
            .ok(json!([1]));
        assert_eq!(
            AckedAddsSurvive::default().check(&h).outcome,
            Outcome::Valid
        );
    }

    #[test]
    fn unacknowledged_adds_are_not_required() {
        let h = History::new();
        h.invoke(Actor::Client(0), "add", json!(1), None)
            .info(json!("timeout"));
        h.invoke(Actor::Client(1), "read", json!(null), None)
            .ok(json!([]));
        assert_eq!(
            AckedAddsSurvive::default().check(&h).outcome,
            Outcome::Valid
        );
    }

    #[test]
    fn no_later_read_is_unknown() {
        let h = History::new();
        h.invoke(Actor::Client(0), "add", json!(1), None)
            .ok(json!(null));
        assert_eq!(
            AckedAddsSurvive::default().check(&h).outcome,
            Outcome::Unknown
        );
    }
}
