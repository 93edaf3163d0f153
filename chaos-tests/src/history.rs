//! An append-only history of operations, Jepsen style: each client (and the nemesis) invokes
//! an operation, which then completes as `ok`, `fail` (it certainly did not happen) or `info`
//! (unknown: it may or may not have happened). Written as JSON lines as it grows, so a crashed
//! run still leaves its history for inspection.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::net::NodeId;

/// Who did an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    /// A client process (a logical thread of the workload; one operation at a time).
    Client(u32),
    /// The fault injector.
    Nemesis,
    /// Something watching a node's state (leader, term, members), not changing it.
    Observer(NodeId),
}

/// The phase of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Started.
    Invoke,
    /// Completed, and took effect.
    Ok,
    /// Completed, and certainly did not take effect.
    Fail,
    /// Outcome unknown (timeout, crash), or a nemesis or observation record.
    Info,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history.
    pub index: u64,
    /// Nanoseconds since the history began (monotonic clock).
    pub time_ns: u64,
    /// Who.
    pub actor: Actor,
    /// Phase.
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// The operation's name (`write`, `read`, `add`, `leader`, `partition`, ...).
    pub f: String,
    /// Its argument or result.
    pub value: Value,
    /// The node the operation went to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
}

#[derive(Debug)]
struct Inner {
    ops: Vec<Op>,
    file: Option<(PathBuf, File)>,
    write_error: Option<String>,
}

/// A shared, append-only history. Clones append to the same history.
#[derive(Debug, Clone)]
pub struct History {
    start: Instant,
    inner: Arc<Mutex<Inner>>,
}

impl Default for History {
    fn default() -> History {
        History::new()
    }
}

impl History {
    /// An in-memory history.
    pub fn new() -> History {
        History {
            start: Instant::now(),
            inner: Arc::new(Mutex::new(Inner {
                ops: Vec::new(),
                file: None,
                write_error: None,
            })),
        }
    }

    /// A history that also appends every entry to `path` as a JSON line.
    pub fn with_file(path: &Path) -> Result<History> {
        let file = File::create(path).map_err(|source| Error::Io {
            what: "create",
            path: path.into(),
            source,
        })?;
        let h = History::new();
        h.lock().file = Some((path.to_path_buf(), file));
        Ok(h)
    }

