//! The bucket's blocks read directly (the embedded mode): a [`Queryable`] over every block in
//! the bucket, kept in step with the bucket by periodic syncs. Raw reads (the default) decode
//! raw blocks here; reads at a coarser resolution choose blocks and decode aggregates as the
//! store gateway and the StoreAPI querier do (`super::downsampled`).

use super::merge::{match_external, merge_samples, ExternalMatch};
use super::skipped::{SkippedBlock, SkippedBlocks};
use crate::http::SeriesSource;
use crate::store::convert::Resolution;
use crate::store::resolution::{get_for_each_set, Span};
use async_trait::async_trait;
use futures::StreamExt;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use promql::{QueryError, Queryable, SampleBudget, SeriesData};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use storage::block::{Block, BlockError, BlockMeta};
use storage::bucket::fetcher::{
    filters::system_clock, read_meta, DeduplicateFilter, DeletionMarkFilter, Discovered, Discovery,
    Fetched, MetaFetcher,
};
use storage::bucket::Bucket;
use storage::labels::Labels;
use storage::matcher::Matcher;
use ulid::Ulid;

/// Blocks opened at once during a sync: over S3 each open is a few round trips, so enough
/// to keep the bucket busy while one core parses what came back.
pub(crate) const OPEN_CONCURRENCY: usize = 32;

/// One sync of a set of open blocks against the bucket's `metas`: blocks already open and still
/// in the bucket are kept, new blocks are opened (newest first, a few at a time) and wrapped.
/// Blocks that failed to open come back with their errors for the caller to log and count; they are retried next sync.
/// With `from_index`, `metas` are the bucket index's stand-ins and each block's meta.json is
/// read before it is opened.
pub(crate) async fn refresh_open_blocks<T>(
    bucket: &Arc<dyn Bucket>,
    from_index: bool,
    metas: impl IntoIterator<Item = BlockMeta>,
    current: &BTreeMap<Ulid, Arc<T>>,
    wrap: impl Fn(Block) -> T,
) -> (BTreeMap<Ulid, Arc<T>>, Vec<(Ulid, BlockError)>) {
    let open = |meta: BlockMeta| async move {
        let meta = if from_index {
            read_meta(bucket.as_ref(), meta.ulid).await?
        } else {
            meta
        };
        Block::open_bucket(bucket.clone(), meta).await
    };
    refresh_open_blocks_with(metas, current, open, wrap).await
}

