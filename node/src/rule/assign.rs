//! The leader's plan for rule groups under Raft: each group (`<file>;<group>`) is a job of kind
//! `rule-group` in the replicated job table, assigned to one live node with the rule role under
//! a lease. Assignment is sticky (a group stays with its owner while the owner renews its lease)
//! and spread by count (a free group goes to the live candidate holding the fewest groups); a
//! group whose lease lapsed goes to another node. Pure functions of the state, so the rules
//! are tested without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use raft::{Job, JobState, NodeId};

/// The job kind of a rule group.
pub const JOB_KIND: &str = "rule-group";

/// The job id of the group `key`.
pub fn job_id(key: &str) -> String {
    format!("{JOB_KIND}/{key}")
}

/// One change the leader commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add the job of a group that has none.
    Create {
        /// The job id.
        job_id: String,
        /// The group key (the job's spec).
        key: String,
    },
    /// Give a free group to a node.
    Assign {
        /// The job id.
        job_id: String,
        /// The new owner.
        node_id: NodeId,
    },
    /// Remove the job of a group no longer in the rule files.
    Delete {
        /// The job id.
        job_id: String,
    },
}

/// The current owner of a rule job and whether its lease is unexpired at `now_ms`.
fn owner(job: &Job, now_ms: i64) -> Option<(NodeId, bool)> {
    match &job.state {
        JobState::Assigned {
            node_id,
            lease_expiry_ms,
            ..
        } => Some((*node_id, *lease_expiry_ms > now_ms)),
        _ => None,
    }
}

/// What to change so that every group in `groups` is held by one of `candidates` (live nodes
/// with the rule role), given the job table `jobs` at `now_ms`.
pub fn plan(
    groups: &BTreeSet<String>,
    candidates: &BTreeSet<NodeId>,
    jobs: &BTreeMap<String, Job>,
    now_ms: i64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let rule_jobs: BTreeMap<&str, &Job> = jobs
        .values()
        .filter(|j| j.kind == JOB_KIND)
        .map(|j| (j.spec.as_str(), j))
        .collect();
    for (key, job) in &rule_jobs {
        if !groups.contains(*key) {
            actions.push(Action::Delete {
                job_id: job.id.clone(),
            });
        }
    }
    let mut load: BTreeMap<NodeId, usize> = candidates.iter().map(|c| (*c, 0)).collect();
    for job in rule_jobs.values() {
        if let Some((node, true)) = owner(job, now_ms) {
            if let Some(n) = load.get_mut(&node) {
                *n += 1;
            }
        }
    }
    for key in groups {
        let job = rule_jobs.get(key.as_str());
        let previous = match job.map(|j| (j, owner(j, now_ms))) {
            Some((_, Some((_, true)))) => continue,
            Some((j, _)) if matches!(j.state, JobState::Done { .. }) => continue,
            Some((_, Some((node, false)))) => Some(node),
            Some((_, None)) => None,
            None => {
                actions.push(Action::Create {
                    job_id: job_id(key),
                    key: key.clone(),
                });
                None
            }
        };
        // The previous owner let its lease lapse: prefer anyone else.
        let choice = load
            .iter()
            .min_by_key(|(node, n)| (Some(**node) == previous, **n, **node))
            .map(|(node, _)| *node);
        let Some(node_id) = choice else {
            continue;
        };
        if let Some(n) = load.get_mut(&node_id) {
            *n += 1;
        }
        actions.push(Action::Assign {
            job_id: job.map_or_else(|| job_id(key), |j| j.id.clone()),
            node_id,
        });
    }
    actions
}

/// The leader's view of which members are alive, from Raft replication: a follower whose
/// acknowledged log position has not moved for `dead_after` while the log moved on is dead.
#[derive(Debug, Default)]
pub struct ReplicationLiveness {
    seen: BTreeMap<NodeId, (Option<u64>, Instant)>,
}

