//! The ruler's results as blocks: every `--tsdb.block-duration` range (aligned, as Prometheus
//! aligns its blocks) is written under `--data-dir` with storage's block writer once the
//! newest result is half a block past its end (Prometheus' 1.5× head rule), carrying the
//! external labels and source `ruler`; with a bucket, the sidecar's shipper uploads them
//! (`thanos.shipper.json` in the data dir). On start the local blocks within the retention
//! are read back into memory, then the WAL (`super::wal`, in `<data-dir>/wal`) replays what
//! was not in a block yet, so results survive SIGKILL or a crash; a replayed sample older than
//! the blocks' end (or a logged seal) is skipped, so no block gets it twice. After each block
//! the WAL logs the seal and drops segments whose samples are all in blocks. On a clean stop
//! the unsealed rest is written as a short block and the WAL emptied.
//!
//! Retention (`--tsdb.retention`, as Thanos' ruler): blocks whose max time is older than
//! now - retention are deleted from the data dir, with a bucket only once the shipper has
//! uploaded them (`thanos.shipper.json`); an unshipped block is never deleted.

use super::results::{Results, SeriesSet};
use super::wal::codec::Record;
use super::wal::{Wal, WalError, WalMetrics};
use crate::sidecar::shipper::{local_blocks, read_shipper_file, Shipper, ShipperError};
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storage::block::error::BlockError;
use storage::block::meta::{ThanosMeta, RESOLUTION_RAW};
use storage::block::writer::{BlockWriter, BlockWriterOptions};
use ulid::Ulid;

/// `source` of the ruler's blocks in meta.json (Thanos' `metadata.RulerSource`).
pub const SOURCE: &str = "ruler";

