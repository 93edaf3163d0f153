//! Linearizability of a grow-only set with unique elements, read whole (the registry workload).
//!
//! A history of `add(x)` and `read -> {..}` is linearizable for such a set when the successful
//! reads can be ordered consistently with real time and with the adds. For a set that only
//! grows, that comes down to rules each read can be tested against on its own or in pairs:
//!
//! 1. **nothing acknowledged is lost**: a read contains every element whose add was
//!    acknowledged before the read was invoked;
//! 2. **nothing from the future**: a read contains no element whose add was invoked after the
//!    read completed, never one that was not added at all, and never one whose add certainly
//!    failed;
//! 3. **monotonic**: a read contains every element of every read that completed before it was
//!    invoked;
//! 4. **one order**: every two reads are ordered by inclusion (the set only grows, so two reads
//!    that each saw an element the other missed cannot both be right, even when concurrent).
//!
//! Reads that failed or timed out are indeterminate and skipped; an add whose outcome is
//! unknown may appear or not (but once seen, rule 3 holds it to stay).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{CheckResult, Checker, Outcome};
use crate::history::{pairs, History, OpKind};

/// The four rules above over `add_f` and `read_f` operations.
#[derive(Debug, Clone)]
pub struct LinearizableSet {
    /// The add operation's `f` (its value is the element).
    pub add_f: String,
    /// The read operation's `f` (its `ok` value is an array of elements).
    pub read_f: String,
}

impl Default for LinearizableSet {
    fn default() -> Self {
        LinearizableSet {
            add_f: "add".into(),
            read_f: "lread".into(),
        }
    }
}

/// How an add ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    /// Acknowledged at this time.
    Acked(u64),
    /// Certainly not applied.
    Failed,
    /// Outcome unknown.
    Unknown,
}

#[derive(Debug)]
struct Add {
    invoked: u64,
    outcome: Added,
}

#[derive(Debug)]
struct Read {
    /// History index of the completion (names the read in reports).
    index: u64,
    invoked: u64,
    completed: u64,
    node: String,
    elems: BTreeSet<String>,
}

/// Per-read detail limit, so one lost element does not print a thousand lines.
const EXAMPLES: usize = 3;

impl Checker for LinearizableSet {
    fn name(&self) -> &str {
        "reads are linearizable (grow-only set)"
    }

    fn check(&self, history: &History) -> CheckResult {
        let (adds, reads) = self.collect(history);
        let mut details = Vec::new();
        lost_acknowledged(&adds, &reads, &mut details);
        from_the_future(&adds, &reads, &mut details);
        monotonic(&reads, &mut details);
        one_order(&reads, &mut details);
        let acked = adds
            .values()
            .filter(|a| matches!(a.outcome, Added::Acked(_)))
            .count();
        let summary = format!(
            "{} reads returned, {} adds ({} acknowledged): {} anomalies",
            reads.len(),
            adds.len(),
            acked,
            details.len()
        );
        let outcome = if !details.is_empty() {
            Outcome::Invalid
        } else if reads.is_empty() {
            details.push("no read returned, so nothing was checked".into());
            Outcome::Unknown
        } else {
            Outcome::Valid
        };
        CheckResult {
            details,
            ..CheckResult::new(self.name(), outcome, summary)
        }
    }
}

impl LinearizableSet {
    fn collect(&self, history: &History) -> (BTreeMap<String, Add>, Vec<Read>) {
        let mut adds = BTreeMap::new();
        let mut reads = Vec::new();
        for p in pairs(&history.ops()) {
            let done = p.complete.as_ref();
            if p.invoke.f == self.add_f {
                let outcome = match done.map(|d| (d.kind, d.time_ns)) {
                    Some((OpKind::Ok, t)) => Added::Acked(t),
                    Some((OpKind::Fail, _)) => Added::Failed,
                    _ => Added::Unknown,
                };
                let add = Add {
                    invoked: p.invoke.time_ns,
                    outcome,
                };
                adds.insert(elem(&p.invoke.value), add);
            } else if p.invoke.f == self.read_f {
                let Some(done) = done.filter(|d| d.kind == OpKind::Ok) else {
                    continue;
                };
                let elems = done
                    .value
                    .as_array()
                    .map(|a| a.iter().map(elem).collect())
                    .unwrap_or_default();
                reads.push(Read {
                    index: done.index,
                    invoked: p.invoke.time_ns,
                    completed: done.time_ns,
                    node: done.node.map(|n| format!(" on {n}")).unwrap_or_default(),
                    elems,
                });
            }
        }
        (adds, reads)
    }
}

