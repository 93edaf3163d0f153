//! The worker's half of coordinated compaction, on every compact-role node: run the jobs the
//! job table assigns to this node, renew their leases meanwhile (a refused renewal stops the
//! job: another node owns it now), report completion with the fencing token, and only once the
//! completion is committed mark the merged sources for deletion. A deposed worker's upload is
//! left to the bucket's judge: the next sweep finds two blocks with the same sources.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::{now_ms, Command, FencingToken, Job, JobState, NodeId, Response};
use storage::compact::jobs::{JobResult, JobSpec};
use storage::compact::Compactor;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::leader::is_compactor_job;
use super::metrics::CompactMetrics;
use super::report::Reporter;

/// Runs this node's assigned jobs.
#[derive(Clone)]
pub struct Worker {
    /// The compactor over the bucket.
    pub compactor: Compactor,
    /// Where reports go.
    pub reporter: Reporter,
    /// Lease length (ms); renewed every third of it.
    pub lease_ms: i64,
    /// Metrics.
    pub metrics: CompactMetrics,
    /// Tokens of jobs started here, kept until the job table no longer assigns them to this
    /// node: a follower's table may still show a job assigned after its completion was
    /// committed, and the job must not run twice.
    pub running: Arc<Mutex<BTreeSet<FencingToken>>>,
}

impl Worker {
    fn me(&self) -> NodeId {
        self.reporter.node.id()
    }

    /// Starts every job assigned to this node that is not running yet.
    pub fn tick(&self, stop: &watch::Receiver<bool>) {
        let state = self.reporter.node.local_state();
        let me = self.me();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|t| {
                state.jobs.get(&t.job_id).is_some_and(|j| {
                    matches!(&j.state, JobState::Assigned { node_id, token, .. } if *node_id == me && token == t)
                })
            });
        for job in state.jobs.values().filter(|j| is_compactor_job(&j.kind)) {
            let JobState::Assigned { node_id, token, .. } = &job.state else {
                continue;
            };
            if *node_id != self.me() {
                continue;
            }
            {
                let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                if !running.insert(token.clone()) {
                    continue;
                }
            }
            let w = self.clone();
            let (job, token, stop) = (job.clone(), token.clone(), stop.clone());
            let span = tracing::info_span!("job", id = %job.id, attempt = token.attempt, term = token.term);
            tokio::spawn(async move { w.run(job, token, stop).instrument(span).await });
        }
    }

    async fn run(&self, job: Job, token: FencingToken, stop: watch::Receiver<bool>) {
        let spec = match JobSpec::decode(&job.spec) {
            Ok(s) => s,
            Err(e) => {
                let result = JobResult {
                    status: JobResult::FAILED.into(),
                    error: format!("unreadable job spec: {e}"),
                    ..JobResult::default()
                };
                self.complete(&token, &result).await;
                return;
            }
        };
        tracing::info!(kind = %job.kind, "running job");
        self.metrics.job_started();
        let scratch = format!("job-{}-{}", token.attempt, fnv_name(&job.id));
        let delay = failpoint_delay();
        let work = async {
            // Test fault point: hold the job open so a test can kill its worker mid-job.
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            self.compactor.run_job(&spec, &scratch).await
        };
        let outcome = tokio::select! {
            r = work => Some(r),
            reason = self.keep_lease(&token, stop) => {
                tracing::warn!(reason = %reason, "job abandoned");
                None
            }
        };
        let Some(outcome) = outcome else {
            self.metrics.job_finished(&job.kind, "abandoned");
            return;
        };
        let result = match outcome {
            Ok((result, report)) => {
                self.metrics.record_job(&report);
                result
            }
            Err(e) => {
                tracing::warn!(error = %e, "job failed");
                JobResult {
                    status: JobResult::FAILED.into(),
                    error: e.to_string(),
                    ..JobResult::default()
                }
            }
        };
        if self.complete(&token, &result).await {
            let report = self.compactor.finish_job(&spec, &result).await;
            self.metrics.record_job(&report);
            self.metrics.job_finished(&job.kind, &result.status);
            tracing::info!(status = %result.status, output = ?result.output, "job completed");
        } else {
            self.metrics.job_finished(&job.kind, "refused");
        }
    }

    /// Renews the lease every third of its length; returns (ending the job) when a renewal is
    /// refused, the lease ran out without a successful renewal, or the node stops.
    async fn keep_lease(&self, token: &FencingToken, mut stop: watch::Receiver<bool>) -> String {
        let every = Duration::from_millis(u64::try_from(self.lease_ms / 3).unwrap_or(1000));
        let lease = Duration::from_millis(u64::try_from(self.lease_ms).unwrap_or(1000));
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return "node stopping".into(),
            }
            let now = now_ms();
            let cmd = Command::RenewLease {
                token: token.clone(),
                node_id: self.me(),
                lease_expiry_ms: now + self.lease_ms,
                now_ms: now,
            };
            match self.reporter.send(cmd).await {
                Ok(Response::Rejected { reason }) => return format!("renewal refused: {reason}"),
                Ok(_) => renewed = Instant::now(),
                Err(e) if renewed.elapsed() >= lease => {
                    return format!("lease ran out without a renewal ({e})")
                }
                Err(e) => tracing::debug!(error = %e, "lease renewal not delivered; retrying"),
            }
        }
    }

    /// Reports completion until the leader answers (or the lease is surely over); whether the
    /// completion was committed under a still-valid token.
    async fn complete(&self, token: &FencingToken, result: &JobResult) -> bool {
        let deadline =
            Instant::now() + Duration::from_millis(u64::try_from(self.lease_ms).unwrap_or(1000));
        loop {
            let cmd = Command::CompleteJob {
                token: token.clone(),
                node_id: self.me(),
                result: result.encode(),
                now_ms: now_ms(),
            };
            match self.reporter.send(cmd).await {
                Ok(Response::Rejected { reason }) => {
                    tracing::warn!(reason = %reason, "completion refused: the job is no longer ours; its output (if any) is left for the next sweep");
                    return false;
                }
                Ok(_) => return true,
                Err(e) if Instant::now() >= deadline => {
                    tracing::warn!(error = %e, "completion not delivered before the lease ended");
                    return false;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "completion not delivered; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Environment variable of the test fault point that delays every job by that many ms.
pub const FAILPOINT_JOB_DELAY: &str = "STRATA_FAILPOINT_COMPACT_JOB_DELAY_MS";

fn failpoint_delay() -> Option<Duration> {
    let ms: u64 = std::env::var(FAILPOINT_JOB_DELAY).ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// A file-name-safe tag for a job id (ids hold ':' and '+').
fn fnv_name(id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