/// [`refresh_open_blocks`] opening each block with `open`.
async fn refresh_open_blocks_with<T, F>(
    metas: impl IntoIterator<Item = BlockMeta>,
    current: &BTreeMap<Ulid, Arc<T>>,
    open: impl Fn(BlockMeta) -> F,
    wrap: impl Fn(Block) -> T,
) -> (BTreeMap<Ulid, Arc<T>>, Vec<(Ulid, BlockError)>)
where
    F: std::future::Future<Output = Result<Block, BlockError>>,
{
    let wanted: Vec<BlockMeta> = metas.into_iter().collect();
    let mut next: BTreeMap<Ulid, Arc<T>> = wanted
        .iter()
        .filter_map(|m| current.get(&m.ulid).map(|b| (m.ulid, b.clone())))
        .collect();
    let mut to_open: Vec<BlockMeta> = wanted
        .into_iter()
        .filter(|m| !current.contains_key(&m.ulid))
        .collect();
    // Dashboards ask for recent data first.
    to_open.sort_by_key(|m| std::cmp::Reverse((m.max_time, m.ulid)));
    let results: Vec<(Ulid, Result<Block, BlockError>)> = futures::stream::iter(to_open)
        .map(|meta| {
            let id = meta.ulid;
            let opening = open(meta);
            async move { (id, opening.await) }
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    let mut failed = Vec::new();
    for (id, result) in results {
        match result {
            Ok(block) => {
                next.insert(id, Arc::new(wrap(block)));
            }
            Err(e) => failed.push((id, e)),
        }
    }
    (next, failed)
}

/// One opened block and its external labels.
#[derive(Debug)]
pub(super) struct LoadedBlock {
    pub(super) block: Arc<Block>,
    pub(super) external: Labels,
}

impl LoadedBlock {
    /// The block as the choice of resolution sees it.
    fn span(&self) -> Span {
        let m = self.block.meta();
        Span {
            min_time: m.min_time,
            max_time: m.max_time,
            resolution: m.resolution(),
        }
    }

    /// Prometheus' `OverlapsClosedInterval`: the block's `[minTime, maxTime)` meets
    /// `[mint, maxt]`.
    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let m = self.block.meta();
        m.min_time <= maxt && mint < m.max_time
    }

    /// Series refs the matchers select, or `None` when the external labels rule the block out.
    pub(super) async fn postings(
        &self,
        matchers: &[Matcher],
    ) -> Result<Option<Vec<u32>>, BlockError> {
        let remaining = match match_external(&self.external, matchers) {
            ExternalMatch::Excluded => return Ok(None),
            ExternalMatch::Remaining(r) => r,
        };
        let refs = if remaining.is_empty() {
            self.block.index().all_postings().await?
        } else {
            self.block.index().postings_for_matchers(&remaining).await?
        };
        Ok(Some(refs))
    }

    /// Series labels as queries see them: the block's external labels win over the series'.
    pub(super) fn with_external(&self, labels: Labels) -> Labels {
        if self.external.is_empty() {
            labels
        } else {
            labels.merged(&self.external)
        }
    }

    /// Series `refs` of this block with samples in the range, external labels applied.
    async fn select_refs(
        self: Arc<Self>,
        refs: Arc<[u32]>,
        part: std::ops::Range<usize>,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(Labels, Vec<(i64, f64)>)>, BlockError> {
        let found = self
            .block
            .select_refs(refs.get(part).unwrap_or_default(), mint, maxt)
            .await?;
        Ok(found
            .into_iter()
            .map(|s| (self.with_external(s.labels), s.samples))
            .collect())
    }
}

/// Series per task when a block's postings are split so that both cores decode chunks: large
/// enough that task overhead stays negligible.
const SERIES_PER_TASK: usize = 256;

/// Most tasks one block's series are split into: the machine's cores. Probed once, as the
/// probe reads cgroup files and costs more than a small query's whole evaluation.
fn max_parts() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Metrics of the embedded block set.
#[derive(Debug, Clone)]
struct BlockSetMetrics {
    loaded: IntGauge,
    load_failures: IntCounter,
    syncs: IntCounterVec,
    index_fallbacks: IntCounterVec,
    excluded: IntGaugeVec,
}

impl BlockSetMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let loaded = IntGauge::new(
            "strata_query_blocks_loaded",
            "Blocks the embedded querier has open.",
        )?;
        let load_failures = IntCounter::new(
            "strata_query_block_load_failures_total",
            "Blocks that could not be opened (corrupt or unreadable).",
        )?;
        let syncs = IntCounterVec::new(
            Opts::new(
                "strata_query_block_syncs_total",
                "Syncs of the block set with the bucket, by result.",
            ),
            &["result"],
        )?;
        let index_fallbacks = IntCounterVec::new(
            Opts::new(
                "strata_query_bucket_index_fallbacks_total",
                "Syncs that listed the bucket because the bucket index was missing, stale or corrupt.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(load_failures.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        registry.register(Box::new(index_fallbacks.clone()))?;
        Ok(BlockSetMetrics {
            loaded,
            load_failures,
            syncs,
            index_fallbacks,
            excluded: excluded_gauge("strata_query_blocks_excluded", registry)?,
        })
    }
}

/// Thanos' default `--ignore-deletion-marks-delay`: a block marked for deletion is still served
/// this long, so queries in flight when the compactor marks it are not cut short.
pub(crate) const IGNORE_DELETION_MARKS_DELAY_MS: i64 = 24 * 3600 * 1000;

/// How old a bucket index readers believe by default (`--bucket-index.max-stale-period`,
/// Cortex's default): older, they list the bucket instead.
pub const DEFAULT_INDEX_MAX_STALE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Block discovery through the bucket index when it is at most `max_stale` old; a zero bound
/// always lists the bucket.
pub fn index_discovery(max_stale: std::time::Duration) -> Discovery {
    if max_stale.is_zero() {
        return Discovery::Listing;
    }
    Discovery::Index {
        max_stale_ms: i64::try_from(max_stale.as_millis()).unwrap_or(i64::MAX),
        clock: system_clock(),
    }
}

/// The fetcher a store uses without flags: the bucket index when fresh, blocks of every
/// resolution, not marked for deletion longer than Thanos' delay.
pub(crate) fn store_fetcher(bucket: Arc<dyn Bucket>) -> MetaFetcher {
    MetaFetcher::new(bucket)
        .with_discovery(index_discovery(DEFAULT_INDEX_MAX_STALE))
        .with_filter(DeletionMarkFilter {
            delay_ms: IGNORE_DELETION_MARKS_DELAY_MS,
            clock: system_clock(),
        })
        .with_filter(DeduplicateFilter)
}

/// A gauge `name{reason}` of the bucket's blocks a filter dropped at the last sync, by the
/// filter's reason (Thanos' `blocks_meta_synced` states: `duplicate`, `too-fresh`, ...).
pub(crate) fn excluded_gauge(name: &str, registry: &Registry) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(
        Opts::new(
            name,
            "Blocks of the bucket left out at the last sync, by the filter's reason.",
        ),
        &["reason"],
    )?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Sets `gauge` to what `fetched` excluded; reasons seen before and absent now read 0.
pub(crate) fn count_excluded(gauge: &IntGaugeVec, fetched: &Fetched) {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for reason in fetched.excluded.values() {
        *counts.entry(reason).or_default() += 1;
    }
    for reason in storage::bucket::fetcher::EXCLUDED_REASONS {
        gauge
            .with_label_values(&[reason])
            .set(counts.remove(reason).unwrap_or(0));
    }
    for (reason, n) in counts {
        gauge.with_label_values(&[reason]).set(n);
    }
}

/// One sync's blocks that could not be used: unreadable meta.json (no time range), and blocks
/// that failed to open (with their meta's range).
pub(crate) fn skipped_at_sync(
    meta_failures: &BTreeMap<Ulid, BlockError>,
    open_failures: &[(Ulid, BlockError)],
    ranges: &BTreeMap<Ulid, (i64, i64)>,
) -> Vec<SkippedBlock> {
    meta_failures
        .iter()
        .map(|(id, e)| SkippedBlock::new(*id, e, None))
        .chain(
            open_failures
                .iter()
                .map(|(id, e)| SkippedBlock::new(*id, e, ranges.get(id).copied())),
        )
        .collect()
}

/// Every block of a bucket, raw and downsampled, opened for queries.
pub struct BlockSet {
    bucket: Arc<dyn Bucket>,
    fetcher: MetaFetcher,
    skipped: SkippedBlocks,
    blocks: RwLock<Arc<BTreeMap<Ulid, Arc<LoadedBlock>>>>,
    ready: AtomicBool,
    metrics: BlockSetMetrics,
}

impl std::fmt::Debug for BlockSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSet")
            .field("bucket", &self.bucket.describe())
            .field("blocks", &self.snapshot().len())
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .finish()
    }
}

