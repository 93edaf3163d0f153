//! One block-metadata fetcher for every component that lists the bucket's blocks (store,
//! querier, compactor, tools), modelled on Thanos' `pkg/block/fetcher.go`: a fetch lists the
//! block directories, reads each meta.json, and sorts every block into exactly one of
//! - `metas`: readable and kept by every filter;
//! - `partial`: no meta.json (an upload in progress or abandoned), invisible as in Thanos;
//! - `failed`: meta.json unreadable, with the error naming the block;
//! - `excluded`: dropped by a filter, with the filter's reason (Thanos' `synced` labels).
//!
//! Filters are pluggable ([`MetaFilter`]); `filters` holds Thanos' usual ones, `relabel` the
//! selector relabelling (`--selector.relabel-config`, hashmod sharding), `dedup` the dropping
//! of blocks whose compaction sources another block holds.
//!
//! One recursive listing per fetch finds every block, its meta.json and its deletion mark.
//! meta.json and marks never change once written, so a fetcher keeps what it parsed and reads
//! only objects that are new since the last fetch: a sync of an unchanged bucket is its listing
//! alone, not one GET per block (Thanos' LIST/GET storm). With [`Discovery::Index`] a fetch is
//! one GET of the compactor's bucket index instead, falling back to the listing (`discovery`).

pub mod dedup;
pub mod discovery;
pub mod filters;
pub mod relabel;

use super::marks::{parse_mark, DeletionMark, DELETION_MARK_FILENAME};
use super::{Bucket, BucketError};
use crate::block::error::{BlockError, FileLocation};
use crate::block::meta::{BlockMeta, META_FILENAME};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use ulid::Ulid;

pub use dedup::DeduplicateFilter;
pub use discovery::{Discovered, Discovery, FallbackReason};
pub use filters::{
    Clock, ConsistencyDelayFilter, DeletionMarkFilter, ExternalLabelsFilter, ResolutionFilter,
    TimeRangeFilter,
};
pub use relabel::{RelabelConfig, RelabelError, RelabelFilter};

/// How many meta.json (or mark) reads run at once.
pub(crate) const FETCH_CONCURRENCY: usize = 32;

/// Every reason the fetcher's filters exclude a block for, so that metrics can show each at 0.
pub const EXCLUDED_REASONS: [&str; 6] = [
    "too-fresh",
    "marked-for-deletion",
    "time-excluded",
    "label-excluded",
    "resolution-excluded",
    dedup::DUPLICATE,
];

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
    /// `time-excluded`, `label-excluded`, `resolution-excluded`, `duplicate`).
    pub excluded: BTreeMap<Ulid, &'static str>,
    /// Readable deletion marks of the blocks with a readable meta.json, whether or not a
    /// filter dropped the block (the compactor's cleaner needs them all). Unreadable marks are
    /// logged and left out, as in Thanos.
    pub deletion_marks: BTreeMap<Ulid, DeletionMark>,
    /// Whether the blocks came from a listing or the bucket index. From the index, `metas`
    /// are stand-ins without file lists ([`crate::compact::index::IndexBlock::to_meta`]) and
    /// `partial`/`failed` are empty.
    pub discovered: Discovered,
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

/// Parsed meta.json files and deletion marks by block: both are immutable once written, so
/// they are read once. Only blocks of the last listing stay.
#[derive(Debug, Default)]
struct ParsedCache {
    metas: HashMap<Ulid, BlockMeta>,
    marks: HashMap<Ulid, DeletionMark>,
}

/// Lists and reads the bucket's block metadata, then applies its filters in order. Clones
/// share the cache of parsed metas and marks.
#[derive(Debug, Clone)]
pub struct MetaFetcher {
    bucket: Arc<dyn Bucket>,
    filters: Vec<Arc<dyn MetaFilter>>,
    cache: Arc<Mutex<ParsedCache>>,
    discovery: Discovery,
    /// How the last fetch found its blocks, so that a change is logged once.
    last: Arc<Mutex<Option<Discovered>>>,
}

impl MetaFetcher {
    /// A fetcher over `bucket` without filters.
    pub fn new(bucket: Arc<dyn Bucket>) -> Self {
        MetaFetcher {
            bucket,
            filters: Vec::new(),
            cache: Arc::default(),
            discovery: Discovery::Listing,
            last: Arc::default(),
        }
    }

