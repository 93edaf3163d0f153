//! The leader's half of coordinated compaction: plan jobs from the bucket index (refreshed
//! when it predates a committed job, see `storage::compact::view`), create them in the
//! job table (ids derived from the inputs, so a re-plan of the same work is refused as a
//! duplicate), assign pending and lapsed jobs to compact-role members (fewest running first,
//! at most `--compact.concurrency` each, avoiding a node that recently let a lease lapse or
//! reported a job failed), and drop finished jobs after a while. Only the node that leads acts;
//! the others' loops idle. Suspects are read from the replicated job table (lapses recorded in
//! the job, failed results kept for `keep_failed`), so a new leader avoids the same nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use raft::{now_ms, ClusterState, Command, JobState, NodeId, RaftNode, Role, WriteError};
use storage::compact::jobs::{InFlight, JobResult, JobSpec, KINDS, KIND_COMPACT, KIND_SWEEP};
use storage::compact::view::PlanView;
use storage::compact::Compactor;
use ulid::Ulid;

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
    next_plan: Option<Instant>,
    finished_seen: usize,
    /// Committed results that even a listing no longer shows (deleted since): not expected in
    /// the bucket index any more.
    gone: BTreeSet<Ulid>,
    /// Where the last plan read the bucket, to log a change once.
    last_view: Option<PlanView>,
}

