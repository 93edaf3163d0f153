//! One compaction pass over the bucket, in an order that never lets one part starve another:
//! sync metas, retention, garbage collection of superseded blocks, compaction of every group
//! until no plan is left (groups in parallel), cleanup of marked blocks and partial uploads,
//! and the bucket index. A block that cannot be read is marked no-compact and the pass goes
//! on; a bucket failure fails only the group (or step) it hit, and the next pass retries.

use super::cleaner::{clean_partial_uploads, delete_blocks, due_for_deletion};
use super::download::{open_sources, Sources, IN_MEMORY_MAX};
use super::group::{group_metas, GroupKey};
use super::index::{write_index, BucketIndex};
use super::merge::{merge_blocks, MergeError, MergeOutput, OutputSpec};
use super::planner::{plan, superseded};
use super::retention::{expired, Retention};
use super::vertical::MergeMode;
use super::REASON_CORRUPT;
use crate::block::error::BlockError;
use crate::block::meta::BlockMeta;
use crate::bucket::blocks::upload_block;
use crate::bucket::fetcher::filters::{system_clock, Clock};
use crate::bucket::fetcher::{ConsistencyDelayFilter, DeletionMarkFilter, Fetched, MetaFetcher};
use crate::bucket::marks::{read_mark, write_mark, DeletionMark, Mark, NoCompactMark};
use crate::bucket::{Bucket, BucketError};
use crate::downsample::{downsample_block, plan_downsampling};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use ulid::Ulid;

/// What the compactor is told (Thanos' `thanos compact` flags).
#[derive(Debug, Clone)]
pub struct CompactorConfig {
    /// Scratch directory for merge outputs before upload.
    pub scratch_dir: PathBuf,
    /// `--consistency-delay` in ms.
    pub consistency_delay_ms: i64,
    /// `--delete-delay` in ms.
    pub delete_delay_ms: i64,
    /// `--retention.resolution-*`.
    pub retention: Retention,
    /// `--compact.concurrency`: groups compacted at once.
    pub concurrency: usize,
    /// `--deduplication.replica-label`s.
    pub replica_labels: Vec<String>,
    /// Compaction levels in ms.
    pub ranges: Vec<i64>,
    /// Age after which a partial upload is abandoned.
    pub partial_upload_threshold_ms: i64,
    /// Downsample after compaction (raw blocks spanning 40 h to 5m, 5m blocks spanning 10 d
    /// to 1h); false with `--downsampling.disable`.
    pub downsample: bool,
}

/// What a pass did, for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Groups seen.
    pub groups: usize,
    /// Merges done (Thanos' `group_compactions_total`).
    pub compactions: usize,
    /// Of those, merges of overlapping blocks.
    pub vertical_compactions: usize,
    /// Merges that failed for a reason other than an unreadable block.
    pub failed_compactions: usize,
    /// Source blocks of the merges done.
    pub blocks_compacted: usize,
    /// Blocks marked for deletion: (reason, count); reasons `compacted`, `retention`,
    /// `superseded`.
    pub marked_for_deletion: BTreeMap<&'static str, usize>,
    /// Blocks marked no-compact in this pass, by reason.
    pub marked_no_compact: BTreeMap<String, usize>,
    /// Blocks deleted after the delete delay.
    pub deleted: usize,
    /// Blocks whose deletion failed.
    pub delete_failures: usize,
    /// Partial uploads removed.
    pub partial_removed: usize,
    /// Blocks whose meta.json is unreadable (left alone).
    pub unreadable_metas: usize,
    /// Downsampled blocks written (Thanos' `thanos_compact_downsample_total`).
    pub downsampled: usize,
    /// Downsamplings that failed (Thanos' `thanos_compact_downsample_failures_total`).
    pub downsample_failures: usize,
    /// Whether the bucket index was written.
    pub index_written: bool,
    /// Merges whose sources were fetched while the group's previous merge ran.
    pub prefetched: usize,
}

impl PassReport {
    fn merge(&mut self, o: PassReport) {
        self.compactions += o.compactions;
        self.vertical_compactions += o.vertical_compactions;
        self.failed_compactions += o.failed_compactions;
        self.blocks_compacted += o.blocks_compacted;
        self.prefetched += o.prefetched;
        for (k, v) in o.marked_for_deletion {
            *self.marked_for_deletion.entry(k).or_default() += v;
        }
        for (k, v) in o.marked_no_compact {
            *self.marked_no_compact.entry(k).or_default() += v;
        }
    }
}