impl ReplicationLiveness {
    /// Records the followers' matched indexes at `now`; returns the live ones among `nodes`
    /// (the leader itself, `leader`, always is).
    pub fn observe(
        &mut self,
        leader: NodeId,
        last_log_index: Option<u64>,
        matched: &BTreeMap<NodeId, Option<u64>>,
        nodes: &BTreeSet<NodeId>,
        now: Instant,
        dead_after: Duration,
    ) -> BTreeSet<NodeId> {
        let mut live = BTreeSet::new();
        for node in nodes {
            if *node == leader {
                live.insert(*node);
                continue;
            }
            let Some(m) = matched.get(node).copied() else {
                continue;
            };
            let entry = self.seen.entry(*node).or_insert((m, now));
            if entry.0 != m {
                *entry = (m, now);
            }
            if m >= last_log_index || now.duration_since(entry.1) < dead_after {
                live.insert(*node);
            }
        }
        self.seen.retain(|n, _| nodes.contains(n));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::FencingToken;

    fn job(key: &str, state: JobState) -> Job {
        Job {
            id: job_id(key),
            kind: JOB_KIND.into(),
            spec: key.into(),
            created_at_ms: 0,
            attempts: 1,
            state,
            progress: String::new(),
            lapses: Vec::new(),
        }
    }

    fn held(key: &str, node_id: NodeId, lease_expiry_ms: i64) -> Job {
        job(
            key,
            JobState::Assigned {
                node_id,
                token: FencingToken {
                    term: 1,
                    job_id: job_id(key),
                    attempt: 1,
                },
                lease_expiry_ms,
            },
        )
    }

    fn table(jobs: Vec<Job>) -> BTreeMap<String, Job> {
        jobs.into_iter().map(|j| (j.id.clone(), j)).collect()
    }

    fn keys(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("f.yml;g{i}")).collect()
    }

    /// Applies a plan as the leader would (lease `lease_ms` from `now`).
    fn apply(jobs: &mut BTreeMap<String, Job>, actions: &[Action], now: i64, lease_ms: i64) {
        for a in actions {
            match a {
                Action::Create { job_id, key } => {
                    let mut j = job(key, JobState::Pending);
                    j.id = job_id.clone();
                    jobs.insert(job_id.clone(), j);
                }
                Action::Assign { job_id, node_id } => {
                    let key = jobs[job_id].spec.clone();
                    jobs.insert(job_id.clone(), held(&key, *node_id, now + lease_ms));
                }
                Action::Delete { job_id } => {
                    jobs.remove(job_id);
                }
            }
        }
    }

    fn owners(jobs: &BTreeMap<String, Job>, now: i64) -> BTreeMap<NodeId, usize> {
        let mut m = BTreeMap::new();
        for j in jobs.values() {
            if let Some((n, true)) = owner(j, now) {
                *m.entry(n).or_insert(0) += 1;
            }
        }
        m
    }