pub(super) fn storage_error(e: impl std::fmt::Display) -> QueryError {
    QueryError::Storage(e.to_string())
}

impl BlockSet {
    /// An empty, not yet ready set over `bucket`; its metrics go to `registry`.
    pub fn new(bucket: Arc<dyn Bucket>, registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(BlockSet {
            fetcher: store_fetcher(bucket.clone()),
            skipped: SkippedBlocks::new("strata_query_blocks_skipped", "query", registry)?,
            bucket,
            blocks: RwLock::new(Arc::new(BTreeMap::new())),
            ready: AtomicBool::new(false),
            metrics: BlockSetMetrics::register(registry)?,
        })
    }

    fn snapshot(&self) -> Arc<BTreeMap<Ulid, Arc<LoadedBlock>>> {
        match self.blocks.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn overlapping(&self, mint: i64, maxt: i64) -> Vec<Arc<LoadedBlock>> {
        self.snapshot()
            .values()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect()
    }

    /// Opens blocks that appeared in the bucket and forgets blocks that left it. Blocks that
    /// fail to open are logged and skipped (and retried next sync). The set is ready after the
    /// first sync that could list the bucket.
    pub async fn sync(&self) -> Result<(), storage::bucket::BucketError> {
        let fetched = match self.fetcher.fetch().await {
            Ok(f) => f,
            Err(e) => {
                self.metrics.syncs.with_label_values(&["error"]).inc();
                return Err(e);
            }
        };
        if let Discovered::Fallback(reason) = fetched.discovered {
            self.metrics
                .index_fallbacks
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        count_excluded(&self.metrics.excluded, &fetched);
        let ranges: BTreeMap<Ulid, (i64, i64)> = fetched
            .metas
            .values()
            .map(|m| (m.ulid, (m.min_time, m.max_time)))
            .collect();
        let (next, failed) = refresh_open_blocks(
            &self.bucket,
            fetched.discovered == Discovered::Index,
            fetched.metas.into_values(),
            &self.snapshot(),
            |block| {
                let external = Labels::from(&block.meta().external_labels());
                tracing::debug!(block = %block.meta().ulid, %external, "block opened");
                LoadedBlock {
                    block: Arc::new(block),
                    external,
                }
            },
        )
        .await;
        self.metrics.load_failures.inc_by(failed.len() as u64);
        self.skipped
            .update(skipped_at_sync(&fetched.failed, &failed, &ranges));
        let count = next.len();
        match self.blocks.write() {
            Ok(mut g) => *g = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        self.metrics.loaded.set(count as i64);
        self.metrics.syncs.with_label_values(&["success"]).inc();
        if !self.ready.swap(true, Ordering::SeqCst) {
            tracing::info!(blocks = count, "blocks loaded; ready");
        }
        Ok(())
    }

    /// The blocks that answer `[mint, maxt]` at `max_resolution` ms (0: raw only): per external
    /// label set the store gateway's choice (`crate::store::resolution`), in ULID order.
    fn chosen(&self, mint: i64, maxt: i64, max_resolution: i64) -> Vec<Arc<LoadedBlock>> {
        let snapshot = self.snapshot();
        let blocks: Vec<&Arc<LoadedBlock>> = snapshot.values().collect();
        get_for_each_set(
            &blocks,
            |b| (&b.external, b.span()),
            mint,
            maxt,
            max_resolution,
        )
        .into_iter()
        .map(|i| blocks[i].clone())
        .collect()
    }

    /// Series the matchers select over `[mint, maxt]` read at `res`: raw blocks only for a
    /// window of 0, else the coarsest blocks allowed with gaps filled by finer ones, their
    /// aggregates read as `res.read` says; charged to `budget` as decoded.
    pub async fn select_at(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
        res: Resolution,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let blocks = self.chosen(mint, maxt, res.max_window);
        if blocks.iter().all(|b| b.span().resolution == 0) {
            return select_raw(blocks, matchers, mint, maxt, budget).await;
        }
        super::downsampled::select(&blocks, matchers, mint, maxt, budget, res.read).await
    }

    /// Warnings naming the blocks skipped at the last sync that an answer over `[mint, maxt]`
    /// needed.
    pub fn skip_warnings(&self, mint: i64, maxt: i64) -> Vec<String> {
        self.skipped.warnings(mint, maxt)
    }

    /// Label sets (external labels applied) of the series the matchers select in blocks
    /// overlapping the range; with `check_chunks`, only series with a chunk in the range.
    async fn matching_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        check_chunks: bool,
    ) -> Result<BTreeSet<Labels>, QueryError> {
        let mut out = BTreeSet::new();
        for b in self.overlapping(mint, maxt) {
            let Some(refs) = b.postings(matchers).await.map_err(storage_error)? else {
                continue;
            };
            for r in refs {
                let (labels, chunks) = b.block.index().series(r).await.map_err(storage_error)?;
                if check_chunks
                    && !chunks
                        .iter()
                        .any(|c| c.min_time <= maxt && c.max_time >= mint)
                {
                    continue;
                }
                out.insert(b.with_external(labels));
            }
        }
        Ok(out)
    }
}

/// One part of a block's selected series: (block index, part index) and the series found.
type Part = ((usize, usize), Vec<(Labels, Vec<(i64, f64)>)>);

/// The series of every part, each series once, sorted by labels, with its samples from all
/// blocks merged.
fn merge_parts(mut per_part: Vec<Part>) -> Vec<SeriesData> {
    // Blocks in ULID order, a block's parts in postings order: merging is deterministic.
    per_part.sort_by_key(|(key, _)| *key);
    let one_block = per_part.windows(2).all(|w| w[0].0 .0 == w[1].0 .0);
    if one_block {
        let series: Vec<(Labels, Vec<(i64, f64)>)> =
            per_part.into_iter().flat_map(|(_, s)| s).collect();
        // A block's postings come in label order; external labels may reorder them.
        if series.windows(2).all(|w| w[0].0 < w[1].0) {
            return series
                .into_iter()
                .map(|(labels, samples)| SeriesData { labels, samples })
                .collect();
        }
        per_part = vec![((0, 0), series)];
    }
    let mut by_series: BTreeMap<Labels, Vec<Vec<(i64, f64)>>> = BTreeMap::new();
    for (_, series) in per_part {
        for (labels, samples) in series {
            by_series.entry(labels).or_default().push(samples);
        }
    }
    by_series
        .into_iter()
        .map(|(labels, runs)| SeriesData {
            labels,
            samples: merge_samples(runs),
        })
        .filter(|s| !s.samples.is_empty())
        .collect()
}

/// The series `blocks` (raw ones) hold for the matchers over `[mint, maxt]`, decoded here.
/// Charges each decoded part as it arrives, so a query over the samples limit stops (and its
/// other decoding tasks are aborted) before the rest is decoded.
async fn select_raw(
    blocks: Vec<Arc<LoadedBlock>>,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    budget: &SampleBudget,
) -> Result<Vec<SeriesData>, QueryError> {
    let samples_of =
        |found: &[(Labels, Vec<(i64, f64)>)]| -> usize { found.iter().map(|(_, s)| s.len()).sum() };
    // Postings first (cheap), concurrently within this task: in-memory indexes answer at
    // once and indexes read by range overlap their reads, without a hop to another thread.
    let postings = futures::future::join_all(blocks.iter().map(|b| b.postings(matchers))).await;
    let mut refs_of: Vec<Option<Arc<[u32]>>> = Vec::with_capacity(blocks.len());
    for result in postings {
        refs_of.push(result.map_err(storage_error)?.map(Arc::from));
    }
    let total: usize = refs_of.iter().flatten().map(|r| r.len()).sum();
    let mut per_part: Vec<Part> = Vec::new();
    if total <= SERIES_PER_TASK {
        // A small selection is decoded right here: handing it to other threads costs more
        // in wake-ups than the decoding itself.
        for (i, (b, refs)) in blocks.iter().zip(refs_of).enumerate() {
            let Some(refs) = refs.filter(|r| !r.is_empty()) else {
                continue;
            };
            let all = 0..refs.len();
            let found = b.clone().select_refs(refs, all, mint, maxt).await;
            let found = found.map_err(storage_error)?;
            budget.charge(samples_of(&found))?;
            per_part.push(((i, 0), found));
        }
        return Ok(merge_parts(per_part));
    }
    // Otherwise the series of each block are decoded in parts by concurrent tasks, so
    // that even a one-block query uses both cores. The JoinSet aborts its tasks if the
    // query is dropped.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (b, refs)) in blocks.iter().zip(refs_of).enumerate() {
        let Some(refs) = refs.filter(|r| !r.is_empty()) else {
            continue;
        };
        let parts = refs.len().div_ceil(SERIES_PER_TASK).clamp(1, max_parts());
        let per = refs.len().div_ceil(parts);
        for p in 0..parts {
            let part = (p * per).min(refs.len())..((p + 1) * per).min(refs.len());
            let (b, refs) = (b.clone(), refs.clone());
            tasks.spawn(async move { ((i, p), b.select_refs(refs, part, mint, maxt).await) });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (key, result) = joined.map_err(storage_error)?;
        let found = result.map_err(storage_error)?;
        budget.charge(samples_of(&found))?;
        per_part.push((key, found));
    }
    Ok(merge_parts(per_part))
}

#[async_trait]
impl Queryable for BlockSet {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.select_within(matchers, mint, maxt, &SampleBudget::unlimited())
            .await
    }

    /// Raw data only; see [`BlockSet::select_at`] for other resolutions.
    async fn select_within(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.select_at(matchers, mint, maxt, budget, Resolution::RAW)
            .await
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        if matchers.is_empty() {
            for b in self.overlapping(mint, maxt) {
                names.extend(b.block.index().label_names().into_iter().map(String::from));
                names.extend(b.external.iter().map(|l| l.name.clone()));
            }
        } else {
            for labels in self.matching_labels(matchers, mint, maxt, false).await? {
                names.extend(labels.iter().map(|l| l.name.clone()));
            }
        }
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut values: BTreeSet<String> = BTreeSet::new();
        if matchers.is_empty() {
            for b in self.overlapping(mint, maxt) {
                match b.external.get(name) {
                    Some(v) => {
                        values.insert(v.to_string());
                    }
                    None => values.extend(
                        b.block
                            .index()
                            .label_values(name)
                            .into_iter()
                            .map(String::from),
                    ),
                }
            }
        } else {
            for labels in self.matching_labels(matchers, mint, maxt, false).await? {
                if let Some(v) = labels.get(name) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(values.into_iter().collect())
    }
}

#[async_trait]
impl SeriesSource for BlockSet {
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        // Prometheus answers /series from chunk metadata: a series counts when one of its
        // chunks overlaps the range, whatever the samples inside.
        Ok(self
            .matching_labels(matchers, mint, maxt, true)
            .await?
            .into_iter()
            .collect())
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// Re-syncs `set` every `interval` until `shutdown` fires; before the first successful sync,
/// retries every few seconds so a bucket that was briefly unreachable does not keep the
/// querier unready for a whole interval.
pub async fn run_sync_loop(
    set: Arc<BlockSet>,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    const RETRY: std::time::Duration = std::time::Duration::from_secs(5);
    loop {
        let wait = match set.sync().await {
            Ok(()) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "syncing blocks with the bucket failed");
                if set.is_ready() {
                    interval
                } else {
                    RETRY
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
