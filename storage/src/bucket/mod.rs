//! The bucket: one trait over object storage, its backends and decorators.
//!
//! Everything that reads or writes the bucket holds an `Arc<dyn Bucket>` and never knows
//! whether it talks to S3, a local directory or memory, or through which decorators
//! (retries, metrics, timeouts).
//!
//! - `config`: Thanos' objstore YAML; `open`: backend plus the standard decorator stack.
//! - `backend`: `ObjectStoreBucket` over S3, a local directory or memory.
//! - `retry`, `timeout`, `metrics`, `fault`: decorators.
//! - `object`: one object as a `RangeSource` for the block reader.
//! - `blocks`, `marks`: Thanos' block layout, uploads, metas and marker files.
//! - `fetcher`: the one block-metadata fetcher with Thanos-style filters.

pub mod backend;
pub mod blocks;
pub mod config;
pub mod duration;
mod errors;
pub mod fault;
pub mod fetcher;
pub mod marks;
pub mod metrics;
pub mod object;
pub mod open;
pub mod retry;
pub mod timeout;

pub use backend::ObjectStoreBucket;
pub use config::BucketConfig;
pub use metrics::BucketMetrics;
pub use object::BucketObject;
pub use open::{
    open_backend, open_bucket, open_existing_from_flags, open_from_flags, require_existing,
    BucketOptions,
};

use async_trait::async_trait;
use bytes::Bytes;
use std::fmt::Debug;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The kind of a bucket failure, for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The server refused the credentials (wrong key or secret, expired token).
    Unauthorized,
    /// The operation did not finish within its timeout.
    Timeout,
    /// The endpoint could not be reached or answered with a server error; worth retrying.
    Unavailable,
    /// The bucket configuration is invalid.
    Config,
    /// A local file could not be read or written.
    LocalIo,
    /// Anything else; not retried.
    Other,
}

impl ErrorKind {
    /// Whether retrying the same operation may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Timeout | ErrorKind::Unavailable)
    }
}

/// A failed bucket operation, naming the operation and the object.
#[derive(Debug, thiserror::Error)]
#[error("bucket {op} {path:?}: {message}")]
pub struct BucketError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The operation: `get`, `put`, `list`, ...
    pub op: &'static str,
    /// Object path or prefix.
    pub path: String,
    /// Human-readable explanation.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BucketError {
    /// An error without an underlying source.
    pub fn new(
        kind: ErrorKind,
        op: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        BucketError {
            kind,
            op,
            path: path.into(),
            message: message.into(),
            source: None,
        }
    }

    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full path in the bucket.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, ms since the epoch.
    pub last_modified_ms: i64,
}

/// Object storage as Strata uses it. Paths are `/`-separated without a leading `/`.
#[async_trait]
pub trait Bucket: Send + Sync + Debug {
    /// A short description for logs, like `s3://bucket` or `file:///dir`.
    fn describe(&self) -> String;

    /// Reads a whole object.
    async fn get(&self, path: &str) -> Result<Bytes, BucketError>;

    /// Reads `range` of an object; the range must lie within it.
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError>;

    /// An object's size and modification time.
    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError>;

    /// Writes a whole object.
    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError>;

    /// Uploads a local file, in parts when it is larger than the configured part size.
    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError>;

    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, path: &str) -> Result<(), BucketError>;

    /// Lists the direct children of `dir` (`""` for the top): objects by full path, and
    /// sub-directories by full path with a trailing `/`. Sorted.
    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError>;

    /// Lists every object under `prefix`, recursively, sorted by path.
    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError>;

    /// The object's file on local disk when the bucket is a local directory (FILESYSTEM),
    /// so readers can skip the object store and read it directly; `None` for remote buckets,
    /// invalid paths and decorators that must see every read (fault injection).
    fn local_path(&self, path: &str) -> Option<PathBuf> {
        let _ = path;
        None
    }

    /// Whether an object exists.
    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        match self.head(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}
