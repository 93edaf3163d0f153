//! How the store opens its blocks: through index headers on local disk
//! (`<data-dir>/index-headers/<ULID>/index-header`, built by range reads when the block is
//! first opened, in the background or by the first request that needs it), keeping opened blocks in a
//! cache bounded by `--store.index-header-cache-size` (weighted by the parsed headers' memory).
//! Opened blocks look postings and series up in the store's index cache (`--index-cache-size`,
//! `super::index_cache`) first. A block the cache dropped is reopened from its local header on next use, without reading its index from
//! the bucket, so memory follows what queries touch rather than the bucket's size.

use super::index_cache::InMemoryIndexCache;
use moka::sync::Cache;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage::block::{Block, BlockError, BlockMeta};
use storage::bucket::Bucket;
use ulid::Ulid;

/// File name of a block's index header under its directory in the data dir (Thanos' name).
pub const INDEX_HEADER_FILENAME: &str = "index-header";

/// Opens blocks for the store and keeps the hot ones open.
pub struct BlockOpener {
    bucket: Arc<dyn Bucket>,
    header_dir: Option<PathBuf>,
    cache: Cache<Ulid, Arc<Block>>,
    /// Postings lists and series entries kept across requests, for every block.
    index_cache: Option<Arc<InMemoryIndexCache>>,
}

impl std::fmt::Debug for BlockOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockOpener")
            .field("header_dir", &self.header_dir)
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl BlockOpener {
    /// Opens blocks of `bucket`, with index headers under `header_dir` when given, keeping
    /// opened blocks up to about `cache_bytes` of index memory.
    pub fn new(bucket: Arc<dyn Bucket>, header_dir: Option<PathBuf>, cache_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(cache_bytes)
            .weigher(|_: &Ulid, b: &Arc<Block>| {
                u32::try_from(b.index().memory_estimate()).unwrap_or(u32::MAX)
            })
            .build();
        BlockOpener {
            bucket,
            header_dir,
            cache,
            index_cache: None,
        }
    }

    /// The same opener giving every block it opens `cache` for postings and series.
    pub fn with_index_cache(mut self, cache: Option<Arc<InMemoryIndexCache>>) -> Self {
        self.index_cache = cache;
        self
    }

    fn header_path(&self, id: Ulid) -> Option<PathBuf> {
        self.header_dir
            .as_ref()
            .map(|d| d.join(id.to_string()).join(INDEX_HEADER_FILENAME))
    }

    /// Opens block `meta` from the bucket (building its index header if missing).
    pub async fn open(&self, meta: BlockMeta) -> Result<Block, BlockError> {
        let header = self.header_path(meta.ulid);
        let mut block =
            Block::open_bucket_with_header(self.bucket.clone(), meta, header.as_deref()).await?;
        if let Some(cache) = &self.index_cache {
            block.set_index_cache(cache.clone());
        }
        Ok(block)
    }

    /// The bucket blocks are read from.
    pub fn bucket(&self) -> &dyn Bucket {
        self.bucket.as_ref()
    }

    /// Block `id` if it is open now.
    pub fn cached(&self, id: Ulid) -> Option<Arc<Block>> {
        self.cache.get(&id)
    }

    /// Keeps `block` open (the cache may drop it, or others, to stay within its size).
    pub fn remember(&self, block: Arc<Block>) {
        self.cache.insert(block.meta().ulid, block);
    }

    /// Block `meta`, open: from the cache, else reopened (from its local index header).
    pub async fn get(&self, meta: &BlockMeta) -> Result<Arc<Block>, BlockError> {
        if let Some(b) = self.cache.get(&meta.ulid) {
            return Ok(b);
        }
        let b = Arc::new(self.open(meta.clone()).await?);
        self.remember(b.clone());
        Ok(b)
    }

    /// Drops what is kept for blocks not in `keep`: cached blocks and index headers on disk.
    pub fn retain(&self, keep: &dyn Fn(&Ulid) -> bool) {
        let gone: Vec<Ulid> = self
            .cache
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !keep(id))
            .collect();
        for id in gone {
            self.cache.invalidate(&id);
        }
        if let Some(cache) = &self.index_cache {
            // Also the items of blocks the header cache had already dropped.
            cache.forget_blocks_except(keep);
        }
        if let Some(dir) = &self.header_dir {
            remove_headers(dir, keep);
        }
    }

    /// Approximate index memory of the blocks kept open, in bytes.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

/// Removes the header directories under `dir` of blocks `keep` rejects; leaves anything that
/// is not a block's alone.
fn remove_headers(dir: &Path, keep: &dyn Fn(&Ulid) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(id) = name.to_str().and_then(|n| Ulid::from_string(n).ok()) else {
            continue;
        };
        if !keep(&id) {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(block = %id, error = %err, "cannot remove the index header of a block gone from the bucket");
            }
        }
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
