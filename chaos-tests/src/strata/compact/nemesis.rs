//! The seeded faults of a tier-1 compaction run, each aimed at a running compaction job:
//!
//! - `kill-worker`: SIGKILL the job's worker; the job must be reassigned to another node
//!   (then the victim restarts);
//! - `isolate-worker`: cut the worker off from its peers (it still reaches the bucket, so it
//!   may finish and upload an output nobody commits) until the job is reassigned;
//! - `isolate-leader`: cut the leader off from its peers for a few seconds;
//! - `bucket-outage`: drop the worker's packets to the S3 server for a few seconds.
//!
//! Every fault and heal is recorded in the history as the nemesis.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::json;

use super::watch::Views;
use crate::cluster::Cluster;
use crate::error::Result;
use crate::history::{Actor, History, OpKind};
use crate::nemesis::{apply_recorded, heal_recorded, Fault, Grudge};
use crate::net::NodeId;
use crate::rng::Rng;

/// One kind of compaction fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactFault {
    /// SIGKILL the worker of a running job.
    KillWorker,
    /// Partition the worker of a running job from its peers.
    IsolateWorker,
    /// Partition the leader from its peers while a job runs.
    IsolateLeader,
    /// Drop the worker's traffic to the bucket while its job runs.
    BucketOutage,
}

impl CompactFault {
    /// Every kind.
    pub const ALL: [CompactFault; 4] = [
        CompactFault::KillWorker,
        CompactFault::IsolateWorker,
        CompactFault::IsolateLeader,
        CompactFault::BucketOutage,
    ];

    /// The name used in the history and in `TIER1_COMPACT_FAULTS`.
    pub fn name(self) -> &'static str {
        match self {
            CompactFault::KillWorker => "kill-worker",
            CompactFault::IsolateWorker => "isolate-worker",
            CompactFault::IsolateLeader => "isolate-leader",
            CompactFault::BucketOutage => "bucket-outage",
        }
    }

    /// Parses a comma-separated list of names; `None` names the first unknown one.
    pub fn parse_list(list: &str) -> std::result::Result<Vec<CompactFault>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|n| {
                CompactFault::ALL
                    .into_iter()
                    .find(|k| k.name() == n)
                    .ok_or_else(|| format!("unknown compaction fault {n:?}"))
            })
            .collect()
    }
}

/// What one fault did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The kind.
    pub kind: CompactFault,
    /// The job running when it struck.
    pub job: String,
    /// Its token then.
    pub token: String,
    /// The node hit.
    pub victim: NodeId,
    /// What became of the job, for the kinds that wait for a reassignment.
    pub reassigned: Option<Reassign>,
}

/// What became of a struck job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassign {
    /// It got a new token: the token and its owner.
    To(String),
    /// Its worker completed it under the old token before the fault took effect.
    FinishedFirst,
    /// Neither, before the deadline.
    Never,
}

/// Drives faults against a cluster, seeded.
pub struct CompactNemesis<'a> {
    /// The cluster.
    pub cluster: &'a mut Cluster,
    /// The history.
    pub history: &'a History,
    /// The watcher's views.
    pub views: &'a Views,
    /// The S3 server's address and port (target of bucket outages).
    pub bucket: (IpAddr, u16),
    /// The seeded randomness.
    pub rng: Rng,
    /// How long to wait for a running job before giving up on the next fault.
    pub job_wait: Duration,
}

/// How fresh a view must be to act on it.
const FRESH: Duration = Duration::from_secs(2);

