//! The invariants the simulation checks as it runs. Nodes report to one [`Invariants`] what
//! they apply (through [`super::node::RecordingSm`]) and what their metrics say; every report is
//! checked at once and a breach is kept as a readable violation for the driver to fail on.
//!
//! - election safety: no two nodes lead the same term (from committed votes and leader states);
//! - state-machine safety: every node applies the same entry, with the same outcome and the
//!   same resulting state, at each index, and applies indexes in order without gaps;
//! - a snapshot installs exactly the state other nodes had at its last index;
//! - acknowledged writes are the entries committed at their log ids;
//! - the job oracle ([`super::oracle`]): no result is accepted under a stale fencing token.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use openraft::{EntryPayload, LogId};
use raft::types::Entry;
use raft::{ClusterState, NodeId, Request, Response};

use super::oracle::JobOracle;

/// What one index was applied as, first seen on `node`.
#[derive(Debug, Clone)]
struct Applied {
    log_id: LogId<NodeId>,
    payload: String,
    response: String,
    state: u64,
    node: NodeId,
    request: Option<Request>,
}

#[derive(Default)]
struct State {
    applied: BTreeMap<u64, Applied>,
    /// Per node, the next index it must apply (reset on restart and snapshot install).
    next: BTreeMap<NodeId, u64>,
    /// Term -> (leader, first observer).
    leaders: BTreeMap<u64, (NodeId, NodeId)>,
    /// Acknowledged writes: log id and the request.
    acked: Vec<(LogId<NodeId>, String)>,
    oracle: JobOracle,
    /// The next index the oracle judges.
    oracle_next: u64,
    violations: Vec<String>,
    snapshots_installed: u64,
}

/// The shared checker of one seed's run.
#[derive(Default)]
pub struct Invariants {
    state: Mutex<State>,
}

/// A digest of a cluster state (its canonical JSON: maps are ordered).
pub fn digest(state: &ClusterState) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(state)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

fn payload_of(entry: &Entry) -> (String, Option<Request>) {
    match &entry.payload {
        EntryPayload::Blank => ("blank".to_string(), None),
        EntryPayload::Normal(r) => (
            serde_json::to_string(r).unwrap_or_default(),
            Some(r.clone()),
        ),
        EntryPayload::Membership(m) => (format!("membership {m}"), None),
    }
}

impl Invariants {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node (re)opened its storage with this much applied.
    pub fn node_opened(&self, node: NodeId, last_applied: Option<LogId<NodeId>>) {
        self.lock()
            .next
            .insert(node, last_applied.map_or(0, |l| l.index + 1));
    }

    /// `node` applied `entry` with `response`, leaving a state of digest `state`.
    pub fn applied(&self, node: NodeId, entry: &Entry, response: &Response, state: u64) {
        let mut s = self.lock();
        let index = entry.log_id.index;
        let expected = s.next.get(&node).copied().unwrap_or(0);
        if index != expected {
            s.violations.push(format!(
                "node {node} applied index {index} but its next was {expected} (gap or repeat)"
            ));
        }
        s.next.insert(node, index + 1);
        let (payload, request) = payload_of(entry);
        let this = Applied {
            log_id: entry.log_id,
            payload,
            response: serde_json::to_string(response).unwrap_or_default(),
            state,
            node,
            request,
        };
        match s.applied.get(&index) {
            Some(first) => {
                let differs = first.log_id != this.log_id
                    || first.payload != this.payload
                    || first.response != this.response
                    || first.state != this.state;
                if differs {
                    let msg = format!(
                        "index {index} applied differently: node {} applied {} {} -> {} (state {:x}); node {node} applied {} {} -> {} (state {:x})",
                        first.node, first.log_id, first.payload, first.response, first.state,
                        this.log_id, this.payload, this.response, this.state
                    );
                    s.violations.push(msg);
                }
            }
            None => {
                s.applied.insert(index, this);
                Self::judge_jobs(&mut s);
            }
        }
    }