/// Why a pass could not even start (the listing failed); per-group failures are counted in
/// the report instead.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Listing or reading metas failed.
    #[error("syncing block metadata: {0}")]
    Sync(#[source] BucketError),
    /// The scratch directory is unusable.
    #[error("scratch directory {dir}: {source}")]
    Scratch {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Called after each group of a pass with (groups done, groups in the pass), for a progress
/// bar.
pub type ProgressFn = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The standalone compactor over one bucket.
#[derive(Clone)]
pub struct Compactor {
    pub(super) bucket: Arc<dyn Bucket>,
    pub(super) config: CompactorConfig,
    pub(super) clock: Clock,
    progress: Option<ProgressFn>,
    /// Unfiltered fetcher whose clones share one cache of parsed metas and marks, so a sync
    /// reads only the meta.json files that are new since the last one.
    fetcher: MetaFetcher,
    /// Largest size in bytes of the sources of a group's next merge fetched while its
    /// current merge runs ([`PREFETCH_MAX`]).
    prefetch_max: u64,
}

/// Sources of a group's next merge up to this many bytes (by their meta.json's file sizes)
/// are fetched while the current merge runs, so that over a remote bucket a merge rarely
/// waits for its download. One merge ahead at most: a group holds at most two merges'
/// sources at once, each in memory up to [`IN_MEMORY_MAX`].
pub const PREFETCH_MAX: u64 = IN_MEMORY_MAX;

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("bucket", &self.bucket.describe())
            .field("config", &self.config)
            .finish()
    }
}

impl Compactor {
    /// A compactor over `bucket` with the system clock.
    pub fn new(bucket: Arc<dyn Bucket>, config: CompactorConfig) -> Self {
        Compactor {
            fetcher: MetaFetcher::new(bucket.clone()),
            bucket,
            config,
            clock: system_clock(),
            progress: None,
            prefetch_max: PREFETCH_MAX,
        }
    }

    /// The same compactor fetching a next merge's sources ahead only up to `bytes` (0: never).
    pub fn with_prefetch_max(mut self, bytes: u64) -> Self {
        self.prefetch_max = bytes;
        self
    }

