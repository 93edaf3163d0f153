//! The leader's half of coordinated compaction: plan jobs from the bucket, create them in the
//! job table (ids derived from the inputs, so a re-plan of the same work is refused as a
//! duplicate), assign pending and lapsed jobs to compact-role members (fewest running first,
//! at most `--compact.concurrency` each, avoiding a node whose lease just lapsed), and drop
//! finished jobs after a while. Only the node that leads acts; the others' loops idle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use raft::{now_ms, ClusterState, Command, JobState, NodeId, RaftNode, Role, WriteError};
use storage::compact::jobs::{InFlight, JobResult, JobSpec, KINDS, KIND_COMPACT, KIND_SWEEP};
use storage::compact::Compactor;

use super::metrics::CompactMetrics;

/// Timing and limits of the leader's loop.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Time between plans when no job finished meanwhile; also the sweep period.
    pub plan_interval: Duration,
    /// Length of an assignment's lease (ms).
    pub lease_ms: i64,
    /// Jobs running at once per node.
    pub concurrency: usize,
    /// How long a finished job stays in the table (its id refuses a re-plan meanwhile).
    pub keep_done: Duration,
    /// How long a failed job stays before it may be planned again.
    pub keep_failed: Duration,
}

/// The leader's planner and assigner.
pub struct Planner {
    /// The compactor over the bucket.
    pub compactor: Compactor,
    /// The Raft node.
    pub node: RaftNode,
    /// Timing.
    pub config: LeaderConfig,
    /// Metrics.
    pub metrics: CompactMetrics,
    /// Nodes whose lease lapsed recently, and since when: skipped while others can take jobs.
    suspects: BTreeMap<NodeId, Instant>,
    /// Last assignee seen per job, to tell whose lease lapsed once the job is pending again.
    last_assignee: BTreeMap<String, NodeId>,
    next_plan: Option<Instant>,
    finished_seen: usize,
}

