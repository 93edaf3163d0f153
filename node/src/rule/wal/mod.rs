//! The ruler's write-ahead log: every evaluation's accepted results are appended (one frame
//! per evaluation, `codec`) to `<data-dir>/wal/<00000001..>` and fsynced before the next
//! iteration, so results not yet in a block survive SIGKILL or a crash.
//!
//! Segments are cut at a size; each start opens a new segment, so a segment once read is never
//! appended to. A segment whose samples are all before the sealed range's end is removed
//! (oldest first). Replay tolerates a torn last record of the last segment (truncated, logged,
//! counted); a corrupt record anywhere else is logged with the file and offset and the rest of
//! that segment skipped, counted too.

pub mod codec;

use codec::{FrameError, Record};
use prometheus::{IntCounter, Registry};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Default size at which a segment is closed and the next one begun.
pub const SEGMENT_BYTES: u64 = 8 << 20;

/// Why the WAL could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file or directory operation failed.
    #[error("ruler WAL {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// One series' record is over the frame limit.
    #[error("a ruler WAL record of {0} bytes is over the frame limit")]
    TooLarge(usize),
}

/// The WAL's metrics.
#[derive(Clone)]
pub struct WalMetrics {
    /// `strata_rule_wal_torn_records_total`.
    pub torn: IntCounter,
    /// `strata_rule_wal_corruptions_total`.
    pub corrupt: IntCounter,
    /// `strata_rule_wal_writes_failed_total`.
    pub write_failures: IntCounter,
    /// `strata_rule_wal_segments_removed_total`.
    pub removed: IntCounter,
}

impl WalMetrics {
    /// Creates and registers the metrics.
    pub fn register(r: &Registry) -> Result<WalMetrics, prometheus::Error> {
        let c = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(WalMetrics {
            torn: c(
                "strata_rule_wal_torn_records_total",
                "Torn records truncated from the end of the ruler's WAL at replay.",
            )?,
            corrupt: c(
                "strata_rule_wal_corruptions_total",
                "Corrupt records in the ruler's WAL at replay (the rest of their segment skipped).",
            )?,
            write_failures: c(
                "strata_rule_wal_writes_failed_total",
                "Failed writes or fsyncs of the ruler's WAL.",
            )?,
            removed: c(
                "strata_rule_wal_segments_removed_total",
                "WAL segments removed because their samples are in blocks.",
            )?,
        })
    }

    /// Unregistered metrics, for tests.
    pub fn unregistered() -> WalMetrics {
        let c = |n: &str| IntCounter::new(n, "test").expect("valid metric name");
        WalMetrics {
            torn: c("torn"),
            corrupt: c("corrupt"),
            write_failures: c("write_failures"),
            removed: c("removed"),
        }
    }
}

/// A segment and the newest sample timestamp it holds (`i64::MIN`: none).
#[derive(Debug, Clone, Copy)]
struct Segment {
    index: u64,
    max_ts: i64,
}

struct Active {
    file: File,
    segment: Segment,
    written: u64,
    /// Closed segments, oldest first.
    closed: Vec<Segment>,
    buf: Vec<u8>,
}

/// An open WAL, appending to its newest segment.
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    active: Mutex<Active>,
    metrics: WalMetrics,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn record_series(r: &Record) -> usize {
    match r {
        Record::Samples { series, .. } => series.len(),
        Record::Sealed { .. } => 0,
    }
}

/// Segment files in `dir`, oldest first; other names are left alone.
fn segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let name = entry.map_err(io(dir))?.file_name();
        let name = name.to_string_lossy();
        if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(i) = name.parse() {
                found.push(i);
            }
        }
    }
    found.sort_unstable();
    Ok(found)
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:08}"))
}

/// Reads one segment, handing each record to `apply`; returns the newest sample timestamp.
/// `last`: a torn tail is truncated rather than counted as corruption.
fn replay_segment(
    path: &Path,
    last: bool,
    metrics: &WalMetrics,
    apply: &mut dyn FnMut(Record),
) -> Result<i64, WalError> {
    let data = std::fs::read(path).map_err(io(path))?;
    let mut max_ts = i64::MIN;
    let file = path.display();
    if data.len() < codec::MAGIC.len() && codec::MAGIC.starts_with(&data) {
        // Died while creating the segment: nothing in it.
        return Ok(max_ts);
    }
    if !data.starts_with(codec::MAGIC) {
        metrics.corrupt.inc();
        tracing::error!(%file, offset = 0, "ruler WAL segment without its magic; skipped");
        return Ok(max_ts);
    }
    let mut pos = codec::MAGIC.len();
    while pos < data.len() {
        match codec::decode(&data[pos..]) {
            Ok((record, n)) => {
                if let Record::Samples { ts, .. } = &record {
                    max_ts = max_ts.max(*ts);
                }
                apply(record);
                pos += n;
            }
            Err(e @ FrameError::Incomplete { .. }) if last => {
                metrics.torn.inc();
                tracing::warn!(%file, offset = pos, error = %e, "torn record at the end of the ruler WAL; truncated");
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(io(path))?;
                f.set_len(pos as u64).map_err(io(path))?;
                f.sync_all().map_err(io(path))?;
                break;
            }
            Err(e) => {
                metrics.corrupt.inc();
                tracing::error!(%file, offset = pos, error = %e, "corrupt record in the ruler WAL; the rest of the segment is skipped");
                break;
            }
        }
    }
    Ok(max_ts)
}