    #[test]
    fn new_groups_are_created_and_spread_by_count() {
        let mut jobs = BTreeMap::new();
        let actions = plan(&keys(7), &[1, 2, 3].into(), &jobs, 0);
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::Create { .. }))
                .count(),
            7
        );
        apply(&mut jobs, &actions, 0, 100);
        assert_eq!(owners(&jobs, 50), BTreeMap::from([(1, 3), (2, 2), (3, 2)]));
        assert!(
            plan(&keys(7), &[1, 2, 3].into(), &jobs, 50).is_empty(),
            "stable"
        );
    }

    #[test]
    fn a_held_group_stays_with_its_owner_even_when_another_node_is_idle() {
        let jobs = table(vec![held("f.yml;g0", 1, 100), held("f.yml;g1", 1, 100)]);
        let actions = plan(&keys(3), &[1, 2].into(), &jobs, 10);
        assert_eq!(
            actions,
            vec![
                Action::Create {
                    job_id: job_id("f.yml;g2"),
                    key: "f.yml;g2".into()
                },
                Action::Assign {
                    job_id: job_id("f.yml;g2"),
                    node_id: 2
                }
            ]
        );
    }

    #[test]
    fn a_lapsed_lease_moves_the_group_to_another_live_node_and_only_then() {
        let mut jobs = table(vec![held("f.yml;g0", 1, 100), held("f.yml;g1", 2, 500)]);
        assert!(
            plan(&keys(2), &[1, 2, 3].into(), &jobs, 99).is_empty(),
            "lease still valid"
        );
        // Node 1 died: its lease lapses at 100; it is also no longer a live candidate.
        let actions = plan(&keys(2), &[2, 3].into(), &jobs, 100);
        assert_eq!(
            actions,
            vec![Action::Assign {
                job_id: job_id("f.yml;g0"),
                node_id: 3
            }]
        );
        apply(&mut jobs, &actions, 100, 100);
        // Even if node 1 still looks alive, a lapsed owner is the last choice.
        let mut lapsed = table(vec![held("f.yml;g0", 1, 100)]);
        let again = plan(&keys(1), &[1, 2].into(), &lapsed, 150);
        assert_eq!(
            again,
            vec![Action::Assign {
                job_id: job_id("f.yml;g0"),
                node_id: 2
            }]
        );
        apply(&mut lapsed, &again, 150, 100);
        assert_eq!(owners(&lapsed, 160), BTreeMap::from([(2, 1)]));
    }

    #[test]
    fn never_two_valid_owners_and_removed_groups_are_deleted() {
        // Whatever the table, a plan only assigns groups without a valid lease, once each.
        let mut jobs = table(vec![
            held("f.yml;g0", 1, 100),
            held("f.yml;gone", 2, 100),
            job("f.yml;g1", JobState::Pending),
        ]);
        for now in [0, 50, 100, 150, 300] {
            let actions = plan(&keys(3), &[1, 2, 3].into(), &jobs, now);
            let mut assigned = BTreeSet::new();
            for a in &actions {
                if let Action::Assign { job_id, .. } = a {
                    assert!(
                        assigned.insert(job_id.clone()),
                        "assigned twice: {actions:?}"
                    );
                    assert!(
                        jobs.get(job_id)
                            .is_none_or(|j| owner(j, now).is_none_or(|(_, v)| !v)),
                        "{job_id} reassigned while its lease is valid"
                    );
                }
            }
            apply(&mut jobs, &actions, now, 120);
            assert!(!jobs.contains_key(&job_id("f.yml;gone")));
            assert_eq!(owners(&jobs, now).values().sum::<usize>(), 3);
        }
        assert!(
            plan(&keys(1), &BTreeSet::new(), &BTreeMap::new(), 0)
                .iter()
                .all(|a| !matches!(a, Action::Assign { .. })),
            "no candidate, no owner"
        );
    }

    #[test]
    fn a_follower_whose_replication_stalls_is_dead_after_the_delay() {
        let mut l = ReplicationLiveness::default();
        let t0 = Instant::now();
        let nodes: BTreeSet<NodeId> = [1, 2, 3].into();
        let d = Duration::from_secs(3);
        let m = |a, b| BTreeMap::from([(2, Some(a)), (3, Some(b))]);
        assert_eq!(l.observe(1, Some(10), &m(10, 10), &nodes, t0, d), nodes);
        // Node 3 stops acknowledging while the log grows.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(l.observe(1, Some(20), &m(20, 10), &nodes, t1, d), nodes);
        let t2 = t0 + Duration::from_secs(4);
        assert_eq!(
            l.observe(1, Some(30), &m(30, 10), &nodes, t2, d),
            [1, 2].into()
        );
        // It comes back.
        let t3 = t0 + Duration::from_secs(5);
        assert_eq!(l.observe(1, Some(30), &m(30, 30), &nodes, t3, d), nodes);
    }
}
