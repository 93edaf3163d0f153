//! Retries with exponential backoff and jitter, for transient failures only.

use super::{Bucket, BucketError, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How many times to try and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Total attempts, including the first (1 disables retries).
    pub attempts: u32,
    /// Delay before the first retry; doubles with each further retry.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryOptions {
    /// The delay before retry number `retry` (1-based): `base * 2^(retry-1)`, capped, then
    /// jittered uniformly into its upper half so concurrent clients spread out.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        let nanos = exp.as_nanos() as u64;
        if nanos < 2 {
            return exp;
        }
        Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos))
    }
}

/// Retries transient failures (`ErrorKind::is_transient`) of the inner bucket.
#[derive(Debug)]
pub struct RetryBucket {
    inner: Arc<dyn Bucket>,
    opts: RetryOptions,
}

impl RetryBucket {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Bucket>, opts: RetryOptions) -> Self {
        RetryBucket { inner, opts }
    }

    async fn run<T, F, Fut>(&self, mut f: F) -> Result<T, BucketError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, BucketError>> + Send,
        T: Send,
    {
        let attempts = self.opts.attempts.max(1);
        let mut attempt = 1;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.kind.is_transient() && attempt < attempts => {
                    let delay = self.opts.delay(attempt);
                    tracing::warn!(
                        op = e.op, path = %e.path, attempt, ?delay,
                        "bucket operation failed, retrying: {}", e.message
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(mut e) => {
                    if attempt > 1 {
                        e.message = format!("{} (gave up after {attempt} attempts)", e.message);
                    }
                    return Err(e);
                }
            }
        }
    }
}

#[async_trait]
impl Bucket for RetryBucket {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn local_path(&self, path: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(path)
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.run(|| self.inner.get(path)).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.run(|| self.inner.get_range(path, range.clone())).await
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        self.run(|| self.inner.head(path)).await
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        self.run(|| self.inner.put(path, data.clone())).await
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        self.run(|| self.inner.upload_file(path, local)).await
    }

    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        self.run(|| self.inner.delete(path)).await
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        self.run(|| self.inner.list_dir(dir)).await
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError> {
        self.run(|| self.inner.list_recursive(prefix)).await
    }

    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        self.run(|| self.inner.exists(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::fault::{Fault, FaultBucket};
    use crate::bucket::{backend::ObjectStoreBucket, ErrorKind};

    fn opts(attempts: u32) -> RetryOptions {
        RetryOptions {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    fn faulty() -> Arc<FaultBucket> {
        Arc::new(FaultBucket::new(Arc::new(ObjectStoreBucket::in_memory())))
    }

    #[tokio::test]
    async fn retries_transient_failures_until_success() {
        let fb = faulty();
        fb.put("a", Bytes::from_static(b"x")).await.unwrap();
        fb.fail_next("get", 2, Fault::Kind(ErrorKind::Unavailable));
        let rb = RetryBucket::new(fb.clone(), opts(4));
        assert_eq!(rb.get("a").await.unwrap(), Bytes::from_static(b"x"));
        assert_eq!(fb.calls("get"), 3);
    }

    #[tokio::test]
    async fn gives_up_after_configured_attempts() {
        let fb = faulty();
        fb.fail_next("head", 100, Fault::Kind(ErrorKind::Timeout));
        let rb = RetryBucket::new(fb.clone(), opts(3));
        let err = rb.head("a").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert!(err.message.contains("gave up after 3 attempts"), "{err}");
        assert_eq!(fb.calls("head"), 3);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_failures() {
        let fb = faulty();
        fb.fail_next("put", 5, Fault::Kind(ErrorKind::Unauthorized));
        let rb = RetryBucket::new(fb.clone(), opts(5));
        let err = rb.put("a", Bytes::new()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unauthorized);
        assert_eq!(fb.calls("put"), 1);
        let err = rb.get("missing").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(fb.calls("get"), 1);
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_cap() {
        let o = RetryOptions {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = o.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = o.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = o.delay(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_secs(1));
            assert!(o.delay(200) <= Duration::from_secs(1));
        }
    }
}
