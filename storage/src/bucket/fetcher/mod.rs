//! One block-metadata fetcher for every component that lists the bucket's blocks (store,
//! querier, compactor, tools), modelled on Thanos' `pkg/block/fetcher.go`: a fetch lists the
//! block directories, reads each meta.json, and sorts every block into exactly one of
//! - `metas`: readable and kept by every filter;
//! - `partial`: no meta.json (an upload in progress or abandoned), invisible as in Thanos;
//! - `failed`: meta.json unreadable, with the error naming the block;
//! - `excluded`: dropped by a filter, with the filter's reason (Thanos' `synced` labels).
//!
//! Filters are pluggable ([`MetaFilter`]); `filters` holds Thanos' usual ones.

pub mod filters;

use super::marks::DeletionMark;
use super::{Bucket, BucketError};
use crate::block::error::{BlockError, FileLocation};
use crate::block::meta::{BlockMeta, META_FILENAME};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use ulid::Ulid;

pub use filters::{
    Clock, ConsistencyDelayFilter, DeletionMarkFilter, ExternalLabelsFilter, ResolutionFilter,
    TimeRangeFilter,
};

/// How many meta.json (or mark) reads run at once.
pub(crate) const FETCH_CONCURRENCY: usize = 32;

/// What one fetch found; every listed block is in exactly one of the four collections.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Blocks with a readable meta.json that every filter kept, by ULID.
    pub metas: BTreeMap<Ulid, BlockMeta>,
    /// Directories without meta.json: uploads in progress or abandoned.
    pub partial: Vec<Ulid>,
    /// Blocks whose meta.json is unreadable, with the error naming the block.
    pub failed: BTreeMap<Ulid, BlockError>,
    /// Blocks a filter dropped, with the filter's reason (`too-fresh`, `marked-for-deletion`,
    /// `time-excluded`, `label-excluded`, `resolution-excluded`).
    pub excluded: BTreeMap<Ulid, &'static str>,
    /// Deletion marks the deletion-mark filter found, whether or not it dropped the block
    /// (the compactor's cleaner needs them all).
    pub deletion_marks: BTreeMap<Ulid, DeletionMark>,
}

impl Fetched {
    /// Drops block `id` from `metas` as excluded for `reason`.
    pub fn exclude(&mut self, id: Ulid, reason: &'static str) {
        if self.metas.remove(&id).is_some() {
            self.excluded.insert(id, reason);
        }
    }
}

/// A filter over fetched metas (Thanos' `MetadataFilter`): it drops blocks from
/// `fetched.metas` with [`Fetched::exclude`]. A bucket failure fails the whole fetch.
#[async_trait]
pub trait MetaFilter: Send + Sync + std::fmt::Debug {
    /// Applies the filter.
    async fn filter(&self, bucket: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError>;
}

/// Lists and reads the bucket's block metadata, then applies its filters in order.
#[derive(Debug, Clone)]
pub struct MetaFetcher {
    bucket: Arc<dyn Bucket>,
    filters: Vec<Arc<dyn MetaFilter>>,
}

impl MetaFetcher {
    /// A fetcher over `bucket` without filters.
    pub fn new(bucket: Arc<dyn Bucket>) -> Self {
        MetaFetcher {
            bucket,
            filters: Vec::new(),
        }
    }

    /// Adds a filter, applied after the ones already added.
    pub fn with_filter(mut self, filter: impl MetaFilter + 'static) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// One fetch. A bucket failure fails the whole fetch (so a flaky listing never looks like
    /// missing blocks); a damaged meta.json only lands its block in `failed`.
    pub async fn fetch(&self) -> Result<Fetched, BucketError> {
        let mut out = read_all(self.bucket.as_ref()).await?;
        for f in &self.filters {
            f.filter(self.bucket.as_ref(), &mut out).await?;
        }
        Ok(out)
    }
}

enum One {
    Meta(Box<BlockMeta>),
    Partial,
    Failed(BlockError),
}

/// Every block directory sorted into metas, partial and failed, before any filter.
pub(crate) async fn read_all(bucket: &dyn Bucket) -> Result<Fetched, BucketError> {
    let ids = super::blocks::list_block_ids(bucket).await?;
    let results: Vec<(Ulid, One)> = futures::stream::iter(ids)
        .map(|id| async move { read_one(bucket, id).await.map(|f| (id, f)) })
        .buffer_unordered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    let mut out = Fetched::default();
    for (id, f) in results {
        match f {
            One::Meta(m) => {
                out.metas.insert(id, *m);
            }
            One::Partial => out.partial.push(id),
            One::Failed(e) => {
                out.failed.insert(id, e);
            }
        }
    }
    out.partial.sort();
    Ok(out)
}

async fn read_one(bucket: &dyn Bucket, id: Ulid) -> Result<One, BucketError> {
    let block = id.to_string();
    let data = match bucket.get(&format!("{block}/{META_FILENAME}")).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(One::Partial),
        Err(e) => return Err(e),
    };
    Ok(match BlockMeta::parse(&block, &data) {
        Ok(m) if m.ulid != id => One::Failed(
            FileLocation::new(&block, META_FILENAME)
                .corrupt(format!("names block {} instead", m.ulid)),
        ),
        Ok(m) => One::Meta(Box::new(m)),
        Err(e) => One::Failed(e),
    })
}

#[cfg(test)]
mod tests;
