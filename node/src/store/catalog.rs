//! The store role's blocks: every raw block of the bucket opened, kept in step with the bucket
//! by periodic syncs (the store gateway's meta sync).
//!
//! Blocks come from the shared metadata fetcher (deletion marks honoured after Thanos' 24 h
//! delay); blocks that cannot be read are skipped, counted and named in Series warnings.
//!
//! Readiness: the store is ready once the first listing of the bucket has been read; blocks
//! then open in the background (newest first, many at once) and are served as they open. A
//! request whose time range meets a block still opening is refused as `Unavailable` rather
//! than answered without it, so an answer is never silently partial; Info covers the opening
//! blocks too, so that a querier does not prune the store for their range.
//!
//! Which blocks are the store's is the fetcher's business (`flags.rs` builds it from Thanos'
//! flags: time window, selector relabelling, consistency delay, deletion marks); the time
//! window also clamps what Info advertises and what requests may read.
//!
//! Unfinished: downsampled blocks are skipped (no aggregate chunks over the wire yet).

use super::opener::BlockOpener;
use crate::query::blocks::{
    reader_fetcher, refresh_open_blocks_with, skipped_at_sync, RefreshProgress,
};
use crate::query::skipped::SkippedBlocks;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage::block::{Block, BlockMeta};
use storage::bucket::fetcher::filters::Clock;
use storage::bucket::fetcher::{Fetched, MetaFetcher, MetaFilter, TimeRangeFilter};
use storage::bucket::{Bucket, BucketError};
use storage::labels::Labels;
use tokio::sync::watch;
use ulid::Ulid;

/// One of the store's blocks: its metadata and external labels, opened on use through the
/// catalog's [`BlockOpener`].
#[derive(Debug)]
pub struct StoreBlock {
    meta: BlockMeta,
    /// Its external labels, which the store adds to every series it serves from the block.
    pub external: Labels,
    opener: Arc<BlockOpener>,
}

impl StoreBlock {
    /// The block's metadata.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block, open (reopened from its local index header if the cache dropped it).
    pub async fn open(&self) -> Result<Arc<Block>, storage::block::BlockError> {
        self.opener.get(&self.meta).await
    }

    /// The block's `[minTime, maxTime)` meets `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.meta.min_time <= maxt && mint < self.meta.max_time
    }
}

/// How a catalog finds, opens and keeps its blocks.
pub struct CatalogOptions {
    /// Which blocks are the store's.
    pub fetcher: MetaFetcher,
    /// The time range served.
    pub window: TimeWindow,
    /// Where index headers are kept; `None` opens indexes without them.
    pub header_dir: Option<PathBuf>,
    /// Index memory of the blocks kept open, in bytes.
    pub index_cache_bytes: u64,
}

/// What the store serves, for Info: its external label sets and time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Coverage {
    /// Distinct external label sets of the blocks.
    pub label_sets: Vec<Labels>,
    /// Earliest block start; `i64::MAX` with no blocks.
    pub min_time: i64,
    /// Latest block end; `i64::MIN` with no blocks.
    pub max_time: i64,
}

/// The store's time window (`--min-time`, `--max-time`), resolved against the clock whenever
/// it is used, so that relative bounds slide.
#[derive(Clone)]
pub struct TimeWindow {
    /// Earliest time served.
    pub min: super::flags::TimeOrDuration,
    /// Latest time served.
    pub max: super::flags::TimeOrDuration,
    /// Now, for relative bounds.
    pub clock: Clock,
}

impl std::fmt::Debug for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TimeWindow({:?}, {:?})", self.min, self.max)
    }
}

impl TimeWindow {
    /// No bounds.
    pub fn unbounded() -> Self {
        use super::flags::TimeOrDuration::At;
        TimeWindow {
            min: At(i64::MIN),
            max: At(i64::MAX),
            clock: storage::bucket::fetcher::filters::system_clock(),
        }
    }

    /// `(min, max)` in ms now.
    pub fn resolve(&self) -> (i64, i64) {
        let now = (self.clock)();
        (self.min.resolve(now), self.max.resolve(now))
    }

    /// `[mint, maxt]` narrowed to the window; `None` when nothing of it is served.
    pub fn clamp(&self, mint: i64, maxt: i64) -> Option<(i64, i64)> {
        let (min, max) = self.resolve();
        let (a, b) = (mint.max(min), maxt.min(max));
        (a <= b).then_some((a, b))
    }
}

/// Thanos' time partition filter over a [`TimeWindow`]: blocks outside it are not loaded.
#[derive(Debug, Clone)]
pub struct TimeWindowFilter(pub TimeWindow);