    /// `node` installed a snapshot up to `last` whose state has digest `state`.
    pub fn snapshot_installed(&self, node: NodeId, last: Option<LogId<NodeId>>, state: u64) {
        let mut s = self.lock();
        s.snapshots_installed += 1;
        let Some(last) = last else { return };
        s.next.insert(node, last.index + 1);
        if let Some(a) = s.applied.get(&last.index) {
            if a.log_id != last || a.state != state {
                let msg = format!(
                    "node {node} installed a snapshot at {last} with state {state:x}, but node {} applied {} with state {:x} there",
                    a.node, a.log_id, a.state
                );
                s.violations.push(msg);
            }
        }
    }

    /// `observer` saw `leader` lead `term` (a committed vote or its own leader state).
    pub fn leader_seen(&self, observer: NodeId, term: u64, leader: NodeId) {
        let mut s = self.lock();
        match s.leaders.get(&term) {
            Some((l, first)) if *l != leader => {
                let msg = format!(
                    "term {term} has two leaders: node {l} (seen by node {first}) and node {leader} (seen by node {observer})"
                );
                if !s.violations.contains(&msg) {
                    s.violations.push(msg);
                }
            }
            Some(_) => {}
            None => {
                s.leaders.insert(term, (leader, observer));
            }
        }
    }

    /// A client write was acknowledged as committed at `log_id`.
    pub fn acked(&self, log_id: LogId<NodeId>, request: &Request) {
        let payload = serde_json::to_string(request).unwrap_or_default();
        let mut s = self.lock();
        s.acked.push((log_id, payload));
    }

    /// Checks that every acknowledged write applied so far is the entry at its log id; with
    /// `complete`, also that every one of them has been applied somewhere.
    pub fn check_acked(&self, complete: bool) {
        let mut s = self.lock();
        let mut found = Vec::new();
        for (log_id, payload) in &s.acked {
            match s.applied.get(&log_id.index) {
                Some(a) if a.log_id == *log_id && a.payload == *payload => {}
                Some(a) => found.push(format!(
                    "acknowledged write {payload} at {log_id} was replaced by {} {}",
                    a.log_id, a.payload
                )),
                None if complete => found.push(format!(
                    "acknowledged write {payload} at {log_id} was never applied"
                )),
                None => {}
            }
        }
        // Report each loss once.
        for f in found {
            if !s.violations.contains(&f) {
                s.violations.push(f);
            }
        }
    }

    /// The violations found so far.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Records a violation found by the driver (convergence, membership).
    pub fn violate(&self, msg: String) {
        self.lock().violations.push(msg);
    }

    /// Figures for the seed's summary.
    pub fn figures(&self) -> Figures {
        let s = self.lock();
        Figures {
            committed: s.applied.len() as u64,
            terms: s.leaders.len() as u64,
            acked: s.acked.len() as u64,
            snapshots_installed: s.snapshots_installed,
            results_accepted: s.oracle.accepted_results,
            results_refused: s.oracle.refused_results,
            leaders: s.leaders.values().map(|(l, _)| *l).collect(),
        }
    }

    fn judge_jobs(s: &mut State) {
        while let Some(a) = s.applied.get(&s.oracle_next) {
            let (index, term) = (a.log_id.index, a.log_id.leader_id.term);
            if let Some(req) = &a.request {
                let resp: Response = serde_json::from_str(&a.response).unwrap_or_default();
                let v = s.oracle.apply(index, term, &req.command, &resp);
                s.violations.extend(v);
            }
            s.oracle_next += 1;
        }
    }
}

/// Figures of one seed's run.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Distinct committed indexes applied.
    pub committed: u64,
    /// Terms with an observed leader.
    pub terms: u64,
    /// Acknowledged client writes.
    pub acked: u64,
    /// Snapshots installed by lagging nodes.
    pub snapshots_installed: u64,
    /// Job results accepted.
    pub results_accepted: u64,
    /// Job results refused (stale, foreign or late tokens).
    pub results_refused: u64,
    /// Nodes that led some term.
    pub leaders: BTreeSet<NodeId>,
}
