//! Per-operation time limits, so a silent server cannot hang a caller.

use super::duration::format_go_duration;
use super::{Bucket, BucketError, ErrorKind, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Limits per kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutOptions {
    /// get, get_range, head, put, delete, list, exists.
    pub request: Duration,
    /// upload_file, which streams a whole local file (up to a 512 MiB chunk segment).
    pub upload: Duration,
}

impl Default for TimeoutOptions {
    fn default() -> Self {
        TimeoutOptions {
            request: Duration::from_secs(5 * 60),
            upload: Duration::from_secs(30 * 60),
        }
    }
}

/// Fails operations of the inner bucket that run longer than their limit with
/// `ErrorKind::Timeout`.
#[derive(Debug)]
pub struct TimeoutBucket {
    inner: Arc<dyn Bucket>,
    opts: TimeoutOptions,
}

impl TimeoutBucket {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Bucket>, opts: TimeoutOptions) -> Self {
        TimeoutBucket { inner, opts }
    }

    async fn run<T>(
        &self,
        op: &'static str,
        path: &str,
        limit: Duration,
        fut: impl Future<Output = Result<T, BucketError>> + Send,
    ) -> Result<T, BucketError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(BucketError::new(
                ErrorKind::Timeout,
                op,
                path,
                format!(
                    "no answer within the {} limit for this operation",
                    format_go_duration(limit)
                ),
            )),
        }
    }
}

#[async_trait]
impl Bucket for TimeoutBucket {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn local_path(&self, path: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(path)
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        let t = self.opts.request;
        self.run("get", path, t, self.inner.get(path)).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        let t = self.opts.request;
        self.run("get_range", path, t, self.inner.get_range(path, range))
            .await
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        let t = self.opts.request;
        self.run("head", path, t, self.inner.head(path)).await
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        let t = self.opts.request;
        self.run("put", path, t, self.inner.put(path, data)).await
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        let t = self.opts.upload;
        self.run("upload", path, t, self.inner.upload_file(path, local))
            .await
    }

    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        let t = self.opts.request;
        self.run("delete", path, t, self.inner.delete(path)).await
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        let t = self.opts.request;
        self.run("list_dir", dir, t, self.inner.list_dir(dir)).await
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError> {
        let t = self.opts.request;
        self.run("list", prefix, t, self.inner.list_recursive(prefix))
            .await
    }

    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        let t = self.opts.request;
        self.run("exists", path, t, self.inner.exists(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::backend::ObjectStoreBucket;
    use crate::bucket::fault::{Fault, FaultBucket};

    #[tokio::test]
    async fn slow_operation_times_out_naming_the_limit() {
        let fb = Arc::new(FaultBucket::new(Arc::new(ObjectStoreBucket::in_memory())));
        fb.fail_next("get", 1, Fault::Delay(Duration::from_secs(3600)));
        let tb = TimeoutBucket::new(
            fb.clone(),
            TimeoutOptions {
                request: Duration::from_millis(150),
                upload: Duration::from_secs(60),
            },
        );
        let err = tb.get("a").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert!(err.message.contains("150ms limit"), "{err}");
        // Fast operations pass through untouched.
        tb.put("a", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(tb.get("a").await.unwrap(), Bytes::from_static(b"x"));
    }
}
