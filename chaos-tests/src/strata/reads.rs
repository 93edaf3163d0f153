//! The workload's linearizable reads: a client of its own (client 2) reads the registry's
//! workload entries with `GET /api/v1/cluster/stores?consistent=true` all through the run,
//! faults included, mostly from the node that last claimed leadership and sometimes from any
//! node (a follower must refuse). Recorded as `lread`: `ok` with the sorted entries, `fail` when
//! the node refused as a non-leader (nothing was read), `info` on a timeout, a deposed leader's
//! refusal or anything else (indeterminate; a read has no effect either way).
//! [`crate::checker::linear_set::LinearizableSet`] judges them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::observer::{LeaderHint, Target};
use super::status::get_json;
use super::WORKLOAD_PREFIX;
use crate::history::{Actor, History};
use crate::rng::Rng;

/// The history's name for a linearizable read.
pub const READ_F: &str = "lread";

/// The node API path of a linearizable registry read.
pub const CONSISTENT_STORES: &str = "/api/v1/cluster/stores?consistent=true";

/// What the reader did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Reads invoked.
    pub invoked: usize,
    /// Reads that returned the registry.
    pub ok: usize,
    /// Reads a follower refused.
    pub refused: usize,
}

/// One read's result.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    /// The registry's workload entries, sorted.
    Entries(Vec<String>),
    /// The node is not the leader (the body names the leader it knows).
    NotLeader(Value),
    /// Anything else: timeout, unreachable, no quorum, unexpected answer.
    Unknown(String),
}

/// Reads `target`'s registry linearizably, waiting at most `timeout` for each step.
pub fn read_once(target: &Target, timeout: Duration) -> ReadOutcome {
    let (code, v) = match get_json(target.http, CONSISTENT_STORES, timeout) {
        Ok(r) => r,
        Err(e) => return ReadOutcome::Unknown(e.to_string()),
    };
    if code == 200 && v["status"] == "success" && v["data"]["consistent"] == true {
        let Some(stores) = v["data"]["stores"].as_array() else {
            return ReadOutcome::Unknown(format!("no stores in {v:.200}"));
        };
        let mut entries: Vec<String> = stores
            .iter()
            .filter_map(|s| s["address"].as_str())
            .filter(|a| a.starts_with(WORKLOAD_PREFIX))
            .map(str::to_owned)
            .collect();
        entries.sort();
        return ReadOutcome::Entries(entries);
    }
    let error = v["error"].as_str().unwrap_or_default();
    if code == 503 && error.starts_with("not the leader") {
        return ReadOutcome::NotLeader(json!({"error": error, "leader": v["data"]}));
    }
    ReadOutcome::Unknown(format!("HTTP {code}: {v}"))
}

/// Reads every `interval` until stopped.
#[derive(Debug, Clone)]
pub struct LinearReads {
    /// Pause between two reads.
    pub interval: Duration,
    /// Timeout of one read (the node gives up confirming after 2 s).
    pub timeout: Duration,
    /// Seed of the choice of node.
    pub seed: u64,
}

impl LinearReads {
    /// Runs until `stop`, recording every read as client 2.
    pub fn run(
        &self,
        targets: &[Target],
        history: &History,
        hint: &LeaderHint,
        stop: &AtomicBool,
    ) -> ReadStats {
        let mut rng = Rng::new(self.seed);
        let mut stats = ReadStats::default();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            // One read in five goes to any node, so followers' refusals are exercised too.
            let leader = hint.leader().filter(|_| rng.below(5) != 0);
            let target = leader
                .and_then(|l| targets.iter().find(|t| t.id == l))
                .or_else(|| rng.pick(targets));
            let Some(target) = target else { break };
            stats.invoked += 1;
            let op = history.invoke(Actor::Client(2), READ_F, Value::Null, Some(target.id));
            match read_once(target, self.timeout) {
                ReadOutcome::Entries(e) => {
                    stats.ok += 1;
                    op.ok(json!(e));
                }
                ReadOutcome::NotLeader(v) => {
                    stats.refused += 1;
                    op.fail(v);
                }
                ReadOutcome::Unknown(e) => {
                    op.info(json!(e));
                }
            }
            let rest = self.interval.saturating_sub(started.elapsed());
            let until = Instant::now() + rest;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
            }
        }
        stats
    }
}