    /// Discovers blocks as `discovery` says (the default lists the bucket).
    pub fn with_discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// Adds a filter, applied after the ones already added.
    pub fn with_filter(mut self, filter: impl MetaFilter + 'static) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// One fetch. A bucket failure fails the whole fetch (so a flaky listing never looks like
    /// missing blocks); a damaged meta.json only lands its block in `failed`.
    pub async fn fetch(&self) -> Result<Fetched, BucketError> {
        let bucket = self.bucket.as_ref();
        let mut out = match &self.discovery {
            Discovery::Listing => read_cached(bucket, &self.cache).await?,
            Discovery::Index {
                max_stale_ms,
                clock,
            } => match discovery::from_index(bucket, *max_stale_ms, clock()).await? {
                Ok(fetched) => fetched,
                Err((reason, detail)) => {
                    self.note(Discovered::Fallback(reason), &detail);
                    let mut fetched = read_cached(bucket, &self.cache).await?;
                    fetched.discovered = Discovered::Fallback(reason);
                    fetched
                }
            },
        };
        self.note(out.discovered, "");
        for f in &self.filters {
            f.filter(self.bucket.as_ref(), &mut out).await?;
        }
        Ok(out)
    }
}

impl MetaFetcher {
    /// Logs how blocks are discovered when it changes (not every sync).
    fn note(&self, now: Discovered, detail: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last == Some(now) {
            return;
        }
        *last = Some(now);
        match now {
            Discovered::Listing => {}
            Discovered::Index => tracing::info!("reading blocks from the bucket index"),
            Discovered::Fallback(reason) => tracing::warn!(
                reason = reason.as_str(),
                detail,
                "bucket index not usable; listing the bucket instead"
            ),
        }
    }
}

enum One {
    Meta(Box<BlockMeta>),
    Partial,
    Failed(BlockError),
}

/// What the listing shows of one block directory.
#[derive(Debug, Default, Clone, Copy)]
struct Listed {
    meta: bool,
    deletion_mark: bool,
}

/// Every block directory sorted into metas, partial and failed, before any filter.
pub(crate) async fn read_all(bucket: &dyn Bucket) -> Result<Fetched, BucketError> {
    read_cached(bucket, &Mutex::default()).await
}

fn lock(cache: &Mutex<ParsedCache>) -> std::sync::MutexGuard<'_, ParsedCache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// [`read_all`] reading only the metas and marks `cache` lacks, and keeping what it parsed.
async fn read_cached(
    bucket: &dyn Bucket,
    cache: &Mutex<ParsedCache>,
) -> Result<Fetched, BucketError> {
    let listed = list_blocks(bucket).await?;
    let (mut known, mut known_marks) = {
        let mut c = lock(cache);
        c.metas
            .retain(|id, _| listed.get(id).is_some_and(|l| l.meta));
        c.marks
            .retain(|id, _| listed.get(id).is_some_and(|l| l.deletion_mark));
        (c.metas.clone(), c.marks.clone())
    };
    let to_read: Vec<Ulid> = listed
        .iter()
        .filter(|(id, l)| l.meta && !known.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    let results: Vec<(Ulid, One)> = futures::stream::iter(to_read)
        .map(|id| async move { read_one(bucket, id).await.map(|f| (id, f)) })
        .buffer_unordered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    let mut out = Fetched::default();
    let mut new_metas = Vec::new();
    for (id, f) in results {
        match f {
            One::Meta(m) => new_metas.push(*m),
            // Deleted between the listing and the read: gone, or being deleted.
            One::Partial => out.partial.push(id),
            One::Failed(e) => {
                out.failed.insert(id, e);
            }
        }
    }
    out.partial
        .extend(listed.iter().filter(|(_, l)| !l.meta).map(|(id, _)| *id));
    out.partial.sort();
    let marks_to_read: Vec<Ulid> = listed
        .iter()
        .filter(|(id, l)| l.deletion_mark && !known_marks.contains_key(id))
        .filter(|(id, _)| known.contains_key(id) || new_metas.iter().any(|m| m.ulid == **id))
        .map(|(id, _)| *id)
        .collect();
    let new_marks = read_marks(bucket, marks_to_read).await?;
    {
        let mut c = lock(cache);
        for m in &new_metas {
            c.metas.insert(m.ulid, m.clone());
        }
        for m in &new_marks {
            c.marks.insert(m.id, m.clone());
        }
    }
    known.extend(new_metas.into_iter().map(|m| (m.ulid, m)));
    known_marks.extend(new_marks.into_iter().map(|m| (m.id, m)));
    out.deletion_marks = known_marks
        .into_iter()
        .filter(|(id, _)| known.contains_key(id))
        .collect();
    out.metas = known.into_iter().collect();
    Ok(out)
}

/// One recursive listing: every block directory and whether it holds meta.json and a
/// deletion mark. Top-level names that are not ULIDs are not blocks.
async fn list_blocks(bucket: &dyn Bucket) -> Result<BTreeMap<Ulid, Listed>, BucketError> {
    let mut out: BTreeMap<Ulid, Listed> = BTreeMap::new();
    for o in bucket.list_recursive("").await? {
        let Some((dir, file)) = o.path.split_once('/') else {
            continue;
        };
        let Ok(id) = Ulid::from_string(dir) else {
            continue;
        };
        let l = out.entry(id).or_default();
        if file == META_FILENAME {
            l.meta = true;
        } else if file == DELETION_MARK_FILENAME {
            l.deletion_mark = true;
        }
    }
    Ok(out)
}

/// Reads the deletion marks of `ids`. A mark gone since the listing is no mark; an unreadable
/// one is logged and ignored (retried next fetch); any other bucket failure fails the fetch.
async fn read_marks(bucket: &dyn Bucket, ids: Vec<Ulid>) -> Result<Vec<DeletionMark>, BucketError> {
    let read: Vec<(Ulid, Result<bytes::Bytes, BucketError>)> = futures::stream::iter(ids)
        .map(|id| async move {
            (
                id,
                bucket.get(&format!("{id}/{DELETION_MARK_FILENAME}")).await,
            )
        })
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut out = Vec::new();
    for (id, data) in read {
        match data {
            Ok(d) => match parse_mark::<DeletionMark>(id, &d) {
                Ok(m) => out.push(m),
                Err(e) => {
                    tracing::warn!(block = %id, error = %e, "ignoring unreadable deletion mark")
                }
            },
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Block `id`'s meta.json, for a reader that knows the block from the bucket index and opens
/// it: a missing, unreadable or mismatched file is an error naming the block.
pub async fn read_meta(bucket: &dyn Bucket, id: Ulid) -> Result<BlockMeta, BlockError> {
    let loc = FileLocation::new(id.to_string(), META_FILENAME);
    match read_one(bucket, id).await {
        Ok(One::Meta(m)) => Ok(*m),
        Ok(One::Partial) => Err(loc.missing()),
        Ok(One::Failed(e)) => Err(e),
        Err(e) => Err(loc.io(e)),
    }
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

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod discovery_tests;
