//! Thanos' in-memory index cache: postings lists keyed by (block, label name, label value) and
//! series entries keyed by (block, series ref), kept across requests in one LRU bounded by
//! `--index-cache-size`, with Thanos' `thanos_store_index_cache_*` metrics (`item_type`
//! `Postings` / `Series`).
//!
//! Items are held decoded (a postings list as its refs, a series entry as labels and chunk
//! metas) and weighed by an estimate of their memory, so the bound is on memory rather than
//! on Thanos' encoded bytes. Blocks are immutable; the entries of a block that left the
//! bucket are dropped when the store forgets the block ([`InMemoryIndexCache::forget_block`]).

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use storage::block::index::{ChunkMeta, IndexCache, SeriesEntry};
use ulid::Ulid;

/// Thanos' largest single item of the in-memory index cache (125 MiB).
pub const DEFAULT_MAX_ITEM_BYTES: u64 = 125 << 20;

const POSTINGS: &str = "Postings";
const SERIES: &str = "Series";

/// What an item is cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Postings(Ulid, String, String),
    Series(Ulid, u32),
}

impl Key {
    fn block(&self) -> Ulid {
        match self {
            Key::Postings(b, ..) | Key::Series(b, _) => *b,
        }
    }

    fn bytes(&self) -> u64 {
        let fixed = std::mem::size_of::<Key>() as u64;
        match self {
            Key::Postings(_, n, v) => fixed + (n.len() + v.len()) as u64,
            Key::Series(..) => fixed,
        }
    }
}

#[derive(Debug, Clone)]
enum Item {
    Postings(Arc<[u32]>),
    Series(Arc<SeriesEntry>),
}

impl Item {
    fn item_type(&self) -> &'static str {
        match self {
            Item::Postings(_) => POSTINGS,
            Item::Series(_) => SERIES,
        }
    }

    /// Approximate memory of the value.
    fn bytes(&self) -> u64 {
        const STRING: usize = std::mem::size_of::<String>();
        let n = match self {
            Item::Postings(refs) => 16 + 4 * refs.len(),
            Item::Series(entry) => {
                let (labels, metas) = &**entry;
                let strings: usize = labels
                    .iter()
                    .map(|l| l.name.len() + l.value.len() + 2 * STRING)
                    .sum();
                16 + 2 * std::mem::size_of::<Vec<u8>>()
                    + strings
                    + metas.len() * std::mem::size_of::<ChunkMeta>()
            }
        };
        n as u64
    }
}

/// Thanos' `thanos_store_index_cache_*` metrics.
#[derive(Debug, Clone)]
struct Metrics {
    requests: IntCounterVec,
    hits: IntCounterVec,
    added: IntCounterVec,
    evicted: IntCounterVec,
    overflowed: IntCounterVec,
    items: IntGaugeVec,
    items_size: IntGaugeVec,
    total_size: IntGaugeVec,
}

impl Metrics {
    fn new(registry: &Registry, max_bytes: u64, max_item_bytes: u64) -> prometheus::Result<Self> {
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["item_type"]);
        let gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["item_type"]);
        let m = Metrics {
            requests: counter(
                "thanos_store_index_cache_requests_total",
                "Total number of requests to the cache.",
            )?,
            hits: counter(
                "thanos_store_index_cache_hits_total",
                "Total number of requests to the cache that were a hit.",
            )?,
            added: counter(
                "thanos_store_index_cache_items_added_total",
                "Total number of items that were added to the index cache.",
            )?,
            evicted: counter(
                "thanos_store_index_cache_items_evicted_total",
                "Total number of items that were evicted from the index cache.",
            )?,
            overflowed: counter(
                "thanos_store_index_cache_items_overflowed_total",
                "Total number of items that could not be added to the cache due to being too big.",
            )?,
            items: gauge(
                "thanos_store_index_cache_items",
                "Current number of items in the index cache.",
            )?,
            items_size: gauge(
                "thanos_store_index_cache_items_size_bytes",
                "Current byte size of items in the index cache.",
            )?,
            total_size: gauge(
                "thanos_store_index_cache_total_size_bytes",
                "Current byte size of items and keys in the index cache.",
            )?,
        };
        for t in [POSTINGS, SERIES] {
            for c in [&m.requests, &m.hits, &m.added, &m.evicted, &m.overflowed] {
                c.with_label_values(&[t]);
            }
            for g in [&m.items, &m.items_size, &m.total_size] {
                g.with_label_values(&[t]);
            }
        }
        let max = IntGauge::new(
            "thanos_store_index_cache_max_size_bytes",
            "Maximum number of bytes to be held in the index cache.",
        )?;
        max.set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        let max_item = IntGauge::new(
            "thanos_store_index_cache_max_item_size_bytes",
            "Maximum number of bytes for single entry to be held in the index cache.",
        )?;
        max_item.set(i64::try_from(max_item_bytes).unwrap_or(i64::MAX));
        for c in [&m.requests, &m.hits, &m.added, &m.evicted, &m.overflowed] {
            registry.register(Box::new(c.clone()))?;
        }
        for g in [&m.items, &m.items_size, &m.total_size] {
            registry.register(Box::new(g.clone()))?;
        }
        registry.register(Box::new(max))?;
        registry.register(Box::new(max_item))?;
        Ok(m)
    }

    fn added(&self, key: &Key, item: &Item) {
        let t = item.item_type();
        self.added.with_label_values(&[t]).inc();
        self.items.with_label_values(&[t]).inc();
        self.items_size
            .with_label_values(&[t])
            .add(as_i64(item.bytes()));
        self.total_size
            .with_label_values(&[t])
            .add(as_i64(item.bytes() + key.bytes()));
    }

    fn removed(&self, key: &Key, item: &Item, cause: RemovalCause) {
        let t = item.item_type();
        if cause == RemovalCause::Size {
            self.evicted.with_label_values(&[t]).inc();
        }
        self.items.with_label_values(&[t]).dec();
        self.items_size
            .with_label_values(&[t])
            .sub(as_i64(item.bytes()));
        self.total_size
            .with_label_values(&[t])
            .sub(as_i64(item.bytes() + key.bytes()));
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The store's index cache: an LRU of postings lists and series entries of every block,
/// at most `max_bytes` in all and `max_item_bytes` per item.
#[derive(Clone)]
pub struct InMemoryIndexCache {
    cache: Cache<Key, Item, foldhash::fast::RandomState>,
    max_item_bytes: u64,
    metrics: Metrics,
    /// Blocks that had items stored, so that those of departed blocks can be dropped.
    blocks: Arc<Mutex<HashSet<Ulid>>>,
}

impl std::fmt::Debug for InMemoryIndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryIndexCache")
            .field("items", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish()
    }
}

