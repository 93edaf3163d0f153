//! Watching the job table: one thread per node polls `/api/v1/status/cluster` and records each
//! compactor job it shows as a `job` observation (only when the node's view of it changed),
//! plus the Raft observations of [`super::super::observer::record`]; the latest view of every
//! node stays available to the nemesis (who leads, who runs which job).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::check::JobSeen;
use crate::history::History;
use crate::net::NodeId;
use crate::strata::observer::{record, Target};
use crate::strata::status::{get_json, NodeStatus};

/// Job kinds the compactor runs (rule groups share the job table).
fn is_compactor(kind: &str) -> bool {
    storage::compact::jobs::KINDS.contains(&kind)
}

/// One node's latest answer.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Its Raft id.
    pub raft_id: u64,
    /// Whether it says it leads.
    pub leader: bool,
    /// Its term.
    pub term: u64,
    /// The compactor jobs of its applied job table.
    pub jobs: Vec<JobSeen>,
    /// When it answered.
    pub at: Instant,
}

/// The latest view of every node, shared with the nemesis.
#[derive(Debug, Clone, Default)]
pub struct Views(Arc<Mutex<BTreeMap<NodeId, NodeView>>>);

impl Views {
    fn set(&self, id: NodeId, v: NodeView) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, v);
    }

    /// Views answered within `fresh`.
    pub fn fresh(&self, fresh: Duration) -> BTreeMap<NodeId, NodeView> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .filter(|(_, v)| v.at.elapsed() <= fresh)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// The node that leads in the highest term among fresh views.
    pub fn leader(&self, fresh: Duration) -> Option<NodeId> {
        self.fresh(fresh)
            .into_iter()
            .filter(|(_, v)| v.leader)
            .max_by_key(|(_, v)| v.term)
            .map(|(id, _)| id)
    }

    /// The harness node whose Raft id is `raft_id`.
    pub fn node_of(&self, raft_id: u64) -> Option<NodeId> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter()
            .find(|(_, v)| v.raft_id == raft_id)
            .map(|(k, _)| *k)
    }

    /// A compaction job assigned to a node, as the freshest leader view shows it (else any
    /// fresh view): (job id, owner's harness node).
    pub fn running_job(&self, fresh: Duration) -> Option<(JobSeen, NodeId)> {
        let views = self.fresh(fresh);
        let mut order: Vec<&NodeView> = views.values().collect();
        order.sort_by_key(|v| (!v.leader, std::cmp::Reverse(v.term)));
        order.iter().find_map(|v| {
            v.jobs.iter().find_map(|j| {
                let owner = self.node_of(j.owner?)?;
                (j.state == "assigned" && j.kind == "compact").then(|| (j.clone(), owner))
            })
        })
    }

    /// Job `id` as the freshest leader view shows it.
    pub fn job(&self, id: &str, fresh: Duration) -> Option<JobSeen> {
        let views = self.fresh(fresh);
        let mut order: Vec<&NodeView> = views.values().collect();
        order.sort_by_key(|v| (!v.leader, std::cmp::Reverse(v.term)));
        order
            .iter()
            .find_map(|v| v.jobs.iter().find(|j| j.id == id).cloned())
    }

    /// Whether the freshest leader view shows no compaction or downsampling job pending or
    /// assigned (sweeps come every pass; the bucket's stability tells when they are done).
    pub fn idle(&self, fresh: Duration) -> bool {
        let views = self.fresh(fresh);
        views
            .values()
            .filter(|v| v.leader)
            .max_by_key(|v| v.term)
            .is_some_and(|v| {
                v.jobs
                    .iter()
                    .all(|j| j.state == "done" || j.kind == storage::compact::jobs::KIND_SWEEP)
            })
    }
}

/// Polls every target until `stop` is set.
pub fn watch(targets: &[Target], history: &History, views: &Views, stop: &AtomicBool) {
    std::thread::scope(|s| {
        for t in targets {
            s.spawn(move || watch_one(*t, history, views, stop));
        }
    });
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn watch_one(t: Target, history: &History, views: &Views, stop: &AtomicBool) {
    let interval = Duration::from_millis(200);
    let mut last: BTreeMap<String, JobSeen> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if let Ok((200, v)) = get_json(t.http, "/api/v1/status/cluster", Duration::from_secs(1)) {
            let seen_ms = now_ms();
            let data = &v["data"];
            let jobs: Vec<JobSeen> = data["jobs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|j| j["kind"].as_str().is_some_and(is_compactor))
                .filter_map(|j| {
                    let mut j = j.clone();
                    j["seen_ms"] = seen_ms.into();
                    serde_json::from_value::<JobSeen>(j).ok()
                })
                .collect();
            for j in &jobs {
                let changed = last.get(&j.id).is_none_or(|p| {
                    (&p.state, &p.token, p.lease_expiry_ms)
                        != (&j.state, &j.token, j.lease_expiry_ms)
                });
                if changed {
                    history.observe(t.id, "job", serde_json::to_value(j).unwrap_or_default());
                    last.insert(j.id.clone(), j.clone());
                }
            }
            if let Ok(s) = serde_json::from_value::<NodeStatus>(data.clone()) {
                record(history, t.id, &s);
                views.set(
                    t.id,
                    NodeView {
                        raft_id: s.node_id,
                        leader: s.is_leader(),
                        term: s.term,
                        jobs,
                        at: Instant::now(),
                    },
                );
            }
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}
