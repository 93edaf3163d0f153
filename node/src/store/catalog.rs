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
//! Unfinished: downsampled blocks are skipped (no aggregate chunks over the wire yet), blocks
//! are opened whole at sync (no lazy index headers), and `--ignore-deletion-marks-delay`,
//! `--consistency-delay`, `--min-time`/`--max-time` and selector relabelling are not flags yet.

use crate::query::blocks::{reader_fetcher, refresh_open_blocks, skipped_at_sync, RefreshProgress};
use crate::query::skipped::SkippedBlocks;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage::block::{Block, BlockMeta};
use storage::bucket::fetcher::MetaFetcher;
use storage::bucket::{Bucket, BucketError};
use storage::labels::Labels;
use tokio::sync::watch;
use ulid::Ulid;

/// One opened block and its external labels (meta.json `thanos.labels`).
#[derive(Debug)]
pub struct StoreBlock {
    /// The block.
    pub block: Block,
    /// Its external labels, which the store adds to every series it serves from the block.
    pub external: Labels,
}

impl StoreBlock {
    /// The block's `[minTime, maxTime)` meets `[mint, maxt]`.
    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        let m = self.block.meta();
        m.min_time <= maxt && mint < m.max_time
    }
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
    skipped: SkippedBlocks,
    state: RwLock<State>,
    ready: AtomicBool,
    /// The first sync has finished: every block then in the bucket was opened or failed.
    synced: AtomicBool,
    loaded: IntGauge,
    opening: IntGauge,
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
    /// An empty, not yet ready catalog over `bucket`; its metrics go to `registry`.
    pub fn new(bucket: Arc<dyn Bucket>, registry: &Registry) -> Result<Self, prometheus::Error> {
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
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(opening.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        Ok(Catalog {
            fetcher: reader_fetcher(bucket.clone()),
            skipped: SkippedBlocks::new("strata_store_blocks_skipped", "store", registry)?,
            bucket,
            state: RwLock::new(State::default()),
            ready: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            loaded,
            opening,
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
    /// this store and gets its warning.
    pub fn coverage(&self) -> Coverage {
        let mut c = self.loaded_coverage();
        if let Some((min, max)) = self.skipped.span() {
            c.min_time = c.min_time.min(min);
            c.max_time = c.max_time.max(max);
        }
        c
    }

    fn loaded_coverage(&self) -> Coverage {
        let (open, opening) = {
            let g = self.read();
            (g.open.clone(), g.opening.clone())
        };
        let metas = || {
            open.values()
                .map(|b| b.block.meta())
                .chain(opening.values())
        };
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
        let (next, failed) = refresh_open_blocks(
            &self.bucket,
            fetched.metas.into_values(),
            &self.snapshot(),
            |block| StoreBlock {
                external: Labels::from(&block.meta().external_labels()),
                block,
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
        self.skipped
            .update(skipped_at_sync(&fetched.failed, &failed, &ranges));
        let count = next.len();
        let was_opening = !self.read().opening.is_empty();
        self.publish(Arc::new(next), BTreeMap::new());
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
