//! `strata compact`: the standalone compactor (Thanos' `thanos compact`), one process over one
//! bucket. The algorithms live in `storage::compact`; this module wires flags, the pass loop,
//! probes and metrics.
//!
//! - `flags`: Thanos' flag names and defaults
//! - `metrics`: `strata_compact_*` counters, mirroring Thanos' `thanos_compact_*`:
//!   `strata_compact_iterations_total`, `strata_compact_iteration_failures_total`,
//!   `strata_compact_group_compactions_total`,
//!   `strata_compact_group_vertical_compactions_total`,
//!   `strata_compact_group_compactions_failures_total`, `strata_compact_downsample_total`,
//!   `strata_compact_downsample_failures_total`, `strata_compact_prefetched_merges_total`,
//!   `strata_compact_blocks_marked_total{marker,reason}`,
//!   `strata_compact_garbage_collected_blocks_total`, `strata_compact_blocks_cleaned_total`,
//!   `strata_compact_block_cleanup_failures_total`,
//!   `strata_compact_aborted_partial_uploads_deletion_attempts_total`,
//!   `strata_compact_halted` (always 0: Strata marks a bad block and goes on instead of halting),
//!   `strata_compact_last_successful_run_timestamp_seconds`.
//!   Under Raft also `strata_compact_jobs{state="planned|running|done|failed"}` (the job
//!   table), `strata_compact_jobs_started_total`, `strata_compact_jobs_finished_total{kind,
//!   status}`, `strata_compact_todo_compactions` (the last plan's backlog),
//!   `strata_compact_plans_total{source="index|listing",reason}` (where the leader's plans read
//!   the bucket).
//! - `run`: the compact role as a server component: standalone passes, or the cluster's
//!   planner and worker
//! - `leader`: the Raft leader's planning and assignment of jobs
//! - `worker`: running this node's assigned jobs under renewed leases
//! - `report`: lease renewals and completions forwarded to the leader (`JobReports`)
//!
//! The leader plans from the bucket index, refreshed from a listing when it is missing, older
//! than three plan intervals, or lacks a result the job table committed
//! (`storage::compact::view`). Unfinished: `--selector.relabel-config`.

pub mod flags;
pub mod leader;
pub mod metrics;
pub mod report;
pub mod run;
pub mod worker;

pub use flags::{CompactArgs, CompactFlags};
pub use run::{run, CompactRole};
