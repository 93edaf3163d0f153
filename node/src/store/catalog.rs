//! The store role's blocks: every block of the bucket, raw and downsampled, kept in step with
//! the bucket by periodic syncs (the store gateway's meta sync). Series requests read the
//! resolution they ask for (`super::resolution`); label requests read every block.
//!
//! Blocks come from the shared metadata fetcher: the compactor's bucket index when it is fresh
//! (one GET per sync), else a listing of the bucket; deletion marks honoured after Thanos' 24 h
//! delay. Blocks that cannot be read are skipped, counted and named in Series warnings.
//!
//! Readiness: the store is ready, and serves every block, as soon as the block list is read; a
//! block is opened (its meta.json read when the index stood in for it, its index header built
//! on local disk) in the background, newest first and a bounded number at once, or by the
//! first request that needs it, whichever comes first; a request waits for the blocks of its
//! range, never answers without them. A block that fails to open is skipped with a warning on
//! every answer that needed it. Info covers every block from the start.
//!
//! Which blocks are the store's is the fetcher's business (`flags.rs` builds it from Thanos'
//! flags: time window, selector relabelling, consistency delay, deletion marks); the time
//! window also clamps what Info advertises and what requests may read.

use super::index_cache::InMemoryIndexCache;
use super::opener::BlockOpener;
use super::resolution::{get_for_each_set, Span};
use crate::query::blocks::{
    count_excluded, excluded_gauge, skipped_at_sync, store_fetcher, OPEN_CONCURRENCY,
};
use crate::query::skipped::{SkippedBlock, SkippedBlocks};
use futures::StreamExt;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use storage::block::{Block, BlockError, BlockMeta};
use storage::bucket::fetcher::filters::Clock;
use storage::bucket::fetcher::{
    read_meta, Discovered, Fetched, MetaFetcher, MetaFilter, TimeRangeFilter,
};
use storage::bucket::{Bucket, BucketError, ErrorKind};
use storage::labels::Labels;
use tokio::sync::watch;
use ulid::Ulid;

/// One of the store's blocks: its metadata and external labels, opened on first use through
/// the catalog's [`BlockOpener`].
#[derive(Debug)]
pub struct StoreBlock {
    meta: BlockMeta,
    /// meta.json as read from the bucket: set from the start after a listing; read when the
    /// block is first opened when the bucket index stood in for it.
    full_meta: OnceLock<BlockMeta>,
    /// Its external labels, which the store adds to every series it serves from the block.
    pub external: Labels,
    opener: Arc<BlockOpener>,
    /// Held while the block is being opened, so that the background and requests open it once.
    opening: tokio::sync::Mutex<()>,
    /// Opened successfully at least once: its index header is on local disk.
    checked: AtomicBool,
}

impl StoreBlock {
    /// A block known from `meta`; `from_index` when `meta` is the bucket index's stand-in.
    fn new(meta: BlockMeta, from_index: bool, opener: Arc<BlockOpener>) -> Self {
        let full_meta = OnceLock::new();
        if !from_index {
            let _ = full_meta.set(meta.clone());
        }
        StoreBlock {
            external: Labels::from(&meta.external_labels()),
            meta,
            full_meta,
            opener,
            opening: tokio::sync::Mutex::new(()),
            checked: AtomicBool::new(false),
        }
    }

    /// The block's metadata (from the bucket index: its time range, labels and resolution).
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block, open: from the opener's cache, else opened (from its local index header,
    /// built first if missing), reading meta.json first if only the index's stand-in is known.
    pub async fn open(&self) -> Result<Arc<Block>, BlockError> {
        if let Some(b) = self.opener.cached(self.meta.ulid) {
            return Ok(b);
        }
        let _one_at_a_time = self.opening.lock().await;
        if let Some(b) = self.opener.cached(self.meta.ulid) {
            return Ok(b);
        }
        let meta = match self.full_meta.get() {
            Some(m) => m.clone(),
            None => {
                let m = read_meta(self.opener.bucket(), self.meta.ulid).await?;
                self.full_meta.get_or_init(|| m).clone()
            }
        };
        let block = self.opener.get(&meta).await?;
        self.checked.store(true, Ordering::SeqCst);
        Ok(block)
    }

