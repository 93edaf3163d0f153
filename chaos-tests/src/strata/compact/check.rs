//! The invariants of coordinated compaction after a tier-1 run, each a [`CheckResult`]:
//!
//! - no two live blocks of a group overlap in time;
//! - no duplicate output: no source block is inside two live blocks of a group (a deposed
//!   worker's upload has the same sources as the committed one and must be gone);
//! - every group keeps exactly its samples (read back through storage, duplicates counted);
//! - compaction happened: every group ends with fewer blocks and one of level 2 or more;
//! - at most one valid lease per job ([`LeasesExclusive`], over the `job` observations).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::bucket::{GroupSamples, Live};
use crate::checker::{CheckResult, Checker, Outcome};
use crate::history::History;

fn verdict(name: &str, details: Vec<String>, summary: String) -> CheckResult {
    let outcome = if details.is_empty() {
        Outcome::Valid
    } else {
        Outcome::Invalid
    };
    CheckResult {
        details,
        ..CheckResult::new(name, outcome, summary)
    }
}

/// No two live blocks of a group overlap (blocks are `[min, max)`).
pub fn no_overlap(live: &Live) -> CheckResult {
    let mut details = Vec::new();
    for (g, metas) in &live.groups {
        for (i, a) in metas.iter().enumerate() {
            for b in &metas[i + 1..] {
                if a.min_time < b.max_time && b.min_time < a.max_time {
                    details.push(format!(
                        "group {g}: {} [{}, {}) overlaps {} [{}, {})",
                        a.ulid, a.min_time, a.max_time, b.ulid, b.min_time, b.max_time
                    ));
                }
            }
        }
    }
    let blocks: usize = live.groups.values().map(Vec::len).sum();
    verdict(
        "no overlapping blocks in any group",
        details,
        format!("{} groups, {blocks} live blocks", live.groups.len()),
    )
}

/// No source block is part of two live blocks of one group.
pub fn no_duplicate_output(live: &Live) -> CheckResult {
    let mut details = Vec::new();
    for (g, metas) in &live.groups {
        let mut owner = BTreeMap::new();
        for m in metas {
            for s in &m.compaction.sources {
                if let Some(first) = owner.insert(*s, m.ulid) {
                    details.push(format!(
                        "group {g}: source {s} is in both {first} and {}",
                        m.ulid
                    ));
                }
            }
        }
    }
    verdict(
        "no duplicate output (no source in two live blocks)",
        details,
        format!("{} groups", live.groups.len()),
    )
}

/// Every group in `want` has exactly its samples in `got`, and `got` has no other group.
pub fn exact_samples(
    want: &BTreeMap<String, GroupSamples>,
    got: &BTreeMap<String, GroupSamples>,
) -> CheckResult {
    let mut details = Vec::new();
    let mut total = 0usize;
    for g in want.keys().chain(got.keys()).collect::<BTreeSet<_>>() {
        let empty = GroupSamples::new();
        let (w, h) = (want.get(g).unwrap_or(&empty), got.get(g).unwrap_or(&empty));
        total += w.values().map(Vec::len).sum::<usize>();
        for series in w.keys().chain(h.keys()).collect::<BTreeSet<_>>() {
            let (ws, hs) = (
                w.get(series).map_or(&[][..], Vec::as_slice),
                h.get(series).map_or(&[][..], Vec::as_slice),
            );
            if ws != hs {
                let first = ws.iter().zip(hs).position(|(a, b)| a != b);
                details.push(format!(
                    "group {g}, series {series}: {} samples expected, {} found{}",
                    ws.len(),
                    hs.len(),
                    first.map_or(String::new(), |i| format!(
                        "; first difference at #{i}: {:?} vs {:?}",
                        ws[i], hs[i]
                    ))
                ));
            }
        }
    }
    verdict(
        "every group keeps exactly its samples",
        details,
        format!("{} groups, {total} samples expected", want.len()),
    )
}

/// Every group of `before` ends with fewer blocks, one of them compacted (level 2 or more).
pub fn compacted(before: &Live, after: &Live) -> CheckResult {
    let mut details = Vec::new();
    let mut figures = Vec::new();
    for (g, was) in &before.groups {
        let now = after.groups.get(g).map_or(&[][..], Vec::as_slice);
        figures.push(format!("{g}: {} -> {}", was.len(), now.len()));
        if now.len() >= was.len() || !now.iter().any(|m| m.compaction.level > 1) {
            details.push(format!(
                "group {g} was not compacted: {} blocks before, {} after, levels {:?}",
                was.len(),
                now.len(),
                now.iter().map(|m| m.compaction.level).collect::<Vec<_>>()
            ));
        }
    }
    verdict("every group was compacted", details, figures.join("; "))
}

