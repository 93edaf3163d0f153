//! The seam for Thanos' index cache: postings lists and series entries kept across requests,
//! keyed by block. The store gateway provides the implementation (bounded, with metrics); an
//! index reader without one reads every list and entry from its file.
//!
//! Blocks are immutable (a ULID names one content forever), so an entry never goes stale;
//! a cache only has to forget the entries of blocks that left the bucket to free memory.

use super::ChunkMeta;
use crate::labels::Labels;
use std::fmt::Debug;
use std::sync::Arc;
use ulid::Ulid;

/// A series entry as decoded: its labels and chunk metas.
pub type SeriesEntry = (Labels, Vec<ChunkMeta>);

/// Postings lists and series entries of blocks, remembered across requests.
pub trait IndexCache: Send + Sync + Debug {
    /// The postings list of `name="value"` in `block`, if cached.
    fn postings(&self, block: Ulid, name: &str, value: &str) -> Option<Arc<[u32]>>;

    /// Remembers the postings list of `name="value"` in `block`.
    fn store_postings(&self, block: Ulid, name: &str, value: &str, refs: Arc<[u32]>);

    /// The entry of series `series_ref` in `block`, if cached.
    fn series(&self, block: Ulid, series_ref: u32) -> Option<Arc<SeriesEntry>>;

    /// [`IndexCache::series`] of each of `refs`, in order.
    fn series_batch(&self, block: Ulid, refs: &[u32]) -> Vec<Option<Arc<SeriesEntry>>> {
        refs.iter().map(|&r| self.series(block, r)).collect()
    }

    /// Remembers the entry of series `series_ref` in `block`.
    fn store_series(&self, block: Ulid, series_ref: u32, entry: Arc<SeriesEntry>);
}
