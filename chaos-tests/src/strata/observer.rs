//! Watching every node: one thread per node polls its status and records what it reports as
//! observations in the history (Jepsen's passive checkers read these):
//!
//! - `leader` `{"node": id, "term": t}` when the node says it leads term t;
//! - `leader_view` `{"node": leader, "term": t}`: whom the node follows in its term;
//! - `commit` `{"node_id": id, "commit": c, "applied": a}`;
//! - `members` `{"voters": [..], "learners": [..], "table": [..]}`;
//! - `converge` `{"leader": l, "voters": [..], "registry": n, "digest": h}`: what all nodes
//!   must agree on after healing (`registry`/`digest`: count and hash of the workload's entries).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::status::{fetch, NodeStatus};
use super::{GRPC_PORT, HTTP_PORT, WORKLOAD_PREFIX};
use crate::cluster::Cluster;
use crate::history::History;
use crate::net::NodeId;

/// Where a node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The harness' node.
    pub id: NodeId,
    /// Its HTTP address (status).
    pub http: SocketAddr,
    /// Its gRPC address (store registry).
    pub grpc: SocketAddr,
}

/// Every node of `cluster`, reachable from the test process.
pub fn targets(cluster: &Cluster) -> Vec<Target> {
    cluster
        .net()
        .hosts()
        .map(|h| Target {
            id: h.id,
            http: SocketAddr::from((h.addr, HTTP_PORT)),
            grpc: SocketAddr::from((h.addr, GRPC_PORT)),
        })
        .collect()
}

/// The most recent leadership claim seen (highest term), for the workload and the nemesis.
#[derive(Debug, Clone, Default)]
pub struct LeaderHint(Arc<Mutex<Option<(u64, NodeId, u64)>>>);

impl LeaderHint {
    /// Records that `node` (Raft id `raft_id`) claims to lead `term`.
    pub fn offer(&self, term: u64, node: NodeId, raft_id: u64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none_or(|(t, _, _)| term >= t) {
            *g = Some((term, node, raft_id));
        }
    }

    /// The harness node that most recently claimed leadership in the highest term seen.
    pub fn leader(&self) -> Option<NodeId> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(_, n, _)| n)
    }
}

/// Polls nodes and records observations.
#[derive(Debug, Clone)]
pub struct Observer {
    /// Time between two polls of one node.
    pub interval: Duration,
    /// Connect and read timeout of one poll (a paused node costs this much).
    pub timeout: Duration,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(1),
        }
    }
}

impl Observer {
    /// Polls every target until `stop` is set (one thread per node); returns how many polls
    /// were answered.
    pub fn run(
        &self,
        targets: &[Target],
        history: &History,
        hint: &LeaderHint,
        stop: &AtomicBool,
    ) -> usize {
        std::thread::scope(|s| {
            let threads: Vec<_> = targets
                .iter()
                .map(|t| s.spawn(move || self.watch(*t, history, hint, stop)))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap_or(0)).sum()
        })
    }

    fn watch(&self, t: Target, history: &History, hint: &LeaderHint, stop: &AtomicBool) -> usize {
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Ok(s) = fetch(t.http, self.timeout) {
                answered += 1;
                record(history, t.id, &s);
                if s.is_leader() {
                    hint.offer(s.term, t.id, s.node_id);
                }
            }
            let rest = self.interval.saturating_sub(started.elapsed());
            std::thread::sleep(rest);
        }
        answered
    }
}

/// Records one status as the observations listed in the module documentation.
pub fn record(history: &History, id: NodeId, s: &NodeStatus) {
    if s.is_leader() {
        history.observe(id, "leader", json!({"node": s.node_id, "term": s.term}));
    }
    if let Some(l) = s.leader_id {
        history.observe(id, "leader_view", json!({"node": l, "term": s.term}));
    }
    if let Some(c) = s.commit_index {
        history.observe(
            id,
            "commit",
            json!({"node_id": s.node_id, "commit": c, "applied": s.applied_index}),
        );
    }
    let voters = s.voters();
    history.observe(
        id,
        "members",
        json!({"voters": voters, "learners": s.learners(), "table": s.member_table()}),
    );
    let registry = s.stores_with_prefix(WORKLOAD_PREFIX);
    history.observe(
        id,
        "converge",
        json!({"leader": s.leader_id, "voters": voters, "registry": registry.len(),
               "digest": digest(&registry)}),
    );
}

/// FNV-1a over the entries, so equal sets compare equal without storing them every poll.
fn digest(entries: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for e in entries {
        for b in e.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Every target's status now, `None` for a node that does not answer.
pub fn snapshot(targets: &[Target], timeout: Duration) -> Vec<(NodeId, Option<NodeStatus>)> {
    targets
        .iter()
        .map(|t| (t.id, fetch(t.http, timeout).ok()))
        .collect()
}
