//! `strata tools bucket compact`: one compaction pass in the foreground, the same pass as
//! `strata compact` without `--wait` (same planner, merge, downsampling, retention and
//! cleanup), with a progress bar (groups done of planned, bytes read and written) on a
//! terminal and progress log lines otherwise.

use crate::compact::run::run_pass_logged;
use crate::compact::CompactFlags;
use crate::flags::ObjstoreFlags;
use crate::progress;
use async_trait::async_trait;
use bytes::Bytes;
use std::io::IsTerminal;
use std::ops::Range;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storage::bucket::{Bucket, BucketError, ObjectInfo};
use storage::compact::Compactor;

/// Runs one pass over the bucket; exit 0 when the pass completed (even if it marked blocks
/// no-compact), 1 when it could not run (as `strata compact` without `--wait`).
pub async fn run(objstore: &ObjstoreFlags, flags: &CompactFlags) -> anyhow::Result<ExitCode> {
    let counted = Arc::new(CountingBucket {
        inner: objstore.open_existing()?,
        read: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    tracing::info!(bucket = %counted.describe(), "compacting bucket (one pass)");
    let bucket: Arc<dyn Bucket> = counted.clone();
    let bar = progress::items(0, "compacting groups");
    let terminal = std::io::stderr().is_terminal();
    let seen = counted.clone();
    let shown = bar.clone();
    let compactor = Compactor::new(bucket, flags.config(&objstore.data_dir)).with_progress(
        Arc::new(move |done, total| {
            let (read, written) = seen.totals();
            let bytes = format!(
                "read {}, written {}",
                indicatif::HumanBytes(read),
                indicatif::HumanBytes(written)
            );
            if terminal {
                shown.set_length(total as u64);
                shown.set_position(done as u64);
                shown.set_message(bytes);
            } else {
                tracing::info!(
                    groups_done = done,
                    groups = total,
                    bytes_read = read,
                    bytes_written = written,
                    "compaction progress"
                );
            }
        }),
    );
    let result = run_pass_logged(&compactor).await;
    bar.finish_and_clear();
    let (read, written) = counted.totals();
    match result {
        Ok(report) => {
            println!(
                "compacted {} group(s): {} merge(s) of {} block(s) ({} vertical), {} downsampled, \
                 {} marked no-compact, {} deleted; read {}, written {}",
                report.groups,
                report.compactions,
                report.blocks_compacted,
                report.vertical_compactions,
                report.downsampled,
                report.marked_no_compact.values().sum::<usize>(),
                report.deleted,
                indicatif::HumanBytes(read),
                indicatif::HumanBytes(written),
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("compaction pass failed: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The bucket, counting bytes that pass through it for the progress display. Reads a
/// FILESYSTEM bucket serves through `local_path` (memory-mapped) are not counted.
#[derive(Debug)]
struct CountingBucket {
    inner: Arc<dyn Bucket>,
    read: AtomicU64,
    written: AtomicU64,
}

impl CountingBucket {
    fn totals(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.written.load(Ordering::Relaxed),
        )
    }

    fn got(&self, r: Result<Bytes, BucketError>) -> Result<Bytes, BucketError> {
        if let Ok(b) = &r {
            self.read.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        r
    }
}

#[async_trait]
impl Bucket for CountingBucket {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn local_path(&self, path: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(path)
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.got(self.inner.get(path).await)
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.got(self.inner.get_range(path, range).await)
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        self.inner.head(path).await
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        let n = data.len() as u64;
        self.inner.put(path, data).await?;
        self.written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        let n = self.inner.upload_file(path, local).await?;
        self.written.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        self.inner.delete(path).await
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        self.inner.list_dir(dir).await
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError> {
        self.inner.list_recursive(prefix).await
    }

    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        self.inner.exists(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_bytes_written_and_read_through_the_bucket() {
        let tmp = tempfile::tempdir().unwrap();
        let flags = ObjstoreFlags {
            config_file: None,
            config: None,
            data_dir: tmp.path().to_path_buf(),
        };
        let inner = flags.open().unwrap();
        let b = CountingBucket {
            inner,
            read: AtomicU64::new(0),
            written: AtomicU64::new(0),
        };
        assert!(b
            .put("a/x", Bytes::from_static(b"hello world"))
            .await
            .is_ok());
        assert_eq!(b.totals(), (0, 11));
        let got = b.get_range("a/x", 0..5).await.ok();
        assert_eq!(got.as_deref(), Some(&b"hello"[..]));
        assert_eq!(b.totals(), (5, 11));
        assert!(b.get("a/missing").await.is_err());
        assert_eq!(b.totals(), (5, 11), "a failed read counts nothing");
    }
}
