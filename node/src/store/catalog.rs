//! The store role's blocks: every raw block of the bucket opened, kept in step with the bucket
//! by periodic syncs (the store gateway's meta sync).
//!
//! Blocks come from the shared metadata fetcher (deletion marks honoured after Thanos' 24 h
//! delay); blocks that cannot be read are skipped, counted and named in Series warnings.
//!
//! Unfinished: downsampled blocks are skipped (no aggregate chunks over the wire yet), blocks
//! are opened whole at sync (no lazy index headers), and `--ignore-deletion-marks-delay`,
//! `--consistency-delay`, `--min-time`/`--max-time` and selector relabelling are not flags yet.

use crate::query::blocks::{reader_fetcher, refresh_open_blocks, skipped_at_sync};
use crate::query::skipped::SkippedBlocks;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage::block::Block;
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

/// The store's block set.
pub struct Catalog {
    bucket: Arc<dyn Bucket>,
    fetcher: MetaFetcher,
    skipped: SkippedBlocks,
    blocks: RwLock<Arc<BTreeMap<Ulid, Arc<StoreBlock>>>>,
    ready: AtomicBool,
    loaded: IntGauge,
    syncs: IntCounterVec,
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
        registry.register(Box::new(loaded.clone()))?;
        registry.register(Box::new(syncs.clone()))?;
        Ok(Catalog {
            fetcher: reader_fetcher(bucket.clone()),
            skipped: SkippedBlocks::new("strata_store_blocks_skipped", "store", registry)?,
            bucket,
            blocks: RwLock::new(Arc::new(BTreeMap::new())),
            ready: AtomicBool::new(false),
            loaded,
            syncs,
        })
    }

    /// The blocks now, by ULID.
    pub fn snapshot(&self) -> Arc<BTreeMap<Ulid, Arc<StoreBlock>>> {
        match self.blocks.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Blocks overlapping `[mint, maxt]`, in ULID order.
    pub fn overlapping(&self, mint: i64, maxt: i64) -> Vec<Arc<StoreBlock>> {
        self.snapshot()
            .values()
            .filter(|b| b.overlaps(mint, maxt))
            .cloned()
            .collect()
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

    /// External label sets and time range of the blocks; the range includes skipped blocks',
    /// so that a query needing only those still reaches this store and gets its warning.
    pub fn coverage(&self) -> Coverage {
        let mut c = self.loaded_coverage();
        if let Some((min, max)) = self.skipped.span() {
            c.min_time = c.min_time.min(min);
            c.max_time = c.max_time.max(max);
        }
        c
    }

    fn loaded_coverage(&self) -> Coverage {
        let blocks = self.snapshot();
        let sets: BTreeSet<Labels> = blocks.values().map(|b| b.external.clone()).collect();
        Coverage {
            label_sets: sets.into_iter().filter(|l| !l.is_empty()).collect(),
            min_time: blocks
                .values()
                .map(|b| b.block.meta().min_time)
                .min()
                .unwrap_or(i64::MAX),
            max_time: blocks
                .values()
                .map(|b| b.block.meta().max_time)
                .max()
                .unwrap_or(i64::MIN),
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
        )
        .await;
        self.skipped
            .update(skipped_at_sync(&fetched.failed, &failed, &ranges));
        let count = next.len();
        match self.blocks.write() {
            Ok(mut g) => *g = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        self.loaded.set(count as i64);
        self.syncs.with_label_values(&["success"]).inc();
        if !self.ready.swap(true, Ordering::SeqCst) {
            tracing::info!(blocks = count, "store: blocks loaded; serving StoreAPI");
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
