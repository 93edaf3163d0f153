//! The compactor's metrics, named after Thanos' `thanos_compact_*` with Strata's prefix.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use raft::{ClusterState, JobState};
use storage::bucket::fetcher::FallbackReason;
use storage::bucket::marks::{DELETION_MARK_FILENAME, NO_COMPACT_MARK_FILENAME};
use storage::compact::jobs::{JobResult, JobSpec, KIND_COMPACT};
use storage::compact::view::PlanView;
use storage::compact::PassReport;

/// Counters of passes, compactions, marks and cleanup.
#[derive(Debug, Clone)]
pub struct CompactMetrics {
    iterations: IntCounter,
    iteration_failures: IntCounter,
    compactions: IntCounter,
    vertical: IntCounter,
    failures: IntCounter,
    downsampled: IntCounter,
    downsample_failures: IntCounter,
    prefetched: IntCounter,
    marked: IntCounterVec,
    garbage_collected: IntCounter,
    cleaned: IntCounter,
    cleanup_failures: IntCounter,
    partial: IntCounter,
    halted: IntGauge,
    last_success: IntGauge,
    jobs: IntGaugeVec,
    jobs_finished: IntCounterVec,
    jobs_started: IntCounter,
    todo_compactions: IntGauge,
    plans: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl CompactMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let marked = IntCounterVec::new(
            Opts::new(
                "strata_compact_blocks_marked_total",
                "Total number of blocks marked in compactor.",
            ),
            &["marker", "reason"],
        )?;
        registry.register(Box::new(marked.clone()))?;
        let halted = IntGauge::new(
            "strata_compact_halted",
            "Set to 1 if the compactor halted; Strata never halts, it marks bad blocks instead.",
        )?;
        registry.register(Box::new(halted.clone()))?;
        let last_success = IntGauge::new(
            "strata_compact_last_successful_run_timestamp_seconds",
            "Unix time of the end of the last pass that completed.",
        )?;
        registry.register(Box::new(last_success.clone()))?;
        let jobs = IntGaugeVec::new(
            Opts::new(
                "strata_compact_jobs",
                "Compactor jobs in the cluster's job table by state (planned, running, done, failed).",
            ),
            &["state"],
        )?;
        registry.register(Box::new(jobs.clone()))?;
        let jobs_finished = IntCounterVec::new(
            Opts::new(
                "strata_compact_jobs_finished_total",
                "Jobs this node ran to an end, by kind and outcome (done, obsolete, failed, refused, abandoned).",
            ),
            &["kind", "status"],
        )?;
        registry.register(Box::new(jobs_finished.clone()))?;
        let todo_compactions = IntGauge::new(
            "strata_compact_todo_compactions",
            "Compactions the last plan found to do (the bucket's backlog).",
        )?;
        registry.register(Box::new(todo_compactions.clone()))?;
        let plans = IntCounterVec::new(
            Opts::new(
                "strata_compact_plans_total",
                "Plans the cluster leader made, by where it read the bucket (index, listing) and why (fresh, behind-jobs, missing, stale, corrupt).",
            ),
            &["source", "reason"],
        )?;
        registry.register(Box::new(plans.clone()))?;
        for view in [
            PlanView::Index,
            PlanView::Refreshed,
            PlanView::Fallback(FallbackReason::Missing),
            PlanView::Fallback(FallbackReason::Stale),
            PlanView::Fallback(FallbackReason::Corrupt),
        ] {
            plans.with_label_values(&[view.source(), view.reason()]);
        }
        Ok(CompactMetrics {
            plans,
            jobs,
            jobs_finished,
            todo_compactions,
            jobs_started: counter(
                registry,
                "strata_compact_jobs_started_total",
                "Jobs this node started running.",
            )?,
            iterations: counter(
                registry,
                "strata_compact_iterations_total",
                "Total number of iterations that were executed successfully.",
            )?,
            iteration_failures: counter(
                registry,
                "strata_compact_iteration_failures_total",
                "Total number of iterations that could not sync the bucket.",
            )?,
            compactions: counter(
                registry,
                "strata_compact_group_compactions_total",
                "Total number of group compaction attempts that resulted in a new block.",
            )?,
            vertical: counter(
                registry,
                "strata_compact_group_vertical_compactions_total",
                "Total number of group compaction attempts that resulted in a new block based on overlapping blocks.",
            )?,
            failures: counter(
                registry,
                "strata_compact_group_compactions_failures_total",
                "Total number of failed group compactions.",
            )?,
            downsampled: counter(
                registry,
                "strata_compact_downsample_total",
                "Total number of downsampled blocks written.",
            )?,
            downsample_failures: counter(
                registry,
                "strata_compact_downsample_failures_total",
                "Total number of failed downsamplings.",
            )?,
            prefetched: counter(
                registry,
                "strata_compact_prefetched_merges_total",
                "Total number of merges whose sources were fetched while the previous merge ran.",
            )?,
            marked,
            garbage_collected: counter(
                registry,
                "strata_compact_garbage_collected_blocks_total",
                "Total number of blocks marked for deletion by compactor.",
            )?,
            cleaned: counter(
                registry,
                "strata_compact_blocks_cleaned_total",
                "Total number of blocks deleted in compactor.",
            )?,
            cleanup_failures: counter(
                registry,
                "strata_compact_block_cleanup_failures_total",
                "Failures encountered while deleting blocks in compactor.",
            )?,
            partial: counter(
                registry,
                "strata_compact_aborted_partial_uploads_deletion_attempts_total",
                "Total number of started deletions of blocks that are assumed aborted and only partially uploaded.",
            )?,
            halted,
            last_success,
        })
    }

    /// Adds a completed pass.
    pub fn record(&self, r: &PassReport, end_unix_s: i64) {
        self.iterations.inc();
        self.failures.inc_by(r.failed_compactions as u64);
        self.downsample_failures
            .inc_by(r.downsample_failures as u64);
        self.add_work(r);
        self.halted.set(0);
        self.last_success.set(end_unix_s);
    }

    /// Adds what one job did (no pass counted).
    pub fn record_job(&self, r: &PassReport) {
        self.add_work(r);
        if r.index_written {
            self.last_success.set(crate::compact::run::unix_now_s());
        }
    }

    /// The work a pass or a job reports: compactions, marks and cleanup.
    fn add_work(&self, r: &PassReport) {
        self.compactions.inc_by(r.compactions as u64);
        self.vertical.inc_by(r.vertical_compactions as u64);
        self.downsampled.inc_by(r.downsampled as u64);
        self.prefetched.inc_by(r.prefetched as u64);
        for (reason, n) in &r.marked_for_deletion {
            self.marked
                .with_label_values(&[DELETION_MARK_FILENAME, reason])
                .inc_by(*n as u64);
        }
        for (reason, n) in &r.marked_no_compact {
            self.marked
                .with_label_values(&[NO_COMPACT_MARK_FILENAME, reason.as_str()])
                .inc_by(*n as u64);
        }
        self.garbage_collected
            .inc_by(r.marked_for_deletion.values().sum::<usize>() as u64);
        self.cleaned.inc_by(r.deleted as u64);
        self.cleanup_failures.inc_by(r.delete_failures as u64);
        self.partial.inc_by(r.partial_removed as u64);
    }

    /// Counts a job started here.
    pub fn job_started(&self) {
        self.jobs_started.inc();
    }

    /// Counts a job that ended here with `status`.
    pub fn job_finished(&self, kind: &str, status: &str) {
        self.jobs_finished.with_label_values(&[kind, status]).inc();
    }

    /// The job table's compactor jobs by state.
    pub fn observe_jobs(&self, state: &ClusterState) {
        let mut counts = [0i64; 4];
        for job in state.jobs.values() {
            if !storage::compact::jobs::KINDS.contains(&job.kind.as_str()) {
                continue;
            }
            let i = match &job.state {
                JobState::Pending => 0,
                JobState::Assigned { .. } => 1,
                JobState::Done { result, .. } => {
                    let failed =
                        JobResult::decode(result).map_or(true, |r| r.status == JobResult::FAILED);
                    if failed {
                        3
                    } else {
                        2
                    }
                }
            };
            counts[i] += 1;
        }
        for (state, n) in ["planned", "running", "done", "failed"].iter().zip(counts) {
            self.jobs.with_label_values(&[state]).set(n);
        }
    }

    /// The last plan's compactions (the backlog).
    pub fn set_backlog(&self, jobs: &[JobSpec]) {
        let n = jobs.iter().filter(|j| j.kind() == KIND_COMPACT).count();
        self.todo_compactions.set(n as i64);
    }

    /// Counts a plan by where it read the bucket.
    pub fn record_plan(&self, view: PlanView) {
        self.plans
            .with_label_values(&[view.source(), view.reason()])
            .inc();
    }

    /// Counts a pass that could not start.
    pub fn record_failure(&self) {
        self.iteration_failures.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(registry: &Registry, name: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == name)
            .map(|f| {
                f.get_metric()
                    .iter()
                    .map(|m| m.get_counter().get_value())
                    .sum()
            })
            .unwrap_or_else(|| panic!("{name} not registered"))
    }

    #[test]
    fn passes_and_jobs_both_count_their_work_and_fetched_ahead_merges() {
        let registry = Registry::new();
        let m = CompactMetrics::register(&registry).unwrap();
        let report = PassReport {
            compactions: 3,
            prefetched: 2,
            failed_compactions: 1,
            ..PassReport::default()
        };
        m.record(&report, 0);
        m.record_job(&report);
        assert_eq!(
            value(&registry, "strata_compact_prefetched_merges_total"),
            4.0
        );
        assert_eq!(
            value(&registry, "strata_compact_group_compactions_total"),
            6.0
        );
        // A job's failures reach the leader through its status, not this counter.
        assert_eq!(
            value(&registry, "strata_compact_group_compactions_failures_total"),
            1.0
        );
        assert_eq!(value(&registry, "strata_compact_iterations_total"), 1.0);
    }
}