/// One `job` observation: a job as one node's applied job table showed it, and the test's
/// wall clock (ms) when the answer arrived.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct JobSeen {
    /// Job id.
    pub id: String,
    /// Job kind.
    pub kind: String,
    /// "pending", "assigned" or "done".
    pub state: String,
    /// Assignee or finisher.
    pub owner: Option<u64>,
    /// Assignments so far.
    pub attempts: u64,
    /// Fencing token ("term T attempt A").
    pub token: Option<String>,
    /// Lease end (ms since the epoch), when assigned.
    pub lease_expiry_ms: Option<i64>,
    /// When the test received this (ms since the epoch, same clock as the nodes').
    pub seen_ms: i64,
}

/// At most one valid lease per job: each fencing token has one owner; a job's next assignment
/// is first seen no earlier than the last lease end seen for its previous one (the leader may
/// reassign only after the lease lapsed, and a stale token may not renew); and a job is done
/// only under its last assignment's token (no node applies a completion under an attempt
/// lower than one it already applied as an assignment). Nodes and test share one clock (no clock nemesis
/// here), so leases and sightings compare directly.
#[derive(Debug, Default)]
pub struct LeasesExclusive;

#[derive(Debug, Default)]
struct Assignment {
    owners: BTreeSet<u64>,
    first_seen_ms: i64,
    last_expiry_ms: i64,
    attempt: u64,
}