/// Why writing or reading the ruler's blocks failed.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// The data dir could not be created or listed.
    #[error("ruler data dir {dir}: {source}")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Listing the local blocks failed.
    #[error(transparent)]
    List(#[from] ShipperError),
    /// Writing or reading a block failed.
    #[error("ruler block: {0}")]
    Block(#[from] BlockError),
    /// The WAL could not be opened.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// The ruler's WAL settings.
pub struct WalOptions {
    /// Size at which a segment is closed.
    pub segment_bytes: u64,
    /// Its metrics.
    pub metrics: WalMetrics,
}

/// The ruler's local TSDB directory and its uploads.
pub struct ResultsDb {
    dir: PathBuf,
    block_ms: i64,
    results: Arc<Results>,
    labels: BTreeMap<String, String>,
    shipper: Option<Shipper>,
    wal: Option<Arc<Wal>>,
    retention_ms: i64,
    /// `strata_rule_blocks_deleted_total` when registered.
    deleted: Option<prometheus::IntCounter>,
}

/// Start of the aligned block range holding `ts`.
fn align(ts: i64, block_ms: i64) -> i64 {
    ts.div_euclid(block_ms) * block_ms
}

impl ResultsDb {
    /// Opens `dir` (created if missing), loads its blocks newer than `now_ms - retention`
    /// into `results`, then replays the WAL (when `wal` is given) and logs later appends.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        dir: &Path,
        block_duration: Duration,
        results: Arc<Results>,
        labels: BTreeMap<String, String>,
        shipper: Option<Shipper>,
        retention_ms: i64,
        now_ms: i64,
        wal: Option<WalOptions>,
    ) -> Result<ResultsDb, TsdbError> {
        std::fs::create_dir_all(dir).map_err(|source| TsdbError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let (metas, unreadable) = local_blocks(dir)?;
        for name in unreadable {
            tracing::error!(block = %name, "ruler block without a readable meta.json is skipped");
        }
        for meta in metas {
            let sealed = meta.max_time;
            let series = if meta.max_time > now_ms.saturating_sub(retention_ms) {
                let block =
                    storage::block::reader::Block::open_dir(&dir.join(meta.ulid.to_string()))
                        .await?;
                block
                    .all_series()
                    .await?
                    .into_iter()
                    .map(|s| (s.labels, s.samples))
                    .collect()
            } else {
                Vec::new()
            };
            tracing::info!(block = %meta.ulid, series = series.len(), "ruler block loaded");
            results.load(series, sealed);
        }
        let wal = match wal {
            Some(opts) => Some(replay(dir, opts, &results)?),
            None => None,
        };
        Ok(ResultsDb {
            dir: dir.to_path_buf(),
            block_ms: (block_duration.as_millis() as i64).max(1),
            results,
            labels,
            shipper,
            wal,
            retention_ms,
            deleted: None,
        })
    }

    /// Counts deleted blocks in `counter`.
    pub fn count_deletions(&mut self, counter: prometheus::IntCounter) {
        self.deleted = Some(counter);
    }

    /// The directory of the blocks.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes every block range that is due; `final_flush` writes the unsealed rest too.
    /// Returns the blocks written.
    pub fn cut(&self, final_flush: bool) -> Result<Vec<Ulid>, TsdbError> {
        let mut written = Vec::new();
        while let Some((oldest, newest)) = self.results.unsealed_range() {
            let start = align(oldest, self.block_ms);
            let full_end = start + self.block_ms;
            let due = newest >= full_end + self.block_ms / 2;
            if !due && !final_flush {
                break;
            }
            let end = if due {
                full_end
            } else {
                full_end.min(newest + 1)
            };
            let from = start.max(self.results.sealed_before());
            let series = self.results.seal(from, end);
            if let Some(id) = self.write(series, from, end)? {
                written.push(id);
            }
            if let Some(wal) = &self.wal {
                wal.append(&Record::Sealed { before: end });
                wal.sync();
            }
        }
        if let Some(wal) = &self.wal {
            if final_flush {
                wal.finish(self.results.sealed_before());
            } else if !written.is_empty() {
                wal.truncate(self.results.sealed_before());
            }
        }
        Ok(written)
    }

    /// Deletes blocks whose max time is before `now_ms - retention`, with a bucket only those
    /// the shipper has uploaded. Returns the blocks deleted.
    pub fn delete_expired(&self, now_ms: i64) -> Result<Vec<Ulid>, TsdbError> {
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let shipped: Option<HashSet<Ulid>> = match &self.shipper {
            None => None,
            Some(_) => Some(
                read_shipper_file(&self.dir)?
                    .map(|f| f.uploaded.into_iter().collect())
                    .unwrap_or_default(),
            ),
        };
        let (metas, _) = local_blocks(&self.dir)?;
        let mut deleted = Vec::new();
        for meta in metas.iter().filter(|m| m.max_time < cutoff) {
            if shipped.as_ref().is_some_and(|s| !s.contains(&meta.ulid)) {
                tracing::debug!(block = %meta.ulid, "ruler block past retention kept: not uploaded yet");
                continue;
            }
            let path = self.dir.join(meta.ulid.to_string());
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(block = %meta.ulid, max_time = meta.max_time, retention_ms = self.retention_ms, "ruler block past retention deleted");
                    if let Some(c) = &self.deleted {
                        c.inc();
                    }
                    deleted.push(meta.ulid);
                }
                Err(e) => {
                    tracing::warn!(block = %meta.ulid, error = %e, "deleting a ruler block past retention failed; retrying later")
                }
            }
        }
        Ok(deleted)
    }

    fn write(&self, mut series: SeriesSet, min: i64, max: i64) -> Result<Option<Ulid>, TsdbError> {
        if series.is_empty() {
            return Ok(None);
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let opts = BlockWriterOptions {
            chunk_range_ms: self.block_ms,
            ..BlockWriterOptions::default()
        };
        let id = Ulid::new();
        let mut w = BlockWriter::new(&self.dir, id, opts)?;
        for (labels, samples) in &series {
            w.add_series(labels.clone(), samples)?;
        }
        let thanos = ThanosMeta {
            version: 1,
            labels: self.labels.clone(),
            source: SOURCE.into(),
            downsample: storage::block::meta::Downsample {
                resolution: RESOLUTION_RAW,
            },
            ..ThanosMeta::default()
        };
        let (_, meta) = w.finish(Some(thanos), Some((min, max)))?;
        tracing::info!(block = %id, min_time = min, max_time = max, series = meta.stats.num_series, "ruler block written");
        Ok(Some(id))
    }

    /// Uploads new blocks when there is a bucket; failures are logged and retried next round.
    pub async fn ship(&self) {
        let Some(shipper) = &self.shipper else {
            return;
        };
        match shipper.sync(&self.labels).await {
            Ok(r) if !r.uploaded.is_empty() => {
                tracing::info!(blocks = r.uploaded.len(), "ruler blocks uploaded")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "uploading ruler blocks failed; retrying later"),
        }
    }

    /// Cuts and ships every `tick` until `stop`, then writes and ships the unsealed rest.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let tick = Duration::from_millis((self.block_ms / 4).clamp(500, 30_000) as u64);
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(tick) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if let Err(e) = self.cut(stopping) {
                tracing::error!(error = %e, "writing a ruler block failed; retrying later");
            }
            self.ship().await;
            if let Err(e) = self.delete_expired(now_ms()) {
                tracing::warn!(error = %e, "applying retention to ruler blocks failed; retrying later");
            }
            if stopping {
                return;
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Replays `<dir>/wal` into `results` (after the blocks) and attaches it for later appends.
fn replay(dir: &Path, opts: WalOptions, results: &Arc<Results>) -> Result<Arc<Wal>, TsdbError> {
    // A seal is logged after the samples it covers: apply the newest seal first, so that
    // samples whose block is gone (retention) are not taken again.
    let mut logged = Vec::new();
    let wal = Wal::open(&dir.join("wal"), opts.segment_bytes, opts.metrics, |r| {
        logged.push(r)
    })?;
    let records = logged.len();
    let seal = logged.iter().filter_map(|r| match r {
        Record::Sealed { before } => Some(*before),
        Record::Samples { .. } => None,
    });
    if let Some(before) = seal.max() {
        results.replay(Record::Sealed { before });
    }
    let samples: usize = logged.into_iter().map(|r| results.replay(r)).sum();
    tracing::info!(
        records,
        samples,
        sealed_before = results.sealed_before(),
        "ruler WAL replayed"
    );
    let wal = Arc::new(wal);
    results.set_wal(wal.clone());
    Ok(wal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::alert::LabelMap;

    async fn sample(r: &Results, ts: i64) {
        let l = LabelMap::from([("__name__".into(), "rec".into())]);
        r.append(ts, &[(l, ts as f64)]).await;
    }

    #[tokio::test]
    async fn blocks_are_cut_per_aligned_range_and_read_back_after_a_restart() {
        let d = tempfile::tempdir().expect("tempdir");
        let labels = BTreeMap::from([("replica".to_string(), "a".to_string())]);
        let results = Arc::new(Results::new(i64::MAX / 4));
        let db = ResultsDb::open(
            d.path(),
            Duration::from_secs(10),
            results.clone(),
            labels.clone(),
            None,
            i64::MAX / 4,
            0,
            None,
        )
        .await
        .expect("open");
        for ts in (0..=14_000).step_by(1_000) {
            sample(&results, ts).await;
        }
        assert!(db.cut(false).expect("cut").is_empty(), "14s < 10s + 5s");
        sample(&results, 15_000).await;
        let first = db.cut(false).expect("cut");
        assert_eq!(first.len(), 1);
        let flushed = db.cut(true).expect("flush");
        assert_eq!(flushed.len(), 1);
        let (metas, _) = local_blocks(d.path()).expect("list");
        let ranges: Vec<_> = metas.iter().map(|m| (m.min_time, m.max_time)).collect();
        assert_eq!(ranges, vec![(0, 10_000), (10_000, 15_001)]);
        let thanos = metas[0].thanos.as_ref().expect("thanos section");
        assert_eq!((thanos.source.as_str(), &thanos.labels), ("ruler", &labels));

        let again = Arc::new(Results::new(i64::MAX / 4));
        ResultsDb::open(
            d.path(),
            Duration::from_secs(10),
            again.clone(),
            labels,
            None,
            i64::MAX / 4,
            0,
            None,
        )
        .await
        .expect("reopen");
        use promql::Queryable as _;
        let got = again.select(&[], 0, 20_000).await.expect("select");
        assert_eq!(got[0].samples.len(), 16);
        assert_eq!(again.sealed_before(), 15_001);
        sample(&again, 15_000).await;
        assert_eq!(again.unsealed_range(), None, "sealed samples are refused");
    }
}

#[cfg(test)]
mod wal_tests {
    use super::*;
    use crate::rule::alert::LabelMap;
    use promql::Queryable as _;

    async fn sample(r: &Results, ts: i64) {
        let l = LabelMap::from([("__name__".into(), "rec".into())]);
        r.append(ts, &[(l, ts as f64)]).await;
    }

    async fn open(dir: &Path, now_ms: i64) -> (Arc<Results>, ResultsDb, WalMetrics) {
        let results = Arc::new(Results::new(i64::MAX / 4));
        let metrics = WalMetrics::unregistered();
        let wal = WalOptions {
            segment_bytes: 200,
            metrics: metrics.clone(),
        };
        let db = ResultsDb::open(
            dir,
            Duration::from_secs(10),
            results.clone(),
            BTreeMap::new(),
            None,
            30_000,
            now_ms,
            Some(wal),
        )
        .await
        .expect("open");
        (results, db, metrics)
    }

    /// Every sample of every local block, by timestamp.
    async fn block_samples(dir: &Path) -> Vec<(i64, f64)> {
        let (metas, _) = local_blocks(dir).expect("list");
        let mut all = Vec::new();
        for m in metas {
            let b = storage::block::reader::Block::open_dir(&dir.join(m.ulid.to_string()))
                .await
                .expect("block");
            for s in b.all_series().await.expect("series") {
                all.extend(s.samples);
            }
        }
        all.sort_by_key(|&(t, _)| t);
        all
    }

    #[tokio::test]
    async fn results_survive_a_crash_and_reach_a_block_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let (results, db, _) = open(d.path(), 0).await;
        for ts in (0..=15_000).step_by(1_000) {
            sample(&results, ts).await;
        }
        assert_eq!(db.cut(false).expect("cut").len(), 1, "[0, 10s) sealed");
        for ts in (16_000..=18_000).step_by(1_000) {
            sample(&results, ts).await;
        }
        // A crash: no final flush.
        drop((results, db));

        let (results, db, m) = open(d.path(), 0).await;
        let got = results.select(&[], 0, 60_000).await.expect("select");
        let want: Vec<(i64, f64)> = (0..=18).map(|s| (s * 1000, (s * 1000) as f64)).collect();
        assert_eq!(got[0].samples, want, "blocks then the WAL's unsealed rest");
        assert_eq!(results.unsealed_range(), Some((10_000, 18_000)));
        assert_eq!(m.torn.get() + m.corrupt.get(), 0);
        sample(&results, 19_000).await;
        db.cut(true).expect("flush");
        drop((results, db));
        let mut want = want;
        want.push((19_000, 19_000.0));
        assert_eq!(
            block_samples(d.path()).await,
            want,
            "each sample in one block, once"
        );
        assert!(
            segments(&d.path().join("wal")).is_empty(),
            "a clean stop leaves no WAL behind"
        );

        // Nothing is replayed twice after the clean stop either.
        let (results, db, _) = open(d.path(), 0).await;
        db.cut(true).expect("flush");
        assert_eq!(results.unsealed_range(), None);
        assert_eq!(block_samples(d.path()).await, want);
    }

    fn segments(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_seal_logged_after_its_block_was_deleted_still_keeps_old_samples_out() {
        let d = tempfile::tempdir().expect("tempdir");
        let (results, db, _) = open(d.path(), 0).await;
        for ts in (0..=15_000).step_by(1_000) {
            sample(&results, ts).await;
        }
        let ids = db.cut(false).expect("cut");
        drop((results, db));
        for id in ids {
            std::fs::remove_dir_all(d.path().join(id.to_string())).expect("rm");
        }
        let (results, _db, _) = open(d.path(), 0).await;
        assert_eq!(results.sealed_before(), 10_000);
        assert_eq!(results.min_time(), Some(10_000));
    }

    #[tokio::test]
    async fn blocks_past_retention_go_and_unshipped_ones_stay() {
        let d = tempfile::tempdir().expect("tempdir");
        let (results, db, _) = open(d.path(), 0).await;
        for ts in (0..=35_000).step_by(1_000) {
            sample(&results, ts).await;
        }
        let ids = db.cut(false).expect("cut");
        assert_eq!(ids.len(), 3, "[0,10s) [10s,20s) [20s,30s)");
        // Retention 30s: at 45s, blocks ending before 15s go.
        assert_eq!(db.delete_expired(45_000).expect("retention"), vec![ids[0]]);
        assert!(!d.path().join(ids[0].to_string()).exists());
        assert!(d.path().join(ids[1].to_string()).exists());

        // With a bucket, only what the shipper file lists as uploaded.
        let file = crate::sidecar::shipper::ShipperFile {
            version: 1,
            uploaded: vec![ids[2]],
        };
        crate::sidecar::shipper::write_shipper_file(d.path(), &file).expect("shipper file");
        let shipped_only = ResultsDb {
            shipper: Some(test_shipper(d.path())),
            ..db
        };
        // Never synced: the shipper only tells retention that there is a bucket.
        assert_eq!(
            shipped_only.delete_expired(70_000).expect("retention"),
            vec![ids[2]],
            "ids[1] is not uploaded: kept"
        );
        assert!(d.path().join(ids[1].to_string()).exists());
    }
}

#[cfg(test)]
fn test_shipper(dir: &Path) -> Shipper {
    let bucket = Arc::new(storage::bucket::backend::ObjectStoreBucket::in_memory());
    let metrics = crate::sidecar::shipper::ShipperMetrics::register(&prometheus::Registry::new())
        .expect("metrics");
    Shipper::new(bucket, dir.to_path_buf(), false, metrics)
}
