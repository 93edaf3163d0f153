//! Hand-made histories, one per rule: each violates exactly that rule and is reported by it.

use serde_json::{json, Value};

use super::*;
use crate::history::{Actor, Op};

/// Builds a history from (time, client, kind, f, value) rows; times are in milliseconds.
fn history(rows: &[(u64, u32, OpKind, &str, Value)]) -> History {
    let ops = rows
        .iter()
        .enumerate()
        .map(|(i, (t, c, kind, f, value))| Op {
            index: i as u64,
            time_ns: t * 1_000_000,
            actor: Actor::Client(*c),
            kind: *kind,
            f: (*f).to_owned(),
            value: value.clone(),
            node: None,
        })
        .collect();
    History::from_ops(ops)
}

use OpKind::{Fail, Info, Invoke, Ok as Done};

fn check(rows: &[(u64, u32, OpKind, &str, Value)]) -> CheckResult {
    LinearizableSet::default().check(&history(rows))
}

fn assert_only(r: &CheckResult, rule: &str) {
    assert_eq!(r.outcome, Outcome::Invalid, "{r:?}");
    assert!(
        r.details.iter().all(|d| d.starts_with(rule)),
        "expected only {rule:?} anomalies: {:#?}",
        r.details
    );
}

#[test]
fn a_linearizable_history_with_concurrency_and_unknown_adds_is_valid() {
    let r = check(&[
        (1, 0, Invoke, "add", json!("a")),
        (2, 0, Done, "add", json!(null)),
        (3, 2, Invoke, "lread", json!(null)),
        (4, 0, Invoke, "add", json!("b")), // concurrent with the read: may be seen or not
        (5, 2, Done, "lread", json!(["a", "b"])),
        (6, 0, Info, "add", json!("timeout")),
        (7, 0, Invoke, "add", json!("c")),
        (8, 0, Info, "add", json!("timeout")), // unknown, never seen: fine
        (9, 0, Invoke, "add", json!("d")),
        (10, 0, Fail, "add", json!("not the leader")),
        (11, 2, Invoke, "lread", json!(null)),
        (12, 2, Done, "lread", json!(["a", "b"])),
        (13, 2, Invoke, "lread", json!(null)),
        (14, 2, Info, "lread", json!("timeout")), // indeterminate reads are skipped
    ]);
    assert_eq!(r.outcome, Outcome::Valid, "{r:?}");
}

#[test]
fn a_read_missing_an_acknowledged_add_is_a_lost_write() {
    let r = check(&[
        (1, 0, Invoke, "add", json!("a")),
        (2, 0, Done, "add", json!(null)),
        (3, 2, Invoke, "lread", json!(null)),
        (4, 2, Done, "lread", json!([])),
    ]);
    assert_only(&r, "lost:");
    assert!(r.details[0].contains("misses 1 add(s)") && r.details[0].ends_with(": a"));
}

#[test]
fn a_read_may_miss_an_add_acknowledged_after_it_began() {
    let r = check(&[
        (1, 0, Invoke, "add", json!("a")),
        (2, 2, Invoke, "lread", json!(null)),
        (3, 0, Done, "add", json!(null)),
        (4, 2, Done, "lread", json!([])),
    ]);
    assert_eq!(r.outcome, Outcome::Valid, "{r:?}");
}

#[test]
fn a_read_seeing_an_add_invoked_after_it_completed_reads_the_future() {
    let r = check(&[
        (1, 2, Invoke, "lread", json!(null)),
        (2, 2, Done, "lread", json!(["a"])),
        (3, 0, Invoke, "add", json!("a")),
        (4, 0, Done, "add", json!(null)),
    ]);
    assert_only(&r, "future:");
    assert!(r.details[0].contains("was added only at 0.003s"), "{r:?}");
}

#[test]
fn phantom_and_failed_elements_are_reported() {
    let r = check(&[
        (1, 0, Invoke, "add", json!("f")),
        (2, 0, Fail, "add", json!("not the leader")),
        (3, 2, Invoke, "lread", json!(null)),
        (4, 2, Done, "lread", json!(["f", "ghost"])),
    ]);
    assert_only(&r, "future:");
    assert_eq!(r.details.len(), 2, "{r:?}");
    assert!(r.details[0].contains("f, which belongs to an add that failed"));
    assert!(r.details[1].contains("ghost, which was never added"));
}

#[test]
fn a_later_read_losing_an_unknown_add_an_earlier_read_saw_is_not_monotonic() {
    let r = check(&[
        (1, 0, Invoke, "add", json!("a")),
        (2, 0, Info, "add", json!("timeout")),
        (3, 2, Invoke, "lread", json!(null)),
        (4, 2, Done, "lread", json!(["a"])),
        (5, 3, Invoke, "lread", json!(null)),
        (6, 3, Done, "lread", json!([])),
    ]);
    // Reads #3 and #5 are also incomparable by size order? No: [] is a subset of [a].
    assert_only(&r, "not monotonic:");
    assert!(r.details[0].contains("e.g. a (read #3"), "{r:?}");
}

#[test]
fn concurrent_reads_that_each_miss_the_others_element_have_no_single_order() {
    // Both adds and both reads overlap in time, so rules 1-3 cannot object.
    let r = check(&[
        (1, 0, Invoke, "add", json!("a")),
        (2, 1, Invoke, "add", json!("b")),
        (3, 2, Invoke, "lread", json!(null)),
        (4, 3, Invoke, "lread", json!(null)),
        (5, 2, Done, "lread", json!(["a"])),
        (6, 3, Done, "lread", json!(["b"])),
        (7, 0, Done, "add", json!(null)),
        (8, 1, Done, "add", json!(null)),
    ]);
    assert_only(&r, "no single order:");
}

#[test]
fn no_successful_read_is_unknown() {
    let r = check(&[
        (1, 0, Invoke, "add", json!("a")),
        (2, 0, Done, "add", json!(null)),
        (3, 2, Invoke, "lread", json!(null)),
        (4, 2, Fail, "lread", json!("not the leader")),
    ]);
    assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
}
