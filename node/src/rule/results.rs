//! The ruler's own results (recorded series, `ALERTS`, `ALERTS_FOR_STATE`) kept in memory for
//! `--tsdb.retention`, readable by PromQL through the ruler's query API and its StoreAPI.
//!
//! `super::tsdb` seals time ranges into blocks: a sealed range refuses later appends (as a
//! TSDB refuses samples older than its head), so a block never misses a sample that the
//! memory holds. With a WAL attached (`super::wal`) every accepted sample is logged before
//! the append returns, and [`Results::replay`] puts logged samples back after a restart.

use super::alert::LabelMap;
use super::wal::codec::Record;
use super::wal::Wal;
use async_trait::async_trait;
use promql::{QueryError, Queryable, SeriesData};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use storage::labels::Labels;
use storage::matcher::Matcher;

/// Series with their samples, oldest dropped beyond the retention.
#[derive(Debug)]
pub struct Results {
    series: RwLock<BTreeMap<Labels, Vec<(i64, f64)>>>,
    retention_ms: i64,
    /// Samples before this are in blocks already; appends there are refused.
    sealed_before: AtomicI64,
    /// Where accepted samples are logged; none until the WAL is replayed.
    wal: OnceLock<Arc<Wal>>,
}

/// Series with their samples, as blocks are written from and loaded into the results.
pub type SeriesSet = Vec<(Labels, Vec<(i64, f64)>)>;

impl Results {
    /// An empty store keeping `retention_ms` of samples.
    pub fn new(retention_ms: i64) -> Results {
        Results {
            series: RwLock::new(BTreeMap::new()),
            retention_ms,
            sealed_before: AtomicI64::new(i64::MIN),
            wal: OnceLock::new(),
        }
    }

    /// The newest sample's timestamp and the oldest at or after the sealed range, if any.
    pub fn unsealed_range(&self) -> Option<(i64, i64)> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        let from = self.sealed_before.load(Ordering::SeqCst);
        let oldest = s
            .values()
            .filter_map(|p| p.get(p.partition_point(|&(t, _)| t < from)))
            .map(|&(t, _)| t)
            .min()?;
        let newest = s.values().filter_map(|p| p.last()).map(|&(t, _)| t).max()?;
        Some((oldest, newest))
    }

    /// The oldest sample's timestamp, if any.
    pub fn min_time(&self) -> Option<i64> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        s.values().filter_map(|p| p.first()).map(|&(t, _)| t).min()
    }

    /// Where the sealed range ends (`i64::MIN`: nothing sealed).
    pub fn sealed_before(&self) -> i64 {
        self.sealed_before.load(Ordering::SeqCst)
    }

    /// Seals `[.., end)` and returns the samples of `[from, end)` that were not sealed yet,
    /// atomically with respect to appends.
    pub fn seal(&self, from: i64, end: i64) -> SeriesSet {
        let s = self.series.write().unwrap_or_else(|p| p.into_inner());
        let from = from.max(self.sealed_before.load(Ordering::SeqCst));
        self.sealed_before.fetch_max(end, Ordering::SeqCst);
        s.iter()
            .filter_map(|(labels, points)| {
                let lo = points.partition_point(|&(t, _)| t < from);
                let hi = points.partition_point(|&(t, _)| t < end);
                (lo < hi).then(|| (labels.clone(), points[lo..hi].to_vec()))
            })
            .collect()
    }

    /// Loads samples read back from blocks (a restart), sealing up to `sealed_before`.
    pub fn load(&self, series: SeriesSet, sealed_before: i64) {
        let mut s = self.series.write().unwrap_or_else(|p| p.into_inner());
        for (labels, samples) in series {
            let points = s.entry(labels).or_default();
            points.extend(samples);
            points.sort_by_key(|&(t, _)| t);
            points.dedup_by_key(|&mut (t, _)| t);
        }
        self.sealed_before
            .fetch_max(sealed_before, Ordering::SeqCst);
    }

    /// Logs every later accepted sample to `wal` (set once, after the replay).
    pub fn set_wal(&self, wal: Arc<Wal>) {
        let _ = self.wal.set(wal);
    }

    /// Appends samples at `ts`; samples not after a series' last one are ignored (out of
    /// order, as a TSDB refuses them). With a WAL, the accepted ones are logged and fsynced
    /// before this returns; the fsync runs on the blocking pool, not on the async runtime's
    /// thread (a slow disk must not stall other groups' evaluations or queries).
    pub async fn append(&self, ts: i64, samples: &[(LabelMap, f64)]) {
        let series = samples.iter().map(|(labels, v)| {
            let key = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            (key, *v)
        });
        if self.insert(ts, series, true).is_none() {
            tracing::warn!(
                ts,
                samples = samples.len(),
                "rule results older than the last written block are dropped"
            );
        }
        if let Some(wal) = self.wal.get() {
            // Outside the series lock: queries need not wait for the disk.
            let wal = wal.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || wal.sync()).await {
                // Only a panic in the fsync or a runtime shutting down get here.
                tracing::error!(error = %e, "fsync of the ruler WAL did not run");
            }
        }
    }

    /// Puts a WAL record back: samples at or after the sealed range (older ones are in blocks
    /// already), or a sealed mark. Returns the samples taken.
    pub fn replay(&self, record: Record) -> usize {
        match record {
            Record::Samples { ts, series } => {
                self.insert(ts, series.into_iter(), false).unwrap_or(0)
            }
            Record::Sealed { before } => {
                let _s = self.series.write().unwrap_or_else(|p| p.into_inner());
                self.sealed_before.fetch_max(before, Ordering::SeqCst);
                0
            }
        }
    }

    /// Inserts samples at `ts` (logging the accepted ones when `log`); `None` when `ts` is in
    /// the sealed range, else how many were accepted.
    fn insert(
        &self,
        ts: i64,
        series: impl Iterator<Item = (Labels, f64)>,
        log: bool,
    ) -> Option<usize> {
        let mut s = self.series.write().unwrap_or_else(|p| p.into_inner());
        if ts < self.sealed_before.load(Ordering::SeqCst) {
            return None;
        }
        let mut accepted = Vec::new();
        for (key, v) in series {
            let points = s.entry(key.clone()).or_default();
            if points.last().is_none_or(|(t, _)| *t < ts) {
                points.push((ts, v));
                accepted.push((key, v));
            }
        }
        let n = accepted.len();
        if let (true, Some(wal), false) = (log, self.wal.get(), accepted.is_empty()) {
            // Under the series lock, so the log's order is the memory's (a seal cannot come
            // between a sample and its record).
            wal.append(&Record::Samples {
                ts,
                series: accepted,
            });
        }
        let cutoff = ts - self.retention_ms;
        s.retain(|_, points| {
            let keep_from = points.partition_point(|(t, _)| *t < cutoff);
            points.drain(..keep_from);
            !points.is_empty()
        });
        Some(n)
    }

    fn matching<'a>(
        s: &'a BTreeMap<Labels, Vec<(i64, f64)>>,
        matchers: &'a [Matcher],
    ) -> impl Iterator<Item = (&'a Labels, &'a Vec<(i64, f64)>)> {
        s.iter().filter(move |(l, _)| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(m.name()).unwrap_or("")))
        })
    }
}