    /// Whether the block has been opened successfully before.
    fn is_checked(&self) -> bool {
        self.checked.load(Ordering::SeqCst)
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
    /// Index header memory of the blocks kept open, in bytes.
    pub header_cache_bytes: u64,
    /// Postings lists and series entries kept across requests (`--index-cache-size`).
    pub index_cache: Option<Arc<InMemoryIndexCache>>,
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

/// The store's block set.
pub struct Catalog {
    bucket: Arc<dyn Bucket>,
    fetcher: MetaFetcher,
    window: TimeWindow,
    opener: Arc<BlockOpener>,
    skipped: SkippedBlocks,
    /// Blocks skipped now: the last sync's and those a request failed to open since.
    skipped_now: Mutex<BTreeMap<Ulid, SkippedBlock>>,
    blocks: RwLock<Arc<BTreeMap<Ulid, Arc<StoreBlock>>>>,
    ready: AtomicBool,
    /// The first sync has finished: every block then in the bucket was opened or skipped.
    synced: AtomicBool,
    loaded: IntGauge,
    opening: IntGauge,
    index_cache: IntGauge,
    syncs: IntCounterVec,
    index_fallbacks: IntCounterVec,
    /// Blocks a filter dropped at the last sync, by reason (`duplicate`, `too-fresh`, ...).
    excluded: IntGaugeVec,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("bucket", &self.bucket.describe())
            .field("blocks", &self.snapshot().len())
            .finish()
    }
}

impl Catalog {
    /// An empty, not yet ready catalog over `bucket` with the readers' default filters (every
    /// resolution) and no time window; its metrics go to `registry`.
    pub fn new(bucket: Arc<dyn Bucket>, registry: &Registry) -> Result<Self, prometheus::Error> {
        let options = CatalogOptions {
            fetcher: store_fetcher(bucket.clone()),
            window: TimeWindow::unbounded(),
            header_dir: None,
            header_cache_bytes: u64::MAX,
            index_cache: None,
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
            header_cache_bytes,
            index_cache,
        } = options;
        let opener = Arc::new(
            BlockOpener::new(bucket.clone(), header_dir, header_cache_bytes)
                .with_index_cache(index_cache),
        );
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
            "Blocks the store serves that were not opened yet (their index header not built).",
        )?;
        let index_cache = IntGauge::new(
            "strata_store_index_cache_bytes",
            "Approximate index memory of the blocks the store keeps open, at the last sync.",
        )?;
        let index_fallbacks = IntCounterVec::new(
            Opts::new(
                "strata_store_bucket_index_fallbacks_total",
                "Syncs that listed the bucket because the bucket index was missing, stale or corrupt.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(index_cache.clone()))?;
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(opening.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        registry.register(Box::new(index_fallbacks.clone()))?;
        Ok(Catalog {
            fetcher,
            window,
            opener,
            skipped: SkippedBlocks::new("strata_store_blocks_skipped", "store", registry)?,
            skipped_now: Mutex::default(),
            bucket,
            blocks: RwLock::default(),
            ready: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            loaded,
            opening,
            index_cache,
            syncs,
            index_fallbacks,
            excluded: excluded_gauge("strata_store_blocks_excluded", registry)?,
        })
    }

    fn publish(&self, blocks: BTreeMap<Ulid, Arc<StoreBlock>>) {
        self.loaded.set(blocks.len() as i64);
        let mut g = self.blocks.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(blocks);
    }

    /// The blocks served now, by ULID (opened or not yet).
    pub fn snapshot(&self) -> Arc<BTreeMap<Ulid, Arc<StoreBlock>>> {
        self.blocks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Served blocks not opened yet (their index header not built).
    pub fn unopened(&self) -> usize {
        self.snapshot().values().filter(|b| !b.is_checked()).count()
    }

    /// Blocks overlapping `[mint, maxt]`, in ULID order, each opened (by this call if nothing
    /// opened it yet). A block that fails to open is left out, skipped and named in
    /// [`Catalog::skip_warnings`] from then on.
    pub async fn overlapping(&self, mint: i64, maxt: i64) -> Vec<Arc<StoreBlock>> {
        let blocks: Vec<Arc<StoreBlock>> = self
            .snapshot()
            .values()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect();
        self.opened(blocks).await
    }

    /// The blocks a Series request over `[mint, maxt]` reads at `max_resolution` (ms; 0 is
    /// raw only): per external label set, Thanos' choice of the coarsest blocks allowed with
    /// gaps filled by finer ones; opened as [`Catalog::overlapping`] opens them.
    pub async fn for_resolution(
        &self,
        mint: i64,
        maxt: i64,
        max_resolution: i64,
    ) -> Vec<Arc<StoreBlock>> {
        let snapshot = self.snapshot();
        let blocks: Vec<&Arc<StoreBlock>> = snapshot.values().collect();
        let span_of = |b: &StoreBlock| Span {
            min_time: b.meta.min_time,
            max_time: b.meta.max_time,
            resolution: b.meta.resolution(),
        };
        let chosen = get_for_each_set(
            &blocks,
            |b| (&b.external, span_of(b)),
            mint,
            maxt,
            max_resolution,
        );
        let mut chosen: Vec<Arc<StoreBlock>> =
            chosen.into_iter().map(|i| blocks[i].clone()).collect();
        chosen.sort_by_key(|b| b.meta.ulid);
        self.opened(chosen).await
    }

    /// `blocks`, those not opened yet opened; the ones that fail are skipped from then on.
    async fn opened(&self, blocks: Vec<Arc<StoreBlock>>) -> Vec<Arc<StoreBlock>> {
        let unchecked: Vec<Arc<StoreBlock>> =
            blocks.iter().filter(|b| !b.is_checked()).cloned().collect();
        let failed = open_unchecked(unchecked).await;
        if failed.is_empty() {
            return blocks;
        }
        self.skip_failed(&failed);
        blocks
            .into_iter()
            .filter(|b| !failed.iter().any(|(id, _)| *id == b.meta.ulid))
            .collect()
    }

    /// Takes blocks that failed to open out of the served set and into the skipped ones.
    fn skip_failed(&self, failed: &[(Ulid, BlockError)]) {
        let current = self.snapshot();
        let mut skipped = self.skipped_now.lock().unwrap_or_else(|p| p.into_inner());
        for (id, e) in failed {
            let range = current.get(id).map(|b| (b.meta.min_time, b.meta.max_time));
            skipped.insert(*id, SkippedBlock::new(*id, e, range));
        }
        self.skipped.update(skipped.values().cloned().collect());
        drop(skipped);
        let mut next = (*current).clone();
        for (id, _) in failed {
            next.remove(id);
        }
        self.publish(next);
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

    /// External label sets and time range of the blocks, those not opened yet included; the
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
        let blocks = self.snapshot();
        let sets: BTreeSet<Labels> = blocks.values().map(|b| b.external.clone()).collect();
        Coverage {
            label_sets: sets.into_iter().filter(|l| !l.is_empty()).collect(),
            min_time: blocks
                .values()
                .map(|b| b.meta.min_time)
                .min()
                .unwrap_or(i64::MAX),
            max_time: blocks
                .values()
                .map(|b| b.meta.max_time)
                .max()
                .unwrap_or(i64::MIN),
        }
    }

    /// Serves the blocks now in the bucket (forgetting those that left it), then opens the
    /// ones not opened yet; blocks that fail to open are logged, skipped and retried next sync.
    pub async fn sync(&self) -> Result<(), BucketError> {
        let fetched = match self.fetcher.fetch().await {
            Ok(f) => f,
            Err(e) => {
                self.syncs.with_label_values(&["error"]).inc();
                return Err(e);
            }
        };
        if let Discovered::Fallback(reason) = fetched.discovered {
            self.index_fallbacks
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        count_excluded(&self.excluded, &fetched);
        let (next, meta_failures) = self.served(fetched);
        self.publish(next.clone());
        if !self.ready.swap(true, Ordering::SeqCst) {
            tracing::info!(
                blocks = next.len(),
                "store: block list read; answering while blocks open"
            );
        }
        // Blocks gone from the bucket (or from the store's selection) leave the cache and disk.
        self.opener.retain(&|id| next.contains_key(id));

        let mut unchecked: Vec<Arc<StoreBlock>> =
            next.values().filter(|b| !b.is_checked()).cloned().collect();
        // Dashboards ask for recent data first.
        unchecked.sort_by_key(|b| std::cmp::Reverse((b.meta.max_time, b.meta.ulid)));
        self.opening.set(unchecked.len() as i64);
        let opened_here = unchecked.len();
        let failed = open_unchecked(unchecked).await;
        self.opening.set(0);

        let ranges: BTreeMap<Ulid, (i64, i64)> = next
            .values()
            .map(|b| (b.meta.ulid, (b.meta.min_time, b.meta.max_time)))
            .collect();
        let skipped = skipped_at_sync(&meta_failures, &failed, &ranges);
        {
            let mut now = self.skipped_now.lock().unwrap_or_else(|p| p.into_inner());
            *now = skipped.iter().map(|s| (s.id, s.clone())).collect();
        }
        self.skipped.update(skipped);
        let mut next = next;
        for (id, _) in &failed {
            next.remove(id);
        }
        let count = next.len();
        self.publish(next);
        self.index_cache
            .set(i64::try_from(self.cached_index_bytes()).unwrap_or(i64::MAX));
        self.syncs.with_label_values(&["success"]).inc();
        if !self.synced.swap(true, Ordering::SeqCst) {
            tracing::info!(blocks = count, "store: blocks loaded; serving StoreAPI");
        } else if opened_here > 0 {
            tracing::info!(
                blocks = count,
                opened = opened_here,
                "store: new blocks opened"
            );
        }
        Ok(())
    }

    /// The blocks a fetch keeps, reusing the blocks already served (and their open state);
    /// with the meta.json failures of the fetch.
    fn served(
        &self,
        fetched: Fetched,
    ) -> (BTreeMap<Ulid, Arc<StoreBlock>>, BTreeMap<Ulid, BlockError>) {
        let from_index = fetched.discovered == Discovered::Index;
        let current = self.snapshot();
        let next = fetched
            .metas
            .into_values()
            .map(|m| {
                let block = current.get(&m.ulid).cloned().unwrap_or_else(|| {
                    Arc::new(StoreBlock::new(m, from_index, self.opener.clone()))
                });
                (block.meta.ulid, block)
            })
            .collect();
        (next, fetched.failed)
    }
}

/// Opens `blocks`, [`OPEN_CONCURRENCY`] at a time; the ones that failed, with their errors.
async fn open_unchecked(blocks: Vec<Arc<StoreBlock>>) -> Vec<(Ulid, BlockError)> {
    let results: Vec<(Ulid, Option<BlockError>)> = futures::stream::iter(blocks)
        .map(|b| async move { (b.meta.ulid, b.open().await.err()) })
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    results
        .into_iter()
        .filter_map(|(id, e)| e.map(|e| (id, e)))
        .collect()
}

/// Re-syncs `catalog` every `interval` until `stop`; retries every few seconds until the first
/// sync succeeds. The bucket refusing the credentials at the first sync is fatal, as in Thanos:
/// retrying cannot fix a wrong secret, and an operator sees an exit sooner than a log line.
pub async fn run_sync_loop(
    catalog: Arc<Catalog>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BucketError> {
    const RETRY: Duration = Duration::from_secs(5);
    loop {
        let wait = match catalog.sync().await {
            Ok(()) => interval,
            Err(e) if e.kind == ErrorKind::Unauthorized && !catalog.is_ready() => return Err(e),
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
            _ = stop.changed() => return Ok(()),
        }
    }
}