#[async_trait::async_trait]
impl MetaFilter for TimeWindowFilter {
    async fn filter(&self, bucket: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        let (min_ms, max_ms) = self.0.resolve();
        TimeRangeFilter { min_ms, max_ms }
            .filter(bucket, fetched)
            .await
    }
}

/// Blocks open and blocks still opening, published together so that a reader never sees a
/// block in neither.
#[derive(Default)]
struct State {
    open: Arc<BTreeMap<Ulid, Arc<StoreBlock>>>,
    opening: Arc<BTreeMap<Ulid, BlockMeta>>,
}

/// Blocks of a request's time range that are still opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{waiting} blocks of the requested time range are still being opened ({opening} in all)")]
pub struct StillOpening {
    /// Of the range.
    pub waiting: usize,
    /// In the whole store.
    pub opening: usize,
}

/// The store's block set.
pub struct Catalog {
    bucket: Arc<dyn Bucket>,
    fetcher: MetaFetcher,
    window: TimeWindow,
    opener: Arc<BlockOpener>,
    skipped: SkippedBlocks,
    state: RwLock<State>,
    ready: AtomicBool,
    /// The first sync has finished: every block then in the bucket was opened or failed.
    synced: AtomicBool,
    loaded: IntGauge,
    opening: IntGauge,
    index_cache: IntGauge,
    syncs: IntCounterVec,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("bucket", &self.bucket.describe())
            .field("blocks", &self.snapshot().len())
            .field("opening", &self.read().opening.len())
            .finish()
    }
}

impl Catalog {
    /// An empty, not yet ready catalog over `bucket` with the readers' default filters and no
    /// time window; its metrics go to `registry`.
    pub fn new(bucket: Arc<dyn Bucket>, registry: &Registry) -> Result<Self, prometheus::Error> {
        let options = CatalogOptions {
            fetcher: reader_fetcher(bucket.clone()),
            window: TimeWindow::unbounded(),
            header_dir: None,
            index_cache_bytes: u64::MAX,
        };
        Self::with_options(bucket, options, registry)
    }

