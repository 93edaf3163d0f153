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
            torn: c("strata_rule_wal_torn_records_total", "Torn records truncated from the end of the ruler's WAL at replay.")?,
            corrupt: c("strata_rule_wal_corruptions_total", "Corrupt records in the ruler's WAL at replay (the rest of their segment skipped).")?,
            write_failures: c("strata_rule_wal_writes_failed_total", "Failed writes or fsyncs of the ruler's WAL.")?,
            removed: c("strata_rule_wal_segments_removed_total", "WAL segments removed because their samples are in blocks.")?,
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
        f.debug_struct("Wal").field("dir", &self.dir).finish_non_exhaustive()
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
                let f = OpenOptions::new().write(true).open(path).map_err(io(path))?;
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
            tracing::info!(segments = removed, sealed_before, "ruler WAL segments removed: their samples are in blocks");
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