    /// The same compactor reporting group progress to `f`.
    pub fn with_progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }

    /// The same compactor with `clock` as now (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Metas, deletion marks and no-compact marks. With `for_planning` young blocks are held
    /// back (`--consistency-delay`) and marked blocks excluded; without, every block is kept
    /// (for the bucket index).
    pub(super) async fn sync(
        &self,
        for_planning: bool,
    ) -> Result<(Fetched, BTreeMap<Ulid, NoCompactMark>), BucketError> {
        let mut fetcher = self.fetcher.clone();
        if for_planning && self.config.consistency_delay_ms > 0 {
            fetcher = fetcher.with_filter(ConsistencyDelayFilter {
                delay_ms: self.config.consistency_delay_ms,
                clock: self.clock.clone(),
            });
        }
        // Delay 0 hides blocks marked before this second; planning drops every marked block
        // below. A delay no mark reaches keeps them all while still collecting the marks.
        let delay_ms = if for_planning { 0 } else { i64::MAX };
        let fetched = fetcher
            .with_filter(DeletionMarkFilter {
                delay_ms,
                clock: self.clock.clone(),
            })
            .fetch()
            .await?;
        let bucket = self.bucket.as_ref();
        let ids: Vec<Ulid> = fetched
            .metas
            .keys()
            .chain(fetched.excluded.keys())
            .copied()
            .collect();
        let marks: Vec<(Ulid, Result<Option<NoCompactMark>, BlockError>)> =
            futures::stream::iter(ids)
                .map(|id| async move { (id, read_mark::<NoCompactMark>(bucket, id).await) })
                .buffer_unordered(32)
                .collect()
                .await;
        let mut no_compact = BTreeMap::new();
        for (id, m) in marks {
            match m {
                Ok(Some(m)) => {
                    no_compact.insert(id, m);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(block = %id, error = %e, "ignoring unreadable no-compact mark")
                }
            }
        }
        Ok((fetched, no_compact))
    }

    /// One full pass. Errors only when the bucket cannot be listed at all.
    pub async fn run_pass(&self) -> Result<PassReport, PassError> {
        let mut report = PassReport::default();
        let scratch = &self.config.scratch_dir;
        if scratch.exists() {
            // Leftovers of an interrupted pass: never uploaded, safe to drop.
            std::fs::remove_dir_all(scratch).map_err(|source| PassError::Scratch {
                dir: scratch.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(scratch).map_err(|source| PassError::Scratch {
            dir: scratch.clone(),
            source,
        })?;
        let (fetched, no_compact) = self.sync(true).await.map_err(PassError::Sync)?;
        report.unreadable_metas = fetched.failed.len();
        for (id, e) in &fetched.failed {
            tracing::warn!(block = %id, error = %e, "block with unreadable meta.json left alone");
        }
        let mut live: BTreeMap<Ulid, BlockMeta> = fetched
            .metas
            .iter()
            .filter(|(id, _)| !fetched.deletion_marks.contains_key(id))
            .map(|(id, m)| (*id, m.clone()))
            .collect();

        let now = (self.clock)();
        for m in expired(live.values(), &self.config.retention, now) {
            self.mark_deleted(m.ulid, "retention", &mut report).await;
        }
        live.retain(|_, m| expired([&*m], &self.config.retention, now).is_empty());

        let all: Vec<BlockMeta> = live.values().cloned().collect();
        for id in superseded(&all) {
            self.mark_deleted(id, "superseded", &mut report).await;
            live.remove(&id);
        }

        let groups = group_metas(live.values(), &self.config.replica_labels);
        report.groups = groups.len();
        let no_compact_ids: BTreeSet<Ulid> = no_compact.keys().copied().collect();
        let total = groups.len();
        let mut results = futures::stream::iter(groups)
            .map(|(key, metas)| {
                let marked = no_compact_ids.clone();
                async move { self.compact_group(key, metas, marked).await }
            })
            .buffer_unordered(self.config.concurrency.max(1));
        let mut done = 0;
        if let Some(p) = &self.progress {
            p(done, total);
        }
        while let Some(r) = results.next().await {
            report.merge(r);
            done += 1;
            if let Some(p) = &self.progress {
                p(done, total);
            }
        }
        if self.config.downsample {
            self.downsample(&mut report).await;
        }

        self.cleanup(&mut report).await;
        report.index_written = self.write_bucket_index().await;
        Ok(report)
    }

    /// Writes the bucket index of everything in the bucket now; whether it was written.
    pub(super) async fn write_bucket_index(&self) -> bool {
        match self.build_bucket_index().await {
            Ok(index) => match write_index(self.bucket.as_ref(), &index).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "writing the bucket index failed");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "sync for the bucket index failed");
                false
            }
        }
    }

    /// The bucket index of everything in the bucket now, from a listing.
    pub(super) async fn build_bucket_index(&self) -> Result<BucketIndex, BucketError> {
        let (after, marks) = self.sync(false).await?;
        let now_s = (self.clock)() / 1000;
        Ok(BucketIndex::build(
            after.metas.values(),
            &after.deletion_marks,
            &marks,
            now_s,
        ))
    }

    /// One downsampling step for every block that qualifies, after compaction (a new 5m block
    /// goes to 1h in a later pass, as in Thanos). A failure is counted and logged; the block
    /// is tried again next pass.
    async fn downsample(&self, report: &mut PassReport) {
        let fetched = match self.sync(true).await {
            Ok((fetched, _)) => fetched,
            Err(e) => {
                tracing::warn!(error = %e, "sync before downsampling failed");
                report.downsample_failures += 1;
                return;
            }
        };
        let live: Vec<BlockMeta> = fetched
            .metas
            .values()
            .filter(|m| !fetched.deletion_marks.contains_key(&m.ulid))
            .cloned()
            .collect();
        let tasks = match plan_downsampling(&live) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "planning downsampling failed");
                report.downsample_failures += 1;
                return;
            }
        };
        let dir = self.config.scratch_dir.join("downsample");
        for task in tasks {
            let Some(meta) = live.iter().find(|m| m.ulid == task.block) else {
                continue;
            };
            match downsample_block(self.bucket.clone(), meta, task.to_resolution, &dir).await {
                Ok(out) => {
                    tracing::info!(
                        block = %task.block,
                        output = %out,
                        resolution = task.to_resolution,
                        "downsampled block"
                    );
                    report.downsampled += 1;
                }
                Err(e) => {
                    tracing::warn!(block = %task.block, error = %e, "downsampling failed");
                    report.downsample_failures += 1;
                }
            }
        }
    }

    pub(super) async fn mark_deleted(
        &self,
        id: Ulid,
        reason: &'static str,
        report: &mut PassReport,
    ) {
        if self.mark_deleted_logged(id, reason).await {
            *report.marked_for_deletion.entry(reason).or_default() += 1;
        }
    }

    /// Marks `id` for deletion and logs the outcome; whether it is marked.
    async fn mark_deleted_logged(&self, id: Ulid, reason: &'static str) -> bool {
        match self
            .write_once(DeletionMark::new(id, (self.clock)() / 1000, reason))
            .await
        {
            Ok(()) => {
                tracing::info!(block = %id, reason, "marked block for deletion");
                true
            }
            Err(e) => {
                tracing::warn!(block = %id, reason, error = %e, "marking for deletion failed");
                false
            }
        }
    }

    pub(super) async fn mark_no_compact(
        &self,
        id: Ulid,
        reason: &str,
        details: &str,
        report: &mut PassReport,
    ) {
        let mark = NoCompactMark::new(id, (self.clock)() / 1000, reason, details);
        match self.write_once(mark).await {
            Ok(()) => {
                tracing::warn!(block = %id, reason, details, "marked block no-compact");
                *report
                    .marked_no_compact
                    .entry(reason.to_string())
                    .or_default() += 1;
            }
            Err(e) => tracing::warn!(block = %id, reason, error = %e, "marking no-compact failed"),
        }
    }

    /// Writes `mark` unless the block already has one of its kind (marks carry the
    /// compactor's clock, so the delete delay is measured on one clock).
    async fn write_once<M: Mark>(&self, mark: M) -> Result<(), BlockError> {
        if read_mark::<M>(self.bucket.as_ref(), mark.id())
            .await?
            .is_none()
        {
            write_mark(self.bucket.as_ref(), &mark).await?;
        }
        Ok(())
    }

    /// Compacts one group until its planner has nothing left. Over a remote bucket most of a
    /// merge is waiting on the bucket, so the upload of one output runs while the next merge
    /// downloads and merges its sources, and the sources of the merge after are fetched while
    /// one merges ([`PREFETCH_MAX`]); a merge that builds on an output still uploading waits
    /// for it, and sources are marked for deletion only once their output is up.
    async fn compact_group(
        &self,
        key: GroupKey,
        mut metas: Vec<BlockMeta>,
        mut no_compact: BTreeSet<Ulid>,
    ) -> PassReport {
        let mut report = PassReport::default();
        let mode = if self.config.replica_labels.is_empty() {
            MergeMode::Union
        } else {
            MergeMode::Dedup
        };
        let mut pending: Option<PendingUpload> = None;
        let mut ahead: Option<Prefetch> = None;
        let dir = self.group_dir(&key);
        loop {
            let chosen = plan(&metas, &no_compact, &self.config.ranges);
            let builds_on_pending = pending
                .as_ref()
                .is_some_and(|p| chosen.is_empty() || chosen.iter().any(|m| m.ulid == p.output));
            if builds_on_pending {
                if let Some(p) = pending.take() {
                    if !self.settle(p, &key, &mut report).await {
                        return report;
                    }
                }
                continue;
            }
            if chosen.is_empty() {
                Prefetch::cancel_any(ahead.take()).await;
                return report;
            }
            let refs: Vec<&BlockMeta> = chosen.iter().collect();
            let overlapping = !super::planner::select_overlapping(&refs).is_empty();
            let ids: Vec<String> = chosen.iter().map(|m| m.ulid.to_string()).collect();
            tracing::info!(group = %key, blocks = ?ids, vertical = overlapping, "compacting blocks");
            let started = std::time::Instant::now();
            let chosen_ids: Vec<Ulid> = chosen.iter().map(|m| m.ulid).collect();
            let sources = match ahead.take() {
                Some(a) if a.ids == chosen_ids => {
                    report.prefetched += 1;
                    a.join().await
                }
                other => {
                    Prefetch::cancel_any(other).await;
                    let at = dir.join(format!("sources-{}", chosen_ids[0]));
                    open_sources(&self.bucket, &chosen, &at).await
                }
            };
            if sources.is_ok() {
                let building = pending.as_ref().map(|p| p.output);
                ahead = self.prefetch_next(&metas, &chosen, &no_compact, building, &dir);
            }
            let merged = match sources {
                Ok(s) => self.merge_fetched(&key, s, &dir, mode, started).await,
                Err(e) => Err(e),
            };
            if let Some(p) = pending.take() {
                if !self.settle(p, &key, &mut report).await {
                    if let Ok(Some(out)) = &merged {
                        let _ = std::fs::remove_dir_all(&out.dir);
                    }
                    Prefetch::cancel_any(ahead.take()).await;
                    return report;
                }
            }
            match merged {
                Ok(output) => {
                    let gone: BTreeSet<Ulid> = chosen.iter().map(|m| m.ulid).collect();
                    metas.retain(|m| !gone.contains(&m.ulid));
                    let Some(out) = output else {
                        self.compacted(&chosen, overlapping, &mut report).await;
                        continue;
                    };
                    metas.push(out.meta.clone());
                    metas.sort_by_key(|m| (m.min_time, m.ulid));
                    let (bucket, group) = (self.bucket.clone(), key.clone());
                    pending = Some(PendingUpload {
                        output: out.meta.ulid,
                        chosen,
                        overlapping,
                        task: tokio::spawn(
                            async move { upload_output(&bucket, &group, out).await },
                        ),
                    });
                }
                Err(MergeError::Source { block, source }) if is_unreadable(&source) => {
                    tracing::warn!(group = %key, %block, error = %source, "source block unreadable");
                    self.mark_no_compact(block, REASON_CORRUPT, &source.to_string(), &mut report)
                        .await;
                    no_compact.insert(block);
                }
                Err(e) => {
                    tracing::error!(group = %key, error = %e, "compaction failed; retrying in the next pass");
                    report.failed_compactions += 1;
                    Prefetch::cancel_any(ahead.take()).await;
                    return report;
                }
            }
        }
    }

    /// Starts fetching the sources the planner will choose after `chosen` is merged (planned
    /// as if its output were there), unless that merge builds on an output not yet in the
    /// bucket or its sources exceed the prefetch budget (or have no sizes in meta.json).
    /// The guess is checked against the real plan after the merge; a wrong one is dropped.
    fn prefetch_next(
        &self,
        metas: &[BlockMeta],
        chosen: &[BlockMeta],
        no_compact: &BTreeSet<Ulid>,
        building: Option<Ulid>,
        dir: &std::path::Path,
    ) -> Option<Prefetch> {
        let next = predict_next(metas, chosen, no_compact, &self.config.ranges);
        if next.is_empty() || next.iter().any(|m| Some(m.ulid) == building) {
            return None;
        }
        let bytes = next
            .iter()
            .try_fold(0u64, |n, m| n.checked_add(known_size(m)?))?;
        if bytes > self.prefetch_max {
            tracing::debug!(
                bytes,
                budget = self.prefetch_max,
                "next merge's sources not fetched ahead"
            );
            return None;
        }
        let ids: Vec<Ulid> = next.iter().map(|m| m.ulid).collect();
        let at = dir.join(format!("sources-{}", ids[0]));
        let bucket = self.bucket.clone();
        Some(Prefetch {
            ids,
            task: tokio::spawn(async move { open_sources(&bucket, &next, &at).await }),
        })
    }

    /// Waits for an output's upload; when it is up, counts the compaction and marks its
    /// sources for deletion. False when the upload failed (counted and logged).
    async fn settle(&self, p: PendingUpload, key: &GroupKey, report: &mut PassReport) -> bool {
        let result = match p.task.await {
            Ok(r) => r,
            Err(e) => Err(MergeError::Output(
                crate::block::FileLocation::new(p.output.to_string(), "").io(e),
            )),
        };
        match result {
            Ok(_) => {
                self.compacted(&p.chosen, p.overlapping, report).await;
                true
            }
            Err(e) => {
                tracing::error!(group = %key, error = %e, "compaction failed; retrying in the next pass");
                report.failed_compactions += 1;
                false
            }
        }
    }

    /// Books a finished compaction of `chosen` and marks them for deletion.
    async fn compacted(&self, chosen: &[BlockMeta], overlapping: bool, report: &mut PassReport) {
        report.compactions += 1;
        report.blocks_compacted += chosen.len();
        if overlapping {
            report.vertical_compactions += 1;
        }
        // The marks at once: the output is up, and each mark is two round trips.
        let marks: Vec<_> = chosen
            .iter()
            .map(|m| self.mark_deleted_logged(m.ulid, "compacted"))
            .collect();
        let marked = futures::future::join_all(marks).await;
        let n = marked.into_iter().filter(|ok| *ok).count();
        if n > 0 {
            *report.marked_for_deletion.entry("compacted").or_default() += n;
        }
    }

    /// Opens the sources, merges, uploads the output (chunks, index, meta.json last).
    pub(super) async fn compact_once(
        &self,
        key: &GroupKey,
        chosen: &[BlockMeta],
        mode: MergeMode,
        dir: Option<PathBuf>,
    ) -> Result<Option<BlockMeta>, MergeError> {
        match self.merge_sources(key, chosen, mode, dir).await? {
            Some(out) => upload_output(&self.bucket, key, out).await.map(Some),
            None => Ok(None),
        }
    }

    /// The group's work directory in the scratch directory, named by a hash: label values may
    /// be longer than a file name may be.
    fn group_dir(&self, key: &GroupKey) -> PathBuf {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(key, &mut h);
        self.config.scratch_dir.join(format!(
            "{}@{:016x}",
            key.resolution,
            std::hash::Hasher::finish(&h)
        ))
    }

    /// Opens (downloads) the sources and merges them into an output on local disk.
    async fn merge_sources(
        &self,
        key: &GroupKey,
        chosen: &[BlockMeta],
        mode: MergeMode,
        dir: Option<PathBuf>,
    ) -> Result<Option<MergeOutput>, MergeError> {
        let dir = dir.unwrap_or_else(|| self.group_dir(key));
        let started = std::time::Instant::now();
        let sources = open_sources(&self.bucket, chosen, &dir.join("sources")).await?;
        self.merge_fetched(key, sources, &dir, mode, started).await
    }

    /// Merges opened sources into an output in `dir`; `started` is when fetching them began
    /// (or waiting for a prefetch), for the log.
    async fn merge_fetched(
        &self,
        key: &GroupKey,
        sources: Sources,
        dir: &std::path::Path,
        mode: MergeMode,
        started: std::time::Instant,
    ) -> Result<Option<MergeOutput>, MergeError> {
        let spec = OutputSpec {
            labels: key.labels.clone(),
            resolution: key.resolution,
            mode,
        };
        std::fs::create_dir_all(dir).map_err(|e| {
            MergeError::Output(crate::block::FileLocation::new("", dir.display().to_string()).io(e))
        })?;
        let downloaded = started.elapsed();
        let out = merge_blocks(&sources.blocks, dir, &spec).await?;
        drop(sources);
        match &out {
            None => {
                tracing::info!(group = %key, "compacted blocks hold no samples; no output block")
            }
            Some(o) => tracing::info!(
                group = %key,
                block = %o.meta.ulid,
                download_ms = downloaded.as_millis() as u64,
                merge_ms = (started.elapsed() - downloaded).as_millis() as u64,
                "merged blocks"
            ),
        }
        Ok(out)
    }

    pub(super) async fn cleanup(&self, report: &mut PassReport) {
        // A fresh view: marks written in this pass count with their own time.
        let fetched = match MetaFetcher::new(self.bucket.clone())
            .with_filter(DeletionMarkFilter {
                delay_ms: 0,
                clock: self.clock.clone(),
            })
            .fetch()
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cleanup skipped: sync failed");
                return;
            }
        };
        let now = (self.clock)();
        let due = due_for_deletion(&fetched.deletion_marks, self.config.delete_delay_ms, now);
        let (done, failed) = delete_blocks(self.bucket.as_ref(), &due).await;
        report.deleted += done;
        report.delete_failures += failed.len();
        for (id, e) in failed {
            tracing::warn!(block = %id, error = %e, "deleting block failed");
        }
        match clean_partial_uploads(
            self.bucket.as_ref(),
            &fetched.partial,
            self.config.partial_upload_threshold_ms,
            now,
        )
        .await
        {
            Ok(removed) => report.partial_removed += removed.len(),
            Err(e) => tracing::warn!(error = %e, "cleaning partial uploads failed"),
        }
    }
}

