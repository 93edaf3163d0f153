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
//!   `strata_compact_downsample_failures_total`,
//!   `strata_compact_blocks_marked_total{marker,reason}`,
//!   `strata_compact_garbage_collected_blocks_total`, `strata_compact_blocks_cleaned_total`,
//!   `strata_compact_block_cleanup_failures_total`,
//!   `strata_compact_aborted_partial_uploads_deletion_attempts_total`,
//!   `strata_compact_halted` (always 0: Strata marks a bad block and goes on instead of halting),
//!   `strata_compact_last_successful_run_timestamp_seconds`.
//! - `run`: the pass loop (`--wait`), the HTTP server (`/metrics`, `/-/healthy`, `/-/ready`)
//!
//! Unfinished: `--selector.relabel-config`, the Raft-coordinated compact role; the querier
//! does not read downsampled blocks yet (`max_source_resolution`).

pub mod flags;
pub mod metrics;
pub mod run;

pub use flags::CompactArgs;
pub use run::run;