/// Whether a job table entry belongs to the compactor.
pub fn is_compactor_job(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// Inputs of unfinished compactor jobs, and outputs of committed ones.
pub fn in_flight(state: &ClusterState) -> InFlight {
    let mut f = InFlight::default();
    for job in state.jobs.values().filter(|j| is_compactor_job(&j.kind)) {
        match &job.state {
            JobState::Done { result, .. } => {
                if let Some(out) = JobResult::decode(result).ok().and_then(|r| r.output) {
                    f.committed.insert(out);
                }
            }
            _ => {
                if let Ok(spec) = JobSpec::decode(&job.spec) {
                    f.busy.extend(spec.inputs());
                }
            }
        }
    }
    f
}

impl Planner {
    /// A planner that plans at once when it first leads.
    pub fn new(
        compactor: Compactor,
        node: RaftNode,
        config: LeaderConfig,
        metrics: CompactMetrics,
    ) -> Self {
        Planner {
            compactor,
            node,
            config,
            metrics,
            suspects: BTreeMap::new(),
            last_assignee: BTreeMap::new(),
            next_plan: None,
            finished_seen: 0,
        }
    }

    /// One round: plan when due (or when jobs finished since the last plan), assign, tidy.
    /// Does nothing on a node that does not lead.
    pub async fn tick(&mut self) {
        let state = self.node.local_state();
        self.metrics.observe_jobs(&state);
        if !self.node.is_leader() {
            self.next_plan = None;
            return;
        }
        let finished = state
            .jobs
            .values()
            .filter(|j| is_compactor_job(&j.kind) && matches!(j.state, JobState::Done { .. }))
            .count();
        let due = self.next_plan.is_none_or(|t| Instant::now() >= t);
        if due || finished != self.finished_seen {
            self.finished_seen = finished;
            self.next_plan = Some(Instant::now() + self.config.plan_interval);
            self.plan(&state).await;
        }
        let state = self.node.local_state();
        self.assign(&state).await;
        self.tidy(&state).await;
    }

    async fn plan(&mut self, state: &ClusterState) {
        let period = i64::try_from(self.config.plan_interval.as_millis()).unwrap_or(i64::MAX);
        let jobs = match self.compactor.plan_jobs(&in_flight(state), period).await {
            Ok(j) => j,
            Err(e) => {
                self.metrics.record_failure();
                tracing::warn!(error = %e, "planning compaction failed; retrying next round");
                return;
            }
        };
        self.metrics.set_backlog(&jobs);
        // One sweep at a time: a new one waits until the last has finished.
        let sweeping = state
            .jobs
            .values()
            .any(|j| j.kind == KIND_SWEEP && !matches!(j.state, JobState::Done { .. }));
        for spec in jobs {
            let id = spec.id();
            if state.jobs.contains_key(&id) || (sweeping && spec.kind() == KIND_SWEEP) {
                continue;
            }
            let cmd = Command::CreateJob {
                job_id: id.clone(),
                kind: spec.kind().to_string(),
                spec: spec.encode(),
                now_ms: now_ms(),
            };
            match self.node.client_write(cmd).await {
                Ok(_) => tracing::info!(job = %id, "planned job"),
                Err(WriteError::Rejected(r)) => {
                    tracing::debug!(job = %id, reason = %r, "job not created")
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot create job");
                    return;
                }
            }
        }
    }

    async fn assign(&mut self, state: &ClusterState) {
        let now = now_ms();
        let lease_grace = Duration::from_millis(u64::try_from(self.config.lease_ms).unwrap_or(0));
        self.suspects
            .retain(|_, since| since.elapsed() < 2 * lease_grace);
        let workers: Vec<NodeId> = state
            .members
            .values()
            .filter(|m| m.roles.contains(&Role::Compact))
            .map(|m| m.node_id)
            .collect();
        let mut load: BTreeMap<NodeId, usize> = workers.iter().map(|w| (*w, 0)).collect();
        let mut todo = Vec::new();
        for job in state.jobs.values().filter(|j| is_compactor_job(&j.kind)) {
            match &job.state {
                JobState::Assigned {
                    node_id,
                    lease_expiry_ms,
                    ..
                } => {
                    self.last_assignee.insert(job.id.clone(), *node_id);
                    if *lease_expiry_ms <= now {
                        self.suspects.insert(*node_id, Instant::now());
                        todo.push((job.kind.clone(), job.id.clone()));
                    } else if let Some(l) = load.get_mut(node_id) {
                        *l += 1;
                    }
                }
                JobState::Pending => {
                    if job.attempts > 0 {
                        if let Some(prev) = self.last_assignee.get(&job.id) {
                            self.suspects.entry(*prev).or_insert_with(Instant::now);
                        }
                    }
                    todo.push((job.kind.clone(), job.id.clone()));
                }
                JobState::Done { .. } => {
                    self.last_assignee.remove(&job.id);
                }
            }
        }
        // Compactions first, sweeps last: a sweep can wait, a backlog of merges should not.
        todo.sort_by_key(|(kind, id)| (kind_priority(kind), id.clone()));
        for (_, id) in todo {
            let Some(to) = pick(&load, &self.suspects, self.config.concurrency) else {
                return;
            };
            let cmd = Command::AssignJob {
                job_id: id.clone(),
                node_id: to,
                lease_expiry_ms: now_ms() + self.config.lease_ms,
                now_ms: now_ms(),
            };
            match self.node.client_write(cmd).await {
                Ok(_) => {
                    tracing::info!(job = %id, node = to, "assigned job");
                    *load.entry(to).or_default() += 1;
                }
                Err(e) => tracing::debug!(job = %id, error = %e, "job not assigned"),
            }
        }
    }

    async fn tidy(&mut self, state: &ClusterState) {
        let now = now_ms();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        for job in state.jobs.values().filter(|j| is_compactor_job(&j.kind)) {
            let JobState::Done {
                result,
                completed_at_ms,
                ..
            } = &job.state
            else {
                continue;
            };
            let failed = JobResult::decode(result).map_or(true, |r| r.status == JobResult::FAILED);
            let keep = if failed {
                self.config.keep_failed
            } else {
                self.config.keep_done
            };
            if now.saturating_sub(*completed_at_ms) < ms(keep) {
                continue;
            }
            let cmd = Command::DeleteJob {
                job_id: job.id.clone(),
            };
            if let Err(e) = self.node.client_write(cmd).await {
                tracing::debug!(job = %job.id, error = %e, "finished job not removed");
            }
        }
    }
}

fn kind_priority(kind: &str) -> u8 {
    match kind {
        KIND_COMPACT => 0,
        KIND_SWEEP => 2,
        _ => 1,
    }
}

/// The member to take the next job: the least loaded below `concurrency`, preferring nodes
/// that are not suspect (lowest id on ties); `None` when every node is full.
pub fn pick(
    load: &BTreeMap<NodeId, usize>,
    suspects: &BTreeMap<NodeId, Instant>,
    concurrency: usize,
) -> Option<NodeId> {
    let open = |n: &&NodeId| load.get(*n).copied().unwrap_or(0) < concurrency.max(1);
    let healthy: BTreeSet<NodeId> = load
        .keys()
        .filter(open)
        .filter(|n| !suspects.contains_key(*n))
        .copied()
        .collect();
    let pool: Vec<NodeId> = if healthy.is_empty() {
        load.keys().filter(open).copied().collect()
    } else {
        healthy.into_iter().collect()
    };
    pool.into_iter()
        .min_by_key(|n| (load.get(n).copied().unwrap_or(0), *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_spread_over_the_least_loaded_healthy_nodes() {
        let mut load: BTreeMap<NodeId, usize> = [(1, 1), (2, 0), (3, 0)].into();
        let none = BTreeMap::new();
        assert_eq!(pick(&load, &none, 2), Some(2));
        let suspects: BTreeMap<NodeId, Instant> = [(2, Instant::now())].into();
        assert_eq!(pick(&load, &suspects, 2), Some(3));
        load.insert(3, 2);
        load.insert(1, 2);
        // Only the suspect has room: it still gets the job rather than nobody.
        assert_eq!(pick(&load, &suspects, 2), Some(2));
        load.insert(2, 2);
        assert_eq!(pick(&load, &suspects, 2), None);
    }
}