/// The sources of a group's next merge being fetched while its current merge runs. Dropping
/// it stops the fetch (its task then drops what it fetched).
struct Prefetch {
    /// The blocks, in plan order; used only if the real plan chooses exactly these.
    ids: Vec<Ulid>,
    task: tokio::task::JoinHandle<Result<Sources, MergeError>>,
}

impl Prefetch {
    /// The fetched sources, or the fetch's failure as the merge's.
    async fn join(mut self) -> Result<Sources, MergeError> {
        let first = self.ids.first().map(|u| u.to_string()).unwrap_or_default();
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(MergeError::Output(
                crate::block::FileLocation::new(first, "").io(e),
            )),
        }
    }

    /// Stops the fetch and waits until it has let go of what it fetched.
    async fn cancel(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// [`Prefetch::cancel`] for a fetch that may not be there.
    async fn cancel_any(ahead: Option<Self>) {
        if let Some(a) = ahead {
            a.cancel().await;
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the planner would choose after `chosen` is merged: the group with `chosen` replaced
/// by a stand-in for its output (same time range, a fresh ULID); empty when that plan builds
/// on the output itself.
fn predict_next(
    metas: &[BlockMeta],
    chosen: &[BlockMeta],
    no_compact: &BTreeSet<Ulid>,
    ranges: &[i64],
) -> Vec<BlockMeta> {
    let Some(first) = chosen.first() else {
        return Vec::new();
    };
    let gone: BTreeSet<Ulid> = chosen.iter().map(|m| m.ulid).collect();
    let mut out = first.clone();
    out.ulid = Ulid::new();
    out.min_time = chosen
        .iter()
        .map(|m| m.min_time)
        .min()
        .unwrap_or(first.min_time);
    out.max_time = chosen
        .iter()
        .map(|m| m.max_time)
        .max()
        .unwrap_or(first.max_time);
    out.compaction.failed = false;
    out.stats.num_tombstones = 0;
    let stand_in = out.ulid;
    let mut after: Vec<BlockMeta> = metas
        .iter()
        .filter(|m| !gone.contains(&m.ulid))
        .cloned()
        .chain([out])
        .collect();
    after.sort_by_key(|m| (m.min_time, m.ulid));
    let next = plan(&after, no_compact, ranges);
    if next.iter().any(|m| m.ulid == stand_in) {
        return Vec::new();
    }
    next
}

/// The bytes of a block's files by its meta.json, when it lists them all with sizes.
fn known_size(m: &BlockMeta) -> Option<u64> {
    let files = &m.thanos.as_ref()?.files;
    if files.is_empty() {
        return None;
    }
    files
        .iter()
        .filter(|f| f.rel_path != crate::block::meta::META_FILENAME)
        .try_fold(0u64, |n, f| n.checked_add(f.size_bytes?))
}

/// An output being uploaded while the group's next merge runs.
struct PendingUpload {
    output: Ulid,
    chosen: Vec<BlockMeta>,
    overlapping: bool,
    task: tokio::task::JoinHandle<Result<BlockMeta, MergeError>>,
}

/// Uploads a merge's output (chunks, index, meta.json last) and removes the local copy.
async fn upload_output(
    bucket: &Arc<dyn Bucket>,
    key: &GroupKey,
    out: MergeOutput,
) -> Result<BlockMeta, MergeError> {
    let started = std::time::Instant::now();
    let uploaded = upload_block(bucket.as_ref(), &out.dir, &out.meta, None)
        .await
        .map_err(MergeError::Output);
    let _ = std::fs::remove_dir_all(&out.dir);
    let uploaded = uploaded?;
    tracing::info!(
        group = %key,
        block = %uploaded.ulid,
        level = uploaded.compaction.level,
        sources = uploaded.compaction.sources.len(),
        upload_ms = started.elapsed().as_millis() as u64,
        "uploaded compacted block"
    );
    Ok(uploaded)
}

/// Whether a source error means the block itself is broken (as opposed to a bucket or disk
/// failure worth retrying).
pub(super) fn is_unreadable(e: &BlockError) -> bool {
    matches!(
        e,
        BlockError::Corrupt { .. } | BlockError::Missing { .. } | BlockError::Unsupported { .. }
    )
}

#[cfg(test)]
#[path = "pass_tests.rs"]
mod tests;