    /// An empty, not yet ready catalog as `options` say.
    pub fn with_options(
        bucket: Arc<dyn Bucket>,
        options: CatalogOptions,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let CatalogOptions {
            fetcher,
            window,
            header_dir,
            index_cache_bytes,
        } = options;
        let opener = Arc::new(BlockOpener::new(
            bucket.clone(),
            header_dir,
            index_cache_bytes,
        ));
        let loaded = IntGauge::new(
            "strata_store_blocks_loaded",
            "Blocks the store role serves.",
        )?;
        let syncs = IntCounterVec::new(
            Opts::new(
                "strata_store_block_syncs_total",
                "Syncs of the store's blocks with the bucket, by result.",
            ),
            &["result"],
        )?;
        let opening = IntGauge::new(
            "strata_store_blocks_opening",
            "Blocks found in the bucket that the store role is still opening.",
        )?;
        let index_cache = IntGauge::new(
            "strata_store_index_cache_bytes",
            "Approximate index memory of the blocks the store keeps open, at the last sync.",
        )?;
        registry.register(Box::new(index_cache.clone()))?;
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(opening.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        Ok(Catalog {
            fetcher,
            window,
            opener,
            skipped: SkippedBlocks::new("strata_store_blocks_skipped", "store", registry)?,
            bucket,
            state: RwLock::new(State::default()),
            ready: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            loaded,
            opening,
            index_cache,
            syncs,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(
        &self,
        open: Arc<BTreeMap<Ulid, Arc<StoreBlock>>>,
        opening: BTreeMap<Ulid, BlockMeta>,
    ) {
        self.loaded.set(open.len() as i64);
        self.opening.set(opening.len() as i64);
        let mut g = self.state.write().unwrap_or_else(|p| p.into_inner());
        *g = State {
            open,
            opening: Arc::new(opening),
        };
    }

    /// The open blocks now, by ULID.
    pub fn snapshot(&self) -> Arc<BTreeMap<Ulid, Arc<StoreBlock>>> {
        self.read().open.clone()
    }

    /// Blocks overlapping `[mint, maxt]`, in ULID order; refused while a block of the range is
    /// still opening.
    pub fn overlapping(&self, mint: i64, maxt: i64) -> Result<Vec<Arc<StoreBlock>>, StillOpening> {
        let (open, opening) = {
            let g = self.read();
            (g.open.clone(), g.opening.clone())
        };
        let waiting = opening
            .values()
            .filter(|m| m.min_time <= maxt && mint < m.max_time)
            .count();
        if waiting > 0 {
            return Err(StillOpening {
                waiting,
                opening: opening.len(),
            });
        }
        Ok(open
            .values()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect())
    }

    /// Warnings naming the blocks skipped at the last sync that an answer over `[mint, maxt]`
    /// needed.
    pub fn skip_warnings(&self, mint: i64, maxt: i64) -> Vec<String> {
        self.skipped.warnings(mint, maxt)
    }

    /// Whether the first sync succeeded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// External label sets and time range of the blocks, those still opening included; the
    /// range includes skipped blocks' too, so that a query needing only those still reaches
    /// this store and gets its warning. The range is clamped to the time window.
    pub fn coverage(&self) -> Coverage {
        let mut c = self.loaded_coverage();
        if let Some((min, max)) = self.skipped.span() {
            c.min_time = c.min_time.min(min);
            c.max_time = c.max_time.max(max);
        }
        let (min, max) = self.window.resolve();
        c.min_time = c.min_time.max(min);
        c.max_time = c.max_time.min(max);
        c
    }

    /// Approximate index memory of the blocks kept open, in bytes.
    pub fn cached_index_bytes(&self) -> u64 {
        self.opener.cached_bytes()
    }

    /// The store's time window (`--min-time`, `--max-time`).
    pub fn window(&self) -> &TimeWindow {
        &self.window
    }

    fn loaded_coverage(&self) -> Coverage {
        let (open, opening) = {
            let g = self.read();
            (g.open.clone(), g.opening.clone())
        };
        let metas = || open.values().map(|b| b.meta()).chain(opening.values());
        let sets: BTreeSet<Labels> = open
            .values()
            .map(|b| b.external.clone())
            .chain(opening.values().map(|m| Labels::from(&m.external_labels())))
            .collect();
        Coverage {
            label_sets: sets.into_iter().filter(|l| !l.is_empty()).collect(),
            min_time: metas().map(|m| m.min_time).min().unwrap_or(i64::MAX),
            max_time: metas().map(|m| m.max_time).max().unwrap_or(i64::MIN),
        }
    }

    /// Opens blocks that appeared in the bucket and forgets blocks that left it; blocks that
    /// fail to open are logged, skipped and retried next sync.
    pub async fn sync(&self) -> Result<(), BucketError> {
        let fetched = match self.fetcher.fetch().await {
            Ok(f) => f,
            Err(e) => {
                self.syncs.with_label_values(&["error"]).inc();
                return Err(e);
            }
        };
        let ranges: BTreeMap<Ulid, (i64, i64)> = fetched
            .metas
            .values()
            .map(|m| (m.ulid, (m.min_time, m.max_time)))
            .collect();
        let opener = &self.opener;
        let (next, failed) = refresh_open_blocks_with(
            fetched.metas.into_values(),
            &self.snapshot(),
            |meta| opener.open(meta),
            |block| {
                let block = Arc::new(block);
                opener.remember(block.clone());
                StoreBlock {
                    meta: block.meta().clone(),
                    external: Labels::from(&block.meta().external_labels()),
                    opener: opener.clone(),
                }
            },
            |p: RefreshProgress<'_, StoreBlock>| {
                self.publish(Arc::new(p.open.clone()), p.opening.clone());
                if !self.ready.swap(true, Ordering::SeqCst) {
                    tracing::info!(
                        open = p.open.len(),
                        opening = p.opening.len(),
                        "store: block list read; answering for open blocks while the rest open"
                    );
                }
            },
        )
        .await;
        // Blocks gone from the bucket (or from the store's selection) leave the cache and disk.
        self.opener.retain(&|id| next.contains_key(id));
        self.skipped
            .update(skipped_at_sync(&fetched.failed, &failed, &ranges));
        let count = next.len();
        let was_opening = !self.read().opening.is_empty();
        self.publish(Arc::new(next), BTreeMap::new());
        self.index_cache
            .set(i64::try_from(self.cached_index_bytes()).unwrap_or(i64::MAX));
        self.syncs.with_label_values(&["success"]).inc();
        if !self.synced.swap(true, Ordering::SeqCst) {
            tracing::info!(blocks = count, "store: blocks loaded; serving StoreAPI");
        } else if was_opening {
            tracing::info!(blocks = count, "store: new blocks opened");
        }
        Ok(())
    }
}

/// Re-syncs `catalog` every `interval` until `stop`; retries every few seconds until the first
/// sync succeeds.
pub async fn run_sync_loop(
    catalog: Arc<Catalog>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    const RETRY: Duration = Duration::from_secs(5);
    loop {
        let wait = match catalog.sync().await {
            Ok(()) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "store: syncing blocks with the bucket failed");
                if catalog.is_ready() {
                    interval
                } else {
                    RETRY
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