impl Wal {
    /// Opens `dir` (created if missing), hands every record of every segment to `apply` in
    /// order, and starts a new segment for appends.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        metrics: WalMetrics,
        mut apply: impl FnMut(Record),
    ) -> Result<Wal, WalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let found = segments(dir)?;
        let mut closed = Vec::with_capacity(found.len());
        for (i, &index) in found.iter().enumerate() {
            let path = segment_path(dir, index);
            let max_ts = replay_segment(&path, i + 1 == found.len(), &metrics, &mut apply)?;
            closed.push(Segment { index, max_ts });
        }
        let next = found.last().map_or(1, |i| i + 1);
        let file = Self::create(dir, next)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(codec::MAGIC.len() as u64 + 1),
            active: Mutex::new(Active {
                file,
                segment: Segment {
                    index: next,
                    max_ts: i64::MIN,
                },
                written: codec::MAGIC.len() as u64,
                closed,
                buf: Vec::new(),
            }),
            metrics,
        })
    }

    fn create(dir: &Path, index: u64) -> Result<File, WalError> {
        let path = segment_path(dir, index);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(codec::MAGIC).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        // The new name must survive a crash too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(f)
    }

    /// The WAL's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `record` (written, not yet fsynced: [`Wal::sync`]); failures are logged and
    /// counted, the results staying in memory only.
    pub fn append(&self, record: &Record) {
        let mut a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.append_locked(&mut a, record) {
            self.metrics.write_failures.inc();
            tracing::error!(error = %e, "writing the ruler WAL failed; these results are in memory only");
        }
    }

    fn append_locked(&self, a: &mut Active, record: &Record) -> Result<(), WalError> {
        a.buf.clear();
        codec::encode(record, &mut a.buf);
        if a.buf.len() > codec::HEADER + codec::MAX_PAYLOAD {
            // Too big for one frame: halves, each still at this evaluation's timestamp.
            let (Record::Samples { ts, series }, 2..) = (record, record_series(record)) else {
                return Err(WalError::TooLarge(a.buf.len()));
            };
            let (x, y) = series.split_at(series.len() / 2);
            for half in [x, y] {
                let r = Record::Samples {
                    ts: *ts,
                    series: half.to_vec(),
                };
                self.append_locked(a, &r)?;
            }
            return Ok(());
        }
        if a.written >= self.segment_bytes {
            let next = a.segment.index + 1;
            a.file
                .sync_all()
                .map_err(io(&segment_path(&self.dir, a.segment.index)))?;
            a.file = Self::create(&self.dir, next)?;
            let done = std::mem::replace(
                &mut a.segment,
                Segment {
                    index: next,
                    max_ts: i64::MIN,
                },
            );
            a.closed.push(done);
            a.written = codec::MAGIC.len() as u64;
        }
        let path = segment_path(&self.dir, a.segment.index);
        a.file.write_all(&a.buf).map_err(io(&path))?;
        a.written += a.buf.len() as u64;
        if let Record::Samples { ts, .. } = record {
            a.segment.max_ts = a.segment.max_ts.max(*ts);
        }
        Ok(())
    }

    /// Fsyncs what was appended.
    pub fn sync(&self) {
        let a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = a.file.sync_data() {
            self.metrics.write_failures.inc();
            tracing::error!(error = %e, "fsync of the ruler WAL failed");
        }
    }

    /// Removes the oldest closed segments whose samples are all before `sealed_before` (in
    /// blocks). Returns how many were removed.
    pub fn truncate(&self, sealed_before: i64) -> usize {
        let mut a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let done = a
            .closed
            .iter()
            .take_while(|s| s.max_ts < sealed_before)
            .count();
        let mut removed = 0;
        for s in &a.closed[..done] {
            let path = segment_path(&self.dir, s.index);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "removing a ruler WAL segment failed; retrying later");
                    break;
                }
            }
        }
        a.closed.drain(..removed);
        if removed > 0 {
            self.metrics.removed.inc_by(removed as u64);
            tracing::info!(
                segments = removed,
                sealed_before,
                "ruler WAL segments removed: their samples are in blocks"
            );
        }
        removed
    }

    /// At a clean stop, after the last block: removes every segment, the active one too, when
    /// all their samples are before `sealed_before`. Appends after this are lost.
    pub fn finish(&self, sealed_before: i64) {
        self.sync();
        let mut a = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let active = a.segment;
        a.closed.push(active);
        a.segment.max_ts = i64::MAX;
        drop(a);
        self.truncate(sealed_before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::labels::Labels;

    fn rec(ts: i64) -> Record {
        Record::Samples {
            ts,
            series: vec![(Labels::from_pairs([("__name__", "r")]), ts as f64)],
        }
    }

    fn open(dir: &Path, bytes: u64) -> (Wal, Vec<Record>, WalMetrics) {
        let m = WalMetrics::unregistered();
        let mut got = Vec::new();
        let w = Wal::open(dir, bytes, m.clone(), |r| got.push(r)).expect("open");
        (w, got, m)
    }

    fn tail_segment(dir: &Path) -> PathBuf {
        let last = *segments(dir).expect("list").last().expect("a segment");
        segment_path(dir, last)
    }

    #[test]
    fn records_come_back_in_order_across_restarts_and_segments() {
        let d = tempfile::tempdir().expect("tempdir");
        let (w, got, _) = open(d.path(), 64);
        assert!(got.is_empty());
        for ts in 1..=5 {
            w.append(&rec(ts));
        }
        w.append(&Record::Sealed { before: 3 });
        w.sync();
        drop(w);
        let (w, got, m) = open(d.path(), 64);
        let want: Vec<Record> = (1..=5)
            .map(rec)
            .chain([Record::Sealed { before: 3 }])
            .collect();
        assert_eq!(got, want);
        assert!(
            segments(d.path()).expect("list").len() > 2,
            "64-byte segments"
        );
        w.append(&rec(6));
        drop(w);
        let (_, again, _) = open(d.path(), 64);
        assert_eq!(again.len(), 7);
        assert_eq!((m.torn.get(), m.corrupt.get()), (0, 0));
    }

    #[test]
    fn a_torn_tail_is_truncated_and_counted() {
        let d = tempfile::tempdir().expect("tempdir");
        let (w, _, _) = open(d.path(), SEGMENT_BYTES);
        w.append(&rec(1));
        w.append(&rec(2));
        drop(w);
        let tail = tail_segment(d.path());
        let full = std::fs::read(&tail).expect("read").len();
        let mut f = OpenOptions::new().append(true).open(&tail).expect("open");
        let mut frame = Vec::new();
        codec::encode(&rec(3), &mut frame);
        f.write_all(&frame[..frame.len() - 3]).expect("write");
        drop(f);
        let (_, got, m) = open(d.path(), SEGMENT_BYTES);
        assert_eq!(got, vec![rec(1), rec(2)]);
        assert_eq!((m.torn.get(), m.corrupt.get()), (1, 0));
        assert_eq!(std::fs::read(&tail).expect("read").len(), full, "truncated");
    }

    #[test]
    fn a_corrupt_record_in_the_middle_skips_the_rest_of_its_segment_only() {
        let d = tempfile::tempdir().expect("tempdir");
        let (w, _, _) = open(d.path(), SEGMENT_BYTES);
        for ts in 1..=3 {
            w.append(&rec(ts));
        }
        drop(w);
        let first = tail_segment(d.path());
        let (w, _, _) = open(d.path(), SEGMENT_BYTES);
        w.append(&rec(4));
        drop(w);
        // Flip a byte in the second record's payload.
        let mut bytes = std::fs::read(&first).expect("read");
        let mut one = Vec::new();
        codec::encode(&rec(1), &mut one);
        let at = codec::MAGIC.len() + one.len() + codec::HEADER + 2;
        bytes[at] ^= 0xff;
        std::fs::write(&first, &bytes).expect("write");
        let (_, got, m) = open(d.path(), SEGMENT_BYTES);
        assert_eq!(got, vec![rec(1), rec(4)]);
        assert_eq!((m.torn.get(), m.corrupt.get()), (0, 1));
        assert_eq!(std::fs::read(&first).expect("read"), bytes, "left as found");
    }

    #[test]
    fn segments_go_once_their_samples_are_sealed_oldest_first() {
        let d = tempfile::tempdir().expect("tempdir");
        let (w, _, m) = open(d.path(), 40);
        for ts in [10, 20, 30, 40] {
            w.append(&rec(ts));
        }
        let before = segments(d.path()).expect("list");
        assert_eq!(w.truncate(25), 2, "segments up to ts 20");
        let after = segments(d.path()).expect("list");
        assert_eq!(after.len(), before.len() - 2);
        assert_eq!(after[0], before[2]);
        assert_eq!(w.truncate(25), 0);
        w.finish(41);
        assert!(segments(d.path()).expect("list").is_empty());
        assert_eq!(m.removed.get(), before.len() as u64);
    }

    #[test]
    fn a_record_over_the_frame_limit_is_split_by_series() {
        let d = tempfile::tempdir().expect("tempdir");
        let (w, _, m) = open(d.path(), SEGMENT_BYTES * 32);
        let big = "x".repeat(1 << 20);
        let series: Vec<_> = (0..70)
            .map(|i| {
                (
                    Labels::from_pairs([("a", big.as_str()), ("i", &i.to_string())]),
                    1.0,
                )
            })
            .collect();
        w.append(&Record::Samples {
            ts: 7,
            series: series.clone(),
        });
        drop(w);
        let (_, got, _) = open(d.path(), SEGMENT_BYTES);
        assert_eq!(got.len(), 2);
        let back: Vec<_> = got
            .into_iter()
            .flat_map(|r| match r {
                Record::Samples { ts: 7, series } => series,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(back, series);
        assert_eq!(m.write_failures.get(), 0);
    }
}