/// An element's key: strings as themselves, anything else as JSON text.
fn elem(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn secs(ns: u64) -> String {
    format!("{:.3}s", ns as f64 / 1e9)
}

fn examples<'a>(items: impl Iterator<Item = &'a String>) -> (usize, String) {
    let all: Vec<&String> = items.collect();
    let shown: Vec<&str> = all.iter().take(EXAMPLES).map(|s| s.as_str()).collect();
    (all.len(), shown.join(", "))
}

/// Rule 1.
fn lost_acknowledged(adds: &BTreeMap<String, Add>, reads: &[Read], out: &mut Vec<String>) {
    for r in reads {
        let missing = adds.iter().filter_map(|(e, a)| match a.outcome {
            Added::Acked(t) if t < r.invoked && !r.elems.contains(e) => Some(e),
            _ => None,
        });
        let (n, shown) = examples(missing);
        if n > 0 {
            out.push(format!(
                "lost: read #{}{} invoked at {} misses {n} add(s) acknowledged before it: {shown}",
                r.index,
                r.node,
                secs(r.invoked)
            ));
        }
    }
}

/// Rule 2.
fn from_the_future(adds: &BTreeMap<String, Add>, reads: &[Read], out: &mut Vec<String>) {
    for r in reads {
        for e in &r.elems {
            let why = match adds.get(e) {
                None => "was never added".to_string(),
                Some(a) if a.outcome == Added::Failed => "belongs to an add that failed".into(),
                Some(a) if a.invoked > r.completed => {
                    format!("was added only at {}", secs(a.invoked))
                }
                Some(_) => continue,
            };
            out.push(format!(
                "future: read #{}{} completed at {} contains {e}, which {why}",
                r.index,
                r.node,
                secs(r.completed)
            ));
        }
    }
}

/// Rule 3: each read against the union of the reads that completed before it began.
fn monotonic(reads: &[Read], out: &mut Vec<String>) {
    let mut by_completion: Vec<&Read> = reads.iter().collect();
    by_completion.sort_by_key(|r| r.completed);
    let mut by_invocation: Vec<&Read> = reads.iter().collect();
    by_invocation.sort_by_key(|r| r.invoked);
    // element -> the earliest-completing read that saw it
    let mut seen: BTreeMap<&String, &Read> = BTreeMap::new();
    let mut next = 0;
    for r in by_invocation {
        while let Some(done) = by_completion.get(next).filter(|d| d.completed < r.invoked) {
            for e in &done.elems {
                seen.entry(e).or_insert(done);
            }
            next += 1;
        }
        let lost: Vec<(&&String, &&Read)> = seen
            .iter()
            .filter(|(e, _)| !r.elems.contains(**e))
            .collect();
        if let Some((e, earlier)) = lost.first() {
            out.push(format!(
                "not monotonic: read #{}{} invoked at {} lacks {} element(s) an earlier read \
                 returned, e.g. {e} (read #{}{} completed at {})",
                r.index,
                r.node,
                secs(r.invoked),
                lost.len(),
                earlier.index,
                earlier.node,
                secs(earlier.completed)
            ));
        }
    }
}

/// Rule 4: sorted by size, each read must include the previous one.
fn one_order(reads: &[Read], out: &mut Vec<String>) {
    let mut by_size: Vec<&Read> = reads.iter().collect();
    by_size.sort_by_key(|r| (r.elems.len(), r.index));
    for w in by_size.windows(2) {
        let (small, big) = (w[0], w[1]);
        if small.elems.is_subset(&big.elems) {
            continue;
        }
        let (_, only_small) = examples(small.elems.difference(&big.elems));
        let (_, only_big) = examples(big.elems.difference(&small.elems));
        out.push(format!(
            "no single order: read #{}{} saw {only_small} but not {only_big}, read #{}{} the \
             other way round",
            small.index, small.node, big.index, big.node
        ));
    }
}

#[cfg(test)]
mod tests;
