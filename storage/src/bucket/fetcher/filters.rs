//! Thanos' usual metadata filters: consistency delay, deletion marks (with
//! `--ignore-deletion-marks-delay`), time range, external labels and resolution.

use super::{Fetched, MetaFilter};
use crate::bucket::{Bucket, BucketError};
use crate::matcher::Matcher;
use async_trait::async_trait;
use std::sync::Arc;
use ulid::Ulid;

/// The current time in ms since the epoch; tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    })
}

/// Sources whose blocks are complete when written, so Thanos never delays them.
const TRUSTED_SOURCES: [&str; 3] = ["compactor", "compactor.repair", "bucket.repair"];

/// Thanos' `--consistency-delay`: hides blocks younger (by ULID time) than `delay_ms`, except
/// the compactor's and repair's own, so that an eventually consistent bucket has settled.
#[derive(Clone)]
pub struct ConsistencyDelayFilter {
    /// The delay in ms.
    pub delay_ms: i64,
    /// Now.
    pub clock: Clock,
}

impl std::fmt::Debug for ConsistencyDelayFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsistencyDelayFilter({}ms)", self.delay_ms)
    }
}

#[async_trait]
impl MetaFilter for ConsistencyDelayFilter {
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let now = (self.clock)();
        let young: Vec<Ulid> = fetched
            .metas
            .values()
            .filter(|m| {
                let source = m.thanos.as_ref().map(|t| t.source.as_str()).unwrap_or("");
                let age = now.saturating_sub(m.ulid.timestamp_ms() as i64);
                age < self.delay_ms && !TRUSTED_SOURCES.contains(&source)
            })
            .map(|m| m.ulid)
            .collect();
        for id in young {
            fetched.exclude(id, "too-fresh");
        }
        Ok(())
    }
}

/// Thanos' `IgnoreDeletionMarkFilter`: hides blocks marked more than `delay_ms` ago
/// (`--ignore-deletion-marks-delay`), so readers stop using a block well before the compactor
/// deletes it. The marks are the fetcher's (`Fetched::deletion_marks`).
#[derive(Clone)]
pub struct DeletionMarkFilter {
    /// How long after its mark a block is still served, in ms.
    pub delay_ms: i64,
    /// Now.
    pub clock: Clock,
}

impl std::fmt::Debug for DeletionMarkFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeletionMarkFilter({}ms)", self.delay_ms)
    }
}

#[async_trait]
impl MetaFilter for DeletionMarkFilter {
    /// The fetcher has read the marks (once per block, from its listing): no bucket request.
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let now_s = (self.clock)() / 1000;
        let expired: Vec<Ulid> = fetched
            .deletion_marks
            .iter()
            .filter(|(_, m)| now_s.saturating_sub(m.deletion_time) > self.delay_ms / 1000)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            fetched.exclude(id, "marked-for-deletion");
        }
        Ok(())
    }
}

/// Thanos' `TimePartitionMetaFilter` (`--min-time`, `--max-time`): keeps blocks whose
/// `[minTime, maxTime)` meets `[min_ms, max_ms]`.
#[derive(Debug, Clone, Copy)]
pub struct TimeRangeFilter {
    /// Earliest time served, ms.
    pub min_ms: i64,
    /// Latest time served, ms.
    pub max_ms: i64,
}

#[async_trait]
impl MetaFilter for TimeRangeFilter {
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let out: Vec<Ulid> = fetched
            .metas
            .values()
            .filter(|m| !(m.max_time > self.min_ms && m.min_time <= self.max_ms))
            .map(|m| m.ulid)
            .collect();
        for id in out {
            fetched.exclude(id, "time-excluded");
        }
        Ok(())
    }
}

/// Keeps blocks whose external labels (meta.json `thanos.labels`) satisfy every matcher; a
/// missing label matches as the empty string, as in PromQL (Thanos' selector relabelling).
#[derive(Debug, Clone)]
pub struct ExternalLabelsFilter {
    /// The matchers.
    pub matchers: Vec<Matcher>,
}

#[async_trait]
impl MetaFilter for ExternalLabelsFilter {
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let out: Vec<Ulid> = fetched
            .metas
            .values()
            .filter(|m| {
                let labels = m.external_labels();
                !self
                    .matchers
                    .iter()
                    .all(|x| x.matches(labels.get(x.name()).map(String::as_str).unwrap_or("")))
            })
            .map(|m| m.ulid)
            .collect();
        for id in out {
            fetched.exclude(id, "label-excluded");
        }
        Ok(())
    }
}

/// Keeps blocks of the listed downsampling resolutions (ms; 0 is raw data).
#[derive(Debug, Clone)]
pub struct ResolutionFilter {
    /// Resolutions kept.
    pub keep: Vec<i64>,
}

#[async_trait]
impl MetaFilter for ResolutionFilter {
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let out: Vec<Ulid> = fetched
            .metas
            .values()
            .filter(|m| !self.keep.contains(&m.resolution()))
            .map(|m| m.ulid)
            .collect();
        for id in out {
            fetched.exclude(id, "resolution-excluded");
        }
        Ok(())
    }
}