impl CompactNemesis<'_> {
    /// Runs rounds of every kind in `kinds` (shuffled per round): the first round whole, then
    /// more until `limit` has passed; stops early when no job runs any more; returns the faults applied (the network is healed and every node
    /// runs again when it returns, also on error).
    pub fn run(&mut self, kinds: &[CompactFault], limit: Duration) -> Result<Vec<Applied>> {
        let started = Instant::now();
        let mut applied = Vec::new();
        let mut first_round = true;
        'rounds: while first_round || started.elapsed() < limit {
            let mut round = kinds.to_vec();
            self.rng.shuffle(&mut round);
            for kind in round {
                // The first round strikes with every kind, however long it takes.
                if !first_round && started.elapsed() >= limit {
                    break 'rounds;
                }
                let Some((job, worker)) = self.wait_running_job() else {
                    self.note(
                        "no-job",
                        json!({"waited_ms": self.job_wait.as_millis() as u64}),
                    );
                    break 'rounds;
                };
                let result = self.strike(kind, &job, worker);
                let healed = heal_recorded(self.cluster, self.history);
                applied.push(result?);
                healed?;
            }
            first_round = false;
        }
        Ok(applied)
    }

    fn note(&self, f: &str, value: serde_json::Value) {
        self.history
            .record(Actor::Nemesis, OpKind::Info, f, value, None);
    }

    fn wait_running_job(&self) -> Option<(super::check::JobSeen, NodeId)> {
        let deadline = Instant::now() + self.job_wait;
        while Instant::now() < deadline {
            if let Some(found) = self.views.running_job(FRESH) {
                return Some(found);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn hold(&mut self) -> Duration {
        Duration::from_millis(4_000 + self.rng.below(4_000) as u64)
    }

    /// Applies one fault aimed at `job` (run by `worker`), waits as the kind says, and returns
    /// what happened; the caller heals.
    fn strike(
        &mut self,
        kind: CompactFault,
        job: &super::check::JobSeen,
        worker: NodeId,
    ) -> Result<Applied> {
        let all = self.cluster.ids();
        let token = job.token.clone().unwrap_or_default();
        let victim = match kind {
            CompactFault::IsolateLeader => self.views.leader(FRESH).unwrap_or(worker),
            _ => worker,
        };
        self.note(
            "target",
            json!({"fault": kind.name(), "job": job.id, "token": token, "victim": victim}),
        );
        let wait_reassigned = match kind {
            CompactFault::KillWorker => {
                apply_recorded(
                    self.cluster,
                    self.history,
                    &Fault::Kill {
                        nodes: vec![victim],
                    },
                )?;
                Some(Duration::from_secs(40))
            }
            CompactFault::IsolateWorker => {
                let grudge = Grudge::isolate(victim, &all);
                apply_recorded(self.cluster, self.history, &Fault::Partition { grudge })?;
                Some(Duration::from_secs(30))
            }
            CompactFault::IsolateLeader => {
                let grudge = Grudge::isolate(victim, &all);
                apply_recorded(self.cluster, self.history, &Fault::Partition { grudge })?;
                std::thread::sleep(self.hold());
                None
            }
            CompactFault::BucketOutage => {
                self.bucket_outage(victim)?;
                std::thread::sleep(self.hold());
                None
            }
        };
        let victim_raft = self
            .views
            .fresh(Duration::MAX)
            .get(&victim)
            .map(|v| v.raft_id);
        let reassigned =
            wait_reassigned.map(|d| self.wait_reassigned(&job.id, &token, victim_raft, d));
        Ok(Applied {
            kind,
            job: job.id.clone(),
            token,
            victim,
            reassigned,
        })
    }

    /// Drops `victim`'s packets to the S3 server (healing flushes OUTPUT).
    fn bucket_outage(&mut self, victim: NodeId) -> Result<()> {
        let (host, port) = self.bucket;
        let (host, port) = (host.to_string(), port.to_string());
        let value = json!({"node": victim, "s3": format!("{host}:{port}")});
        self.history.record(
            Actor::Nemesis,
            OpKind::Invoke,
            "bucket-outage",
            value.clone(),
            None,
        );
        let rule = [
            "-A", "OUTPUT", "-d", &host, "-p", "tcp", "--dport", &port, "-j", "DROP",
        ];
        let r = self.cluster.net().iptables(victim, &rule);
        let done = match &r {
            Ok(()) => value,
            Err(e) => json!({"error": e.to_string()}),
        };
        self.history
            .record(Actor::Nemesis, OpKind::Info, "bucket-outage", done, None);
        r
    }

    /// Waits until job `id` shows a token other than `token` held by another node than the
    /// victim (`victim_raft`; the leader may first hand the job back to the dead node, whose
    /// lease then lapses too), or is done under `token`.
    fn wait_reassigned(
        &self,
        id: &str,
        token: &str,
        victim_raft: Option<u64>,
        within: Duration,
    ) -> Reassign {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(j) = self.views.job(id, FRESH) {
                match j.token.as_deref() {
                    Some(t) if t != token && j.owner != victim_raft => {
                        let to = format!("{t} on raft node {}", j.owner.unwrap_or_default());
                        self.note("reassigned", json!({"job": id, "to": to}));
                        return Reassign::To(to);
                    }
                    Some(_) if j.state == "done" => {
                        self.note("finished-first", json!({"job": id, "token": token}));
                        return Reassign::FinishedFirst;
                    }
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.note(
            "not-reassigned",
            json!({"job": id, "within_ms": within.as_millis() as u64}),
        );
        Reassign::Never
    }
}
