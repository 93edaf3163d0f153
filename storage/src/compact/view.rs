//! The bucket as the cluster leader's plan sees it: the bucket index (one GET) while it is
//! fresh and shows every result the job table has committed, else a listing, from which the
//! index is rewritten so that the next plans (and the stores) read it again.
//!
//! The index is written by sweeps, so it can predate a job that finished since; planning from
//! it would see the job's sources without its output and plan the same merge again. The job
//! table says which outputs and no-compact marks were committed ([`InFlight`]): an index
//! lacking one of them is refreshed before planning. Checking presence, not timestamps, keeps
//! the rule independent of the clocks of the nodes that wrote the index and the results.

use super::index::{read_index, write_index, BucketIndex, IndexBlock, IndexError};
use super::jobs::{plan_jobs, InFlight, JobSpec, PlanConfig};
use super::pass::{Compactor, PassError};
use crate::block::meta::BlockMeta;
use crate::bucket::fetcher::{ConsistencyDelayFilter, FallbackReason, Fetched, MetaFilter};
use std::collections::BTreeSet;
use ulid::Ulid;

/// Where a plan's view of the bucket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanView {
    /// The bucket index: fresh, and showing every committed result.
    Index,
    /// A listing, because the index lacked a committed result; the index was rewritten.
    Refreshed,
    /// A listing, because the index was missing, stale or corrupt; the index was rewritten.
    Fallback(FallbackReason),
}

impl PlanView {
    /// The metric label: `index` or `listing`.
    pub fn source(self) -> &'static str {
        match self {
            PlanView::Index => "index",
            PlanView::Refreshed | PlanView::Fallback(_) => "listing",
        }
    }

    /// The metric label saying why: `fresh`, `behind-jobs`, `missing`, `stale`, `corrupt`.
    pub fn reason(self) -> &'static str {
        match self {
            PlanView::Index => "fresh",
            PlanView::Refreshed => "behind-jobs",
            PlanView::Fallback(r) => r.as_str(),
        }
    }
}

/// A plan and how it saw the bucket.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The jobs.
    pub jobs: Vec<JobSpec>,
    /// Where the view came from.
    pub view: PlanView,
    /// Committed outputs and no-compact blocks that not even a listing shows (deleted since):
    /// the caller stops expecting them, or every plan would list the bucket.
    pub gone: BTreeSet<Ulid>,
}

impl Compactor {
    /// The jobs for the bucket as it is now (blocks past the consistency delay, without
    /// deletion marks; no-compact marks honoured; a sweep at least every `sweep_period_ms`),
    /// seen through the bucket index when it is at most `max_index_age_ms` old and shows every
    /// result in `in_flight`, else through a listing that rewrites the index.
    pub async fn plan_jobs(
        &self,
        in_flight: &InFlight,
        sweep_period_ms: i64,
        max_index_age_ms: i64,
    ) -> Result<Plan, PassError> {
        let now = (self.clock)();
        let found = match read_index(self.bucket.as_ref()).await {
            Ok(Some(index)) if index.age_ms(now) > max_index_age_ms => {
                Err(PlanView::Fallback(FallbackReason::Stale))
            }
            Ok(Some(index)) => match index.lacking(&in_flight.committed, &in_flight.no_compact) {
                None => Ok(index),
                Some(block) => {
                    tracing::info!(%block, "bucket index predates a committed job; refreshing it");
                    Err(PlanView::Refreshed)
                }
            },
            Ok(None) => Err(PlanView::Fallback(FallbackReason::Missing)),
            Err(IndexError::Corrupt(e)) => {
                tracing::warn!(error = %e, "unreadable bucket index; listing the bucket");
                Err(PlanView::Fallback(FallbackReason::Corrupt))
            }
            Err(IndexError::Bucket(e)) => return Err(PassError::Sync(e)),
        };
        let (index, view) = match found {
            Ok(index) => (index, PlanView::Index),
            Err(view) => (self.refresh_index().await?, view),
        };
        let gone: BTreeSet<Ulid> = if view == PlanView::Index {
            BTreeSet::new()
        } else {
            let outputs = in_flight.committed.iter();
            let marks = in_flight.no_compact.iter();
            outputs
                .filter(|id| index.lacking([*id], []).is_some())
                .chain(marks.filter(|id| index.lacking([], [*id]).is_some()))
                .copied()
                .collect()
        };
        let (live, no_compact) = self.live(&index).await?;
        let config = PlanConfig {
            retention: self.config.retention,
            replica_labels: self.config.replica_labels.clone(),
            ranges: self.config.ranges.clone(),
            downsample: self.config.downsample,
            sweep_period_ms,
        };
        let jobs = plan_jobs(&live, &no_compact, in_flight, &config, now);
        Ok(Plan { jobs, view, gone })
    }

    /// The index of a listing, written back for the next plans; a failed write is logged (the
    /// plan still uses what was listed).
    async fn refresh_index(&self) -> Result<BucketIndex, PassError> {
        let index = self.build_bucket_index().await.map_err(PassError::Sync)?;
        if let Err(e) = write_index(self.bucket.as_ref(), &index).await {
            tracing::warn!(error = %e, "writing the refreshed bucket index failed");
        }
        Ok(index)
    }

    /// Blocks to plan over (past the consistency delay, no deletion mark) and the no-compact
    /// ones, from the index's stand-in metas.
    async fn live(
        &self,
        index: &BucketIndex,
    ) -> Result<(Vec<BlockMeta>, BTreeSet<Ulid>), PassError> {
        let mut fetched = Fetched {
            metas: index
                .blocks
                .iter()
                .map(IndexBlock::to_meta)
                .map(|m| (m.ulid, m))
                .collect(),
            deletion_marks: index.deletion_marks(),
            ..Fetched::default()
        };
        if self.config.consistency_delay_ms > 0 {
            let filter = ConsistencyDelayFilter {
                delay_ms: self.config.consistency_delay_ms,
                clock: self.clock.clone(),
            };
            filter
                .filter(self.bucket.as_ref(), &mut fetched)
                .await
                .map_err(PassError::Sync)?;
        }
        let live = fetched
            .metas
            .into_values()
            .filter(|m| !fetched.deletion_marks.contains_key(&m.ulid))
            .collect();
        let no_compact = index.no_compact_marks.iter().map(|m| m.block_id).collect();
        Ok((live, no_compact))
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