impl InMemoryIndexCache {
    /// A cache of at most `max_bytes` (`--index-cache-size`), items of at most Thanos'
    /// 125 MiB or `max_bytes`, whichever is less; metrics go to `registry`.
    pub fn new(max_bytes: u64, registry: &Registry) -> prometheus::Result<Self> {
        let max_item_bytes = DEFAULT_MAX_ITEM_BYTES.min(max_bytes);
        let metrics = Metrics::new(registry, max_bytes, max_item_bytes)?;
        let listener = metrics.clone();
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(|k: &Key, v: &Item| u32::try_from(k.bytes() + v.bytes()).unwrap_or(u32::MAX))
            .eviction_listener(move |k: Arc<Key>, v: Item, cause| {
                if cause != RemovalCause::Replaced {
                    listener.removed(&k, &v, cause);
                }
            })
            .support_invalidation_closures()
            // A Series request looks up every selected series: SipHash showed in its profile.
            .build_with_hasher(foldhash::fast::RandomState::default());
        Ok(InMemoryIndexCache {
            cache,
            max_item_bytes,
            metrics,
            blocks: Arc::default(),
        })
    }

    fn get(&self, key: &Key, item_type: &'static str) -> Option<Item> {
        self.metrics.requests.with_label_values(&[item_type]).inc();
        let hit = self.cache.get(key)?;
        self.metrics.hits.with_label_values(&[item_type]).inc();
        Some(hit)
    }

    fn set(&self, key: Key, item: Item) {
        if key.bytes() + item.bytes() > self.max_item_bytes {
            self.metrics
                .overflowed
                .with_label_values(&[item.item_type()])
                .inc();
            return;
        }
        // Two requests may read the same item at once; the first one stored wins (as in
        // Thanos), so that gauges count each item once.
        let entry = self
            .cache
            .entry(key.clone())
            .or_insert_with(|| item.clone());
        if entry.is_fresh() {
            self.metrics.added(&key, &item);
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            blocks.insert(key.block());
        }
    }

    /// Drops every item of the blocks `keep` rejects (blocks that left the bucket).
    pub fn forget_blocks_except(&self, keep: &dyn Fn(&Ulid) -> bool) {
        let gone: HashSet<Ulid> = {
            let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            let gone: HashSet<Ulid> = blocks.iter().filter(|b| !keep(b)).copied().collect();
            blocks.retain(|b| !gone.contains(b));
            gone
        };
        if gone.is_empty() {
            return;
        }
        // Only fails when closures are not enabled, which `new` does.
        let _ = self
            .cache
            .invalidate_entries_if(move |k, _| gone.contains(&k.block()));
    }

    /// Items held now and their estimated bytes (after pending evictions are applied).
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

impl IndexCache for InMemoryIndexCache {
    fn postings(&self, block: Ulid, name: &str, value: &str) -> Option<Arc<[u32]>> {
        let key = Key::Postings(block, name.to_string(), value.to_string());
        match self.get(&key, POSTINGS)? {
            Item::Postings(refs) => Some(refs),
            Item::Series(_) => None,
        }
    }

    fn store_postings(&self, block: Ulid, name: &str, value: &str, refs: Arc<[u32]>) {
        let key = Key::Postings(block, name.to_string(), value.to_string());
        self.set(key, Item::Postings(refs));
    }

    fn series(&self, block: Ulid, series_ref: u32) -> Option<Arc<SeriesEntry>> {
        match self.get(&Key::Series(block, series_ref), SERIES)? {
            Item::Series(entry) => Some(entry),
            Item::Postings(_) => None,
        }
    }

    fn series_batch(&self, block: Ulid, refs: &[u32]) -> Vec<Option<Arc<SeriesEntry>>> {
        let found: Vec<Option<Arc<SeriesEntry>>> = refs
            .iter()
            .map(|&r| match self.cache.get(&Key::Series(block, r)) {
                Some(Item::Series(entry)) => Some(entry),
                _ => None,
            })
            .collect();
        // The counters once per batch: their label lookup costs as much as a cache hit.
        let hits = found.iter().filter(|f| f.is_some()).count();
        self.metrics
            .requests
            .with_label_values(&[SERIES])
            .inc_by(refs.len() as u64);
        self.metrics
            .hits
            .with_label_values(&[SERIES])
            .inc_by(hits as u64);
        found
    }

    fn store_series(&self, block: Ulid, series_ref: u32, entry: Arc<SeriesEntry>) {
        self.set(Key::Series(block, series_ref), Item::Series(entry));
    }
}

#[cfg(test)]
#[path = "index_cache_tests.rs"]
mod tests;
