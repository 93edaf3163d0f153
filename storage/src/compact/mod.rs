//! Compaction of the bucket's blocks as pure data transformations, by concern as in Thanos'
//! `pkg/compact`:
//!
//! - `group`: blocks grouped by external labels (replica labels removed) and resolution
//! - `planner`: which blocks of a group to merge next (Thanos' default planner, levels
//!   2h, 8h, 2d, 14d), and superseded blocks to garbage-collect
//! - `vertical`: one series' samples from several blocks (sorted union, or replica dedup)
//! - `download`: the sources of a merge or downsampling, fetched whole from a remote bucket
//!   (into memory up to 256 MiB, else onto local disk)
//! - `merge`: N blocks into one output block, streaming series in label order
//! - `retention`: per-resolution retention
//! - `cleaner`: deleting marked blocks after the delete delay, and stale partial uploads
//! - `index`: the bucket index (`bucket-index.json.gz`) written after each pass, and its reader
//! - `pass`: one full pass over the bucket, wiring the above
//! - `jobs`: a pass split into jobs with ids derived from their inputs, for a coordinator
//! - `view`: the bucket as the cluster leader plans over it (the bucket index, refreshed when
//!   it predates a committed job)
//! - `worker`: running one job, and what waits for its acceptance
//!
//! Downsampling (`crate::downsample`) runs in each pass after compaction.
//! Unfinished: tombstone-driven rewrites of single blocks are not planned.

pub mod cleaner;
pub mod download;
pub mod group;
pub mod index;
pub mod jobs;
pub mod merge;
pub mod pass;
pub mod planner;
pub mod retention;
pub mod vertical;
pub mod view;
pub mod worker;

#[cfg(test)]
mod testutil;

pub use group::GroupKey;
pub use pass::{Compactor, CompactorConfig, PassReport, ProgressFn};

/// No-compact reason Strata writes for a block that could not be read (corrupt or missing
/// files, unsupported encodings); Thanos' mark format accepts any reason string.
pub const REASON_CORRUPT: &str = "corrupt-block";

/// `thanos.source` of blocks the compactor writes.
pub const SOURCE_COMPACTOR: &str = "compactor";
