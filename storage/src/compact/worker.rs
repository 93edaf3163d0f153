//! The compactor's side of coordinated compaction (planning is in `view`): running one job, and the step that must wait until a coordinator has accepted the result (marking the
//! merged sources for deletion). The pieces are those of a standalone pass (`pass`).

use super::group::GroupKey;
use super::jobs::{JobResult, JobSpec};
use super::merge::MergeError;
use super::pass::{is_unreadable, Compactor, PassReport};
use super::planner::select_overlapping;
use super::vertical::MergeMode;
use super::REASON_CORRUPT;
use crate::block::error::BlockError;
use crate::block::meta::BlockMeta;
use crate::bucket::blocks::read_meta;
use crate::bucket::marks::{read_mark, DeletionMark};
use crate::downsample::{downsample_block, DownsampleError};
use ulid::Ulid;

/// Why a job could not be run (the job is retried; an unreadable source is not an error but
/// a no-compact mark in the result).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Reading a source's metadata or marks failed.
    #[error("reading block {block}: {source}")]
    Read {
        /// The block.
        block: Ulid,
        /// Why.
        #[source]
        source: BlockError,
    },
    /// The merge or its upload failed.
    #[error("compacting: {0}")]
    Merge(#[from] MergeError),
    /// Downsampling failed.
    #[error("downsampling: {0}")]
    Downsample(#[from] DownsampleError),
}

impl Compactor {
    /// Runs one job up to the point where its result must be accepted: a merge's output is
    /// uploaded but its sources are not marked ([`Compactor::finish_job`] does that once the
    /// result counts). `scratch` names the job's own scratch directory.
    pub async fn run_job(
        &self,
        spec: &JobSpec,
        scratch: &str,
    ) -> Result<(JobResult, PassReport), JobError> {
        let mut report = PassReport::default();
        let dir = self.config.scratch_dir.join(scratch);
        let result = match spec {
            JobSpec::Compact {
                resolution,
                labels,
                sources,
            } => {
                let key = GroupKey {
                    resolution: *resolution,
                    labels: labels.clone(),
                };
                self.run_compaction(&key, sources, dir, &mut report).await?
            }
            JobSpec::Downsample {
                block,
                to_resolution,
            } => {
                let Some(meta) = self.live_meta(*block).await? else {
                    return Ok((obsolete(), report));
                };
                let out = downsample_block(self.bucket.clone(), &meta, *to_resolution, &dir).await;
                let _ = std::fs::remove_dir_all(&dir);
                let out = out?;
                report.downsampled += 1;
                tracing::info!(block = %block, output = %out, resolution = to_resolution, "downsampled block");
                done(Some(out))
            }
            JobSpec::Sweep {
                retention,
                superseded,
                ..
            } => {
                for (ids, reason) in [(retention, "retention"), (superseded, "superseded")] {
                    for id in ids {
                        // A block deleted meanwhile needs no mark (a mark alone would look
                        // like a partial upload).
                        if self.live_meta(*id).await?.is_some() {
                            self.mark_deleted(*id, reason, &mut report).await;
                        }
                    }
                }
                self.cleanup(&mut report).await;
                report.index_written = self.write_bucket_index().await;
                done(None)
            }
        };
        Ok((result, report))
    }

    /// What may happen only after the job's completion was accepted: the merged sources are
    /// marked for deletion (a source left unmarked is found superseded by a later sweep).
    pub async fn finish_job(&self, spec: &JobSpec, result: &JobResult) -> PassReport {
        let mut report = PassReport::default();
        if let JobSpec::Compact { sources, .. } = spec {
            if result.status == JobResult::DONE && result.no_compact.is_empty() {
                report.compactions += 1;
                report.blocks_compacted += sources.len();
                for id in sources {
                    self.mark_deleted(*id, "compacted", &mut report).await;
                }
            }
        }
        report
    }

    async fn run_compaction(
        &self,
        key: &GroupKey,
        sources: &[Ulid],
        dir: std::path::PathBuf,
        report: &mut PassReport,
    ) -> Result<JobResult, JobError> {
        let mut chosen = Vec::with_capacity(sources.len());
        for id in sources {
            match self.live_meta(*id).await? {
                Some(m) => chosen.push(m),
                None => return Ok(obsolete()),
            }
        }
        chosen.sort_by_key(|m| (m.min_time, m.ulid));
        let refs: Vec<&BlockMeta> = chosen.iter().collect();
        let overlapping = !select_overlapping(&refs).is_empty();
        let mode = if self.config.replica_labels.is_empty() {
            MergeMode::Union
        } else {
            MergeMode::Dedup
        };
        let out = self
            .compact_once(key, &chosen, mode, Some(dir.clone()))
            .await;
        let _ = std::fs::remove_dir_all(&dir);
        match out {
            Ok(output) => {
                if overlapping {
                    report.vertical_compactions += 1;
                }
                Ok(done(output.map(|m| m.ulid)))
            }
            Err(MergeError::Source { block, source }) if is_unreadable(&source) => {
                tracing::warn!(group = %key, %block, error = %source, "source block unreadable");
                self.mark_no_compact(block, REASON_CORRUPT, &source.to_string(), report)
                    .await;
                Ok(JobResult {
                    no_compact: vec![block],
                    ..done(None)
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The block's meta when it exists and has no deletion mark; `None` when it is gone.
    async fn live_meta(&self, id: Ulid) -> Result<Option<BlockMeta>, JobError> {
        let bucket = self.bucket.as_ref();
        let read = |source| JobError::Read { block: id, source };
        let meta = match read_meta(bucket, id).await {
            Ok(m) => m,
            Err(BlockError::Missing { .. }) => return Ok(None),
            Err(e) => return Err(read(e)),
        };
        match read_mark::<DeletionMark>(bucket, id).await {
            Ok(Some(_)) => Ok(None),
            Ok(None) => Ok(Some(meta)),
            Err(e) => Err(read(e)),
        }
    }
}

fn done(output: Option<Ulid>) -> JobResult {
    JobResult {
        status: JobResult::DONE.to_string(),
        output,
        ..JobResult::default()
    }
}

fn obsolete() -> JobResult {
    JobResult {
        status: JobResult::OBSOLETE.to_string(),
        ..JobResult::default()
    }
}