    /// A history of already recorded operations (e.g. read back with [`read_jsonl`]).
    pub fn from_ops(ops: Vec<Op>) -> History {
        let h = History::new();
        h.lock().ops = ops;
        h
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking recorder cannot leave the Vec half-pushed; keep recording.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one entry and returns its index.
    pub fn record(
        &self,
        actor: Actor,
        kind: OpKind,
        f: &str,
        value: Value,
        node: Option<NodeId>,
    ) -> u64 {
        let time_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut inner = self.lock();
        let op = Op {
            index: inner.ops.len() as u64,
            time_ns,
            actor,
            kind,
            f: f.to_owned(),
            value,
            node,
        };
        if let Some((path, file)) = &mut inner.file {
            let line = serde_json::to_string(&op).unwrap_or_default();
            if let Err(e) = writeln!(file, "{line}") {
                let msg = format!("{}: {e}", path.display());
                inner.write_error.get_or_insert(msg);
            }
        }
        let index = op.index;
        inner.ops.push(op);
        index
    }

    /// Starts an operation; complete it with [`Invocation::ok`], `fail` or `info`. Dropped
    /// without completing, it is recorded as `info` (outcome unknown).
    pub fn invoke(&self, actor: Actor, f: &str, value: Value, node: Option<NodeId>) -> Invocation {
        self.record(actor, OpKind::Invoke, f, value, node);
        Invocation {
            history: self.clone(),
            actor,
            f: f.to_owned(),
            node,
            done: false,
        }
    }

    /// Records an observation of a node (e.g. `leader` with `{"node":1,"term":3}`).
    pub fn observe(&self, node: NodeId, f: &str, value: Value) -> u64 {
        self.record(Actor::Observer(node), OpKind::Ok, f, value, Some(node))
    }

    /// A copy of every entry so far.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().ops.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first error writing the JSON-lines file, if any (recording goes on in memory).
    pub fn write_error(&self) -> Option<String> {
        self.lock().write_error.clone()
    }

    /// Nanoseconds since the history began, on the same clock as [`Op::time_ns`].
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// An invoked operation waiting for its completion.
#[derive(Debug)]
pub struct Invocation {
    history: History,
    actor: Actor,
    f: String,
    node: Option<NodeId>,
    done: bool,
}

impl Invocation {
    fn complete(mut self, kind: OpKind, value: Value) -> u64 {
        self.done = true;
        self.history
            .record(self.actor, kind, &self.f, value, self.node)
    }

    /// It took effect; `value` is its result.
    pub fn ok(self, value: Value) -> u64 {
        self.complete(OpKind::Ok, value)
    }

    /// It certainly did not take effect.
    pub fn fail(self, value: Value) -> u64 {
        self.complete(OpKind::Fail, value)
    }

    /// Its outcome is unknown.
    pub fn info(self, value: Value) -> u64 {
        self.complete(OpKind::Info, value)
    }
}

impl Drop for Invocation {
    fn drop(&mut self) {
        if !self.done {
            let v = serde_json::json!({"error": "not completed"});
            self.history
                .record(self.actor, OpKind::Info, &self.f, v, self.node);
        }
    }
}

/// Reads a JSON-lines history written by [`History::with_file`].
pub fn read_jsonl(path: &Path) -> Result<Vec<Op>> {
    let bad = |line, reason: String| Error::History {
        path: path.into(),
        line,
        reason,
    };
    let file = File::open(path).map_err(|e| bad(0, e.to_string()))?;
    let mut ops = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, e.to_string()))?;
        if !line.trim().is_empty() {
            ops.push(serde_json::from_str(&line).map_err(|e| bad(i + 1, e.to_string()))?);
        }
    }
    Ok(ops)
}

/// An operation with its completion (none if the history ended first).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The invoke entry.
    pub invoke: Op,
    /// The matching ok/fail/info entry.
    pub complete: Option<Op>,
}

/// Pairs each invocation with the next completion by the same actor (each actor has at most
/// one operation outstanding). Entries that are not part of an invocation are skipped.
pub fn pairs(ops: &[Op]) -> Vec<Pair> {
    let mut open: std::collections::HashMap<Actor, usize> = std::collections::HashMap::new();
    let mut out: Vec<Pair> = Vec::new();
    for op in ops {
        match op.kind {
            OpKind::Invoke => {
                open.insert(op.actor, out.len());
                out.push(Pair {
                    invoke: op.clone(),
                    complete: None,
                });
            }
            _ => {
                if let Some(i) = open.remove(&op.actor) {
                    if let Some(p) = out.get_mut(i) {
                        p.complete = Some(op.clone());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_round_trips_through_json_lines() {
        let dir = std::env::temp_dir().join(format!("stc-history-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("history.jsonl");
        let h = History::with_file(&path).unwrap_or_default();
        h.invoke(Actor::Client(0), "write", json!(1), Some(NodeId(2)))
            .ok(json!(1));
        drop(h.invoke(Actor::Client(1), "read", json!(null), None));
        h.record(Actor::Nemesis, OpKind::Info, "kill", json!([1]), None);
        let back = read_jsonl(&path);
        let _ = std::fs::remove_dir_all(&dir);
        let back = back.unwrap_or_default();
        assert_eq!(back, h.ops());
        assert_eq!(back.len(), 5);
        assert_eq!(
            back[3].kind,
            OpKind::Info,
            "a dropped invocation completes as info"
        );
    }

    #[test]
    fn pairs_match_completions_to_their_actor() {
        let h = History::new();
        let a = h.invoke(Actor::Client(0), "write", json!(1), None);
        let b = h.invoke(Actor::Client(1), "write", json!(2), None);
        b.fail(json!(null));
        a.ok(json!(null));
        let p = pairs(&h.ops());
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].complete.as_ref().map(|c| c.kind), Some(OpKind::Ok));
        assert_eq!(p[1].complete.as_ref().map(|c| c.kind), Some(OpKind::Fail));
    }
}