fn attempt_of(token: &str) -> u64 {
    token
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

impl Checker for LeasesExclusive {
    fn name(&self) -> &str {
        "at most one valid lease per job"
    }

    fn check(&self, history: &History) -> CheckResult {
        let ops = history.ops();
        let seen: Vec<(Option<crate::net::NodeId>, JobSeen)> = ops
            .iter()
            .filter(|o| o.f == "job")
            .filter_map(|o| Some((o.node, serde_json::from_value(o.value.clone()).ok()?)))
            .collect();
        let mut jobs: BTreeMap<&str, BTreeMap<&str, Assignment>> = BTreeMap::new();
        let mut details = Vec::new();
        // Per node and job, the highest attempt that node has applied as an assignment: its
        // state machine applies in log order, so a later completion under a lower attempt
        // means a stale token's completion was committed.
        let mut applied: BTreeMap<(Option<crate::net::NodeId>, &str), u64> = BTreeMap::new();
        for (node, j) in &seen {
            let (Some(token), Some(owner)) = (j.token.as_deref(), j.owner) else {
                continue;
            };
            let attempt = attempt_of(token);
            let a = jobs
                .entry(&j.id)
                .or_default()
                .entry(token)
                .or_insert(Assignment {
                    first_seen_ms: j.seen_ms,
                    attempt,
                    ..Assignment::default()
                });
            a.owners.insert(owner);
            a.first_seen_ms = a.first_seen_ms.min(j.seen_ms);
            let highest = applied.entry((*node, &j.id)).or_default();
            if j.state == "assigned" {
                a.last_expiry_ms = a.last_expiry_ms.max(j.lease_expiry_ms.unwrap_or(0));
                *highest = (*highest).max(attempt);
            } else if j.state == "done" && attempt < *highest {
                details.push(format!(
                    "job {}: {} applied a completion under {token} after assigning attempt {}",
                    j.id,
                    node.map_or("a node".to_string(), |n| n.to_string()),
                    *highest
                ));
            }
        }
        let mut reassigned = 0;
        for (id, tokens) in &jobs {
            for (t, a) in tokens {
                if a.owners.len() > 1 {
                    details.push(format!("job {id}: token {t} held by nodes {:?}", a.owners));
                }
            }
            let mut by_attempt: Vec<(&&str, &Assignment)> = tokens.iter().collect();
            by_attempt.sort_by_key(|(_, a)| a.attempt);
            for pair in by_attempt.windows(2) {
                let ((t0, a0), (t1, a1)) = (pair[0], pair[1]);
                reassigned += 1;
                if a0.last_expiry_ms > a1.first_seen_ms {
                    details.push(format!(
                        "job {id}: {t1} seen at {} while {t0}'s lease ran until {}",
                        a1.first_seen_ms, a0.last_expiry_ms
                    ));
                }
            }
        }
        if seen.is_empty() {
            return CheckResult::new(self.name(), Outcome::Unknown, "no job was observed");
        }
        let summary = format!(
            "{} observations of {} jobs, {reassigned} reassignments",
            seen.len(),
            jobs.len()
        );
        verdict(self.name(), details, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Actor;
    use crate::net::NodeId;

    fn seen(state: &str, owner: u64, token: &str, expiry: i64, at: i64) -> JobSeen {
        JobSeen {
            id: "compact:g".into(),
            kind: "compact".into(),
            state: state.into(),
            owner: Some(owner),
            attempts: attempt_of(token),
            token: Some(token.into()),
            lease_expiry_ms: (state == "assigned").then_some(expiry),
            seen_ms: at,
        }
    }

    fn history(jobs: &[JobSeen]) -> History {
        let h = History::new();
        for j in jobs {
            h.record(
                Actor::Observer(NodeId(1)),
                crate::history::OpKind::Info,
                "job",
                serde_json::to_value(j).unwrap_or_default(),
                Some(NodeId(1)),
            );
        }
        h
    }

    #[test]
    fn a_reassignment_after_the_lease_lapsed_is_valid() {
        let h = history(&[
            seen("assigned", 1, "term 2 attempt 1", 1_000, 500),
            seen("assigned", 2, "term 2 attempt 2", 4_000, 1_200),
            seen("done", 2, "term 2 attempt 2", 0, 2_000),
        ]);
        let r = LeasesExclusive.check(&h);
        assert_eq!(r.outcome, Outcome::Valid, "{r:?}");
    }

    #[test]
    fn two_overlapping_leases_of_one_job_are_invalid() {
        let h = history(&[
            seen("assigned", 1, "term 2 attempt 1", 5_000, 500),
            seen("assigned", 2, "term 2 attempt 2", 8_000, 1_200),
        ]);
        let r = LeasesExclusive.check(&h);
        assert_eq!(r.outcome, Outcome::Invalid, "{r:?}");
    }

    #[test]
    fn a_token_with_two_owners_or_a_stale_completion_is_invalid() {
        let two = history(&[
            seen("assigned", 1, "term 2 attempt 1", 1_000, 500),
            seen("assigned", 3, "term 2 attempt 1", 1_000, 600),
        ]);
        assert_eq!(LeasesExclusive.check(&two).outcome, Outcome::Invalid);
        let stale = history(&[
            seen("assigned", 1, "term 2 attempt 1", 1_000, 500),
            seen("assigned", 2, "term 3 attempt 2", 4_000, 1_500),
            seen("done", 1, "term 2 attempt 1", 0, 2_000),
        ]);
        assert_eq!(LeasesExclusive.check(&stale).outcome, Outcome::Invalid);
    }

    fn meta(
        id: u128,
        min: i64,
        max: i64,
        sources: &[u128],
        level: u32,
    ) -> storage::block::BlockMeta {
        let mut m = storage::block::BlockMeta::new_level1(ulid::Ulid(id), min, max);
        m.compaction.sources = sources.iter().map(|s| ulid::Ulid(*s)).collect();
        m.compaction.level = level;
        m
    }

    fn live(metas: Vec<storage::block::BlockMeta>) -> Live {
        Live {
            groups: [("g".to_string(), metas)].into_iter().collect(),
            partial: 0,
        }
    }

    #[test]
    fn overlap_and_shared_sources_are_found() {
        let clean = live(vec![meta(1, 0, 10, &[1], 1), meta(2, 10, 20, &[2], 1)]);
        assert_eq!(no_overlap(&clean).outcome, Outcome::Valid);
        assert_eq!(no_duplicate_output(&clean).outcome, Outcome::Valid);
        let dup = live(vec![meta(3, 0, 20, &[1, 2], 2), meta(4, 0, 20, &[1, 2], 2)]);
        assert_eq!(no_overlap(&dup).outcome, Outcome::Invalid);
        assert_eq!(no_duplicate_output(&dup).outcome, Outcome::Invalid);
        assert_eq!(compacted(&clean, &dup).outcome, Outcome::Invalid);
        let one = live(vec![meta(3, 0, 20, &[1, 2], 2)]);
        assert_eq!(compacted(&clean, &one).outcome, Outcome::Valid);
    }

    #[test]
    fn a_lost_or_doubled_sample_is_found() {
        let want: BTreeMap<String, GroupSamples> = [(
            "g".to_string(),
            [("up".to_string(), vec![(1, 0), (2, 0)])]
                .into_iter()
                .collect(),
        )]
        .into_iter()
        .collect();
        assert_eq!(exact_samples(&want, &want).outcome, Outcome::Valid);
        let mut doubled = want.clone();
        if let Some(s) = doubled.get_mut("g").and_then(|g| g.get_mut("up")) {
            s.insert(1, (1, 0));
        }
        assert_eq!(exact_samples(&want, &doubled).outcome, Outcome::Invalid);
        let lost = BTreeMap::new();
        assert_eq!(exact_samples(&want, &lost).outcome, Outcome::Invalid);
    }
}