#[async_trait]
impl Queryable for Results {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        Ok(Self::matching(&s, matchers)
            .filter_map(|(labels, points)| {
                let lo = points.partition_point(|&(t, _)| t < mint);
                let hi = points.partition_point(|&(t, _)| t <= maxt);
                (lo < hi).then(|| SeriesData {
                    labels: labels.clone(),
                    samples: points[lo..hi].to_vec(),
                })
            })
            .collect())
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        let names: BTreeSet<String> = Self::matching(&s, matchers)
            .flat_map(|(l, _)| l.iter().map(|l| l.name.clone()))
            .collect();
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        let values: BTreeSet<String> = Self::matching(&s, matchers)
            .filter_map(|(l, _)| l.get(name).map(str::to_owned))
            .collect();
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_samples_within_retention_and_selects_by_matchers() {
        let r = Results::new(10_000);
        let a = LabelMap::from([("__name__".into(), "x".into()), ("j".into(), "a".into())]);
        r.append(1_000, &[(a.clone(), 1.0)]).await;
        r.append(1_000, &[(a.clone(), 9.0)]).await;
        r.append(5_000, &[(a.clone(), 2.0)]).await;
        r.append(12_000, &[(a.clone(), 3.0)]).await;
        let m = Matcher::new(storage::matcher::MatchKind::Equal, "j", "a").expect("matcher");
        let got = r.select(&[m], 0, 20_000).await.expect("select");
        assert_eq!(got[0].samples, vec![(5_000, 2.0), (12_000, 3.0)]);
    }

    #[tokio::test]
    async fn sealed_ranges_refuse_appends_and_are_returned_once() {
        let r = Results::new(i64::MAX / 2);
        let a = LabelMap::from([("__name__".into(), "x".into())]);
        for ts in [1_000, 2_000, 3_000] {
            r.append(ts, &[(a.clone(), ts as f64)]).await;
        }
        assert_eq!(r.unsealed_range(), Some((1_000, 3_000)));
        let first = r.seal(i64::MIN, 2_500);
        assert_eq!(first[0].1, vec![(1_000, 1_000.0), (2_000, 2_000.0)]);
        assert_eq!(r.unsealed_range(), Some((3_000, 3_000)));
        r.append(2_000, &[(a.clone(), 9.0)]).await;
        assert!(
            r.seal(i64::MIN, 2_500).is_empty(),
            "nothing left before 2500"
        );
        let rest = r.seal(i64::MIN, 4_000);
        assert_eq!(rest[0].1, vec![(3_000, 3_000.0)]);
        assert_eq!(r.unsealed_range(), None);
        // Everything stays readable.
        let all = r.select(&[], 0, 10_000).await.expect("select");
        assert_eq!(all[0].samples.len(), 3);
    }
}