/// Whether a job table entry belongs to the compactor.
pub fn is_compactor_job(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// Inputs of unfinished compactor jobs, and outputs and no-compact marks of committed ones.
pub fn in_flight(state: &ClusterState) -> InFlight {
    let mut f = InFlight::default();
    for job in state.jobs.values().filter(|j| is_compactor_job(&j.kind)) {
        match &job.state {
            JobState::Done { result, .. } => {
                if let Ok(r) = JobResult::decode(result) {
                    f.committed.extend(r.output);
                    f.no_compact.extend(r.no_compact);
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
            next_plan: None,
            finished_seen: 0,
            gone: BTreeSet::new(),
            last_view: None,
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

    /// How old a bucket index the plan trusts: sweeps rewrite it every plan interval, so an
    /// older one means sweeps are not running and a listing is safer.
    fn max_index_age_ms(&self) -> i64 {
        let interval = i64::try_from(self.config.plan_interval.as_millis()).unwrap_or(i64::MAX);
        interval.saturating_mul(3).max(60_000)
    }

    async fn plan(&mut self, state: &ClusterState) {
        let period = i64::try_from(self.config.plan_interval.as_millis()).unwrap_or(i64::MAX);
        let mut expected = in_flight(state);
        self.gone
            .retain(|id| expected.committed.contains(id) || expected.no_compact.contains(id));
        expected.committed.retain(|id| !self.gone.contains(id));
        expected.no_compact.retain(|id| !self.gone.contains(id));
        let planned = self
            .compactor
            .plan_jobs(&expected, period, self.max_index_age_ms())
            .await;
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                self.metrics.record_failure();
                tracing::warn!(error = %e, "planning compaction failed; retrying next round");
                return;
            }
        };
        self.metrics.record_plan(plan.view);
        if self.last_view != Some(plan.view) {
            tracing::info!(
                source = plan.view.source(),
                reason = plan.view.reason(),
                "planning from the bucket {}",
                if plan.view == PlanView::Index {
                    "index"
                } else {
                    "listing"
                }
            );
            self.last_view = Some(plan.view);
        }
        self.gone.extend(plan.gone);
        let jobs = plan.jobs;
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
        let suspects = suspects(state, now, 2 * self.config.lease_ms);
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
                    if *lease_expiry_ms <= now {
                        todo.push((job.kind.clone(), job.id.clone()));
                    } else if let Some(l) = load.get_mut(node_id) {
                        *l += 1;
                    }
                }
                JobState::Pending => todo.push((job.kind.clone(), job.id.clone())),
                JobState::Done { .. } => {}
            }
        }
        // Compactions first, sweeps last: a sweep can wait, a backlog of merges should not.
        todo.sort_by_key(|(kind, id)| (kind_priority(kind), id.clone()));
        for (_, id) in todo {
            let Some(to) = pick(&load, &suspects, self.config.concurrency) else {
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

/// Nodes to avoid at `now_ms`, each with the time (ms) it stops being suspect: the holder of a
/// lease that ran out (lapses the job table recorded, and assignments whose lease is over but
/// not yet taken back) and the node that reported a job failed, for `window_ms` after the fact.
/// Everything comes from the replicated state, so every leader reaches the same answer.
pub fn suspects(state: &ClusterState, now_ms: i64, window_ms: i64) -> BTreeMap<NodeId, i64> {
    let mut out: BTreeMap<NodeId, i64> = BTreeMap::new();
    let mut note = |node: NodeId, at: i64| {
        let until = at.saturating_add(window_ms);
        if until > now_ms {
            let e = out.entry(node).or_insert(until);
            *e = (*e).max(until);
        }
    };
    for job in state.jobs.values().filter(|j| is_compactor_job(&j.kind)) {
        for lapse in &job.lapses {
            note(lapse.node_id, lapse.at_ms);
        }
        match &job.state {
            JobState::Assigned {
                node_id,
                lease_expiry_ms,
                ..
            } if *lease_expiry_ms <= now_ms => note(*node_id, *lease_expiry_ms),
            JobState::Done {
                node_id,
                result,
                completed_at_ms,
                ..
            } if JobResult::decode(result).map_or(true, |r| r.status == JobResult::FAILED) => {
                note(*node_id, *completed_at_ms)
            }
            _ => {}
        }
    }
    out
}

/// The member to take the next job: the least loaded below `concurrency` among the nodes
/// that are not suspect (lowest id on ties); `None` when they are all full. A suspect gets a job
/// only when every worker is suspect, and then the one whose suspicion ends first: handing the
/// job back to a node that just let a lease lapse (isolated, or dead and not yet noticed) cost
/// one lease per attempt in the chaos runs, while waiting for a trusted node costs at most the
/// suspicion window.
pub fn pick(
    load: &BTreeMap<NodeId, usize>,
    suspects: &BTreeMap<NodeId, i64>,
    concurrency: usize,
) -> Option<NodeId> {
    let open = |n: &NodeId| load.get(n).copied().unwrap_or(0) < concurrency.max(1);
    let trusted: Vec<NodeId> = load
        .keys()
        .filter(|n| !suspects.contains_key(*n))
        .copied()
        .collect();
    if trusted.is_empty() {
        return load
            .keys()
            .filter(|n| open(n))
            .min_by_key(|n| (suspects.get(*n).copied().unwrap_or(i64::MIN), *n))
            .copied();
    }
    trusted
        .into_iter()
        .filter(open)
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
        let suspects: BTreeMap<NodeId, i64> = [(2, i64::MAX)].into();
        assert_eq!(pick(&load, &suspects, 2), Some(3));
        load.insert(3, 2);
        load.insert(1, 2);
        // Only the suspect has room: the job waits for a trusted node rather than going back
        // to one that just let a lease lapse.
        assert_eq!(pick(&load, &suspects, 2), None);
        load.insert(2, 2);
        assert_eq!(pick(&load, &suspects, 2), None);
    }

    #[test]
    fn when_every_worker_is_suspect_the_one_trusted_again_soonest_takes_the_job() {
        let load: BTreeMap<NodeId, usize> = [(1, 0), (2, 0), (3, 1)].into();
        // Node 1 lapsed last (suspect longest), node 3 earliest but is full.
        let suspects: BTreeMap<NodeId, i64> = [(1, 9000), (2, 7000), (3, 5000)].into();
        assert_eq!(pick(&load, &suspects, 1), Some(2));
        assert_eq!(pick(&load, &suspects, 2), Some(3));
        // A lone node keeps working on its own jobs.
        let alone: BTreeMap<NodeId, usize> = [(1, 0)].into();
        assert_eq!(pick(&alone, &[(1, 9000)].into(), 1), Some(1));
    }

    fn apply(state: &mut ClusterState, command: Command) -> raft::Response {
        state.apply(1, &raft::Request::new(command))
    }

    #[test]
    fn a_new_leader_does_not_hand_a_lapsed_job_back_to_the_node_that_let_it_lapse() {
        let mut state = ClusterState::default();
        let create = |id: &str| Command::CreateJob {
            job_id: id.into(),
            kind: KIND_COMPACT.into(),
            spec: "{}".into(),
            now_ms: 0,
        };
        apply(&mut state, create("j1"));
        apply(&mut state, create("j2"));
        // Node 1 takes j1 and dies: its lease ends at 1000 and the cluster leader takes it
        // back. Leadership then moves: the new leader holds only the replicated state.
        let assign = |id: &str, node, until, now| Command::AssignJob {
            job_id: id.into(),
            node_id: node,
            lease_expiry_ms: until,
            now_ms: now,
        };
        apply(&mut state, assign("j1", 1, 1000, 10));
        apply(&mut state, Command::ExpireLeases { now_ms: 1500 });
        let json = serde_json::to_string(&state).expect("encode");
        let replica: ClusterState = serde_json::from_str(&json).expect("decode");
        assert!(matches!(replica.jobs["j1"].state, JobState::Pending));

        let load: BTreeMap<NodeId, usize> = [(1, 0), (2, 0), (3, 0)].into();
        let window = 2 * 1000;
        let seen = suspects(&replica, 2000, window);
        assert_eq!(seen, [(1, 3000)].into());
        // Node 1 is least loaded with the lowest id: only its lapse keeps it from the job.
        assert_eq!(pick(&load, &BTreeMap::new(), 2), Some(1));
        assert_eq!(pick(&load, &seen, 2), Some(2));
        // After the window it is trusted again.
        assert!(suspects(&replica, 3000, window).is_empty());

        // A node that reported a job failed is avoided too, for as long.
        let token = match apply(&mut state, assign("j2", 2, 5000, 2000)) {
            raft::Response::Assigned { token } => token,
            other => panic!("not assigned: {other:?}"),
        };
        let failed = JobResult {
            status: JobResult::FAILED.into(),
            error: "bucket unreachable".into(),
            ..JobResult::default()
        };
        let done = Command::CompleteJob {
            token,
            node_id: 2,
            result: failed.encode(),
            now_ms: 2500,
        };
        assert_eq!(apply(&mut state, done), raft::Response::Ok);
        assert_eq!(
            suspects(&state, 2600, window),
            [(1, 3000), (2, 4500)].into()
        );
        assert_eq!(pick(&load, &suspects(&state, 3200, window), 2), Some(1));
    }
}
