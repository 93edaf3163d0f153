//! A fault-injecting bucket for tests: fails chosen operations a chosen number of times and
//! counts every call, so tests can assert retries and failure handling.

use super::{Bucket, BucketError, ErrorKind, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail immediately with this kind.
    Kind(ErrorKind),
    /// Wait this long before calling through (for timeout tests).
    Delay(Duration),
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<&'static str, u64>,
    pending: HashMap<&'static str, (u64, Fault)>,
}

/// Wraps a bucket; operations are named `get`, `get_range`, `head`, `put`, `upload`,
/// `delete`, `list_dir`, `list`, `exists`.
#[derive(Debug)]
pub struct FaultBucket {
    inner: Arc<dyn Bucket>,
    state: Mutex<State>,
}

impl FaultBucket {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: Arc<dyn Bucket>) -> Self {
        FaultBucket {
            inner,
            state: Mutex::new(State::default()),
        }
    }

    /// Makes the next `times` calls of `op` suffer `fault`.
    pub fn fail_next(&self, op: &'static str, times: u64, fault: Fault) {
        self.lock().pending.insert(op, (times, fault));
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: &str) -> u64 {
        self.lock().calls.get(op).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock can only come from a test; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn enter(&self, op: &'static str, path: &str) -> Result<(), BucketError> {
        let fault = {
            let mut st = self.lock();
            *st.calls.entry(op).or_default() += 1;
            match st.pending.get_mut(op) {
                Some((n, f)) if *n > 0 => {
                    *n -= 1;
                    Some(f.clone())
                }
                _ => None,
            }
        };
        match fault {
            None => Ok(()),
            Some(Fault::Kind(kind)) => Err(BucketError::new(kind, op, path, "injected fault")),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Bucket for FaultBucket {
    fn describe(&self) -> String {
        format!("fault({})", self.inner.describe())
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.enter("get", path).await?;
        self.inner.get(path).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.enter("get_range", path).await?;
        self.inner.get_range(path, range).await
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        self.enter("head", path).await?;
        self.inner.head(path).await
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        self.enter("put", path).await?;
        self.inner.put(path, data).await
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        self.enter("upload", path).await?;
        self.inner.upload_file(path, local).await
    }

    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        self.enter("delete", path).await?;
        self.inner.delete(path).await
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        self.enter("list_dir", dir).await?;
        self.inner.list_dir(dir).await
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError> {
        self.enter("list", prefix).await?;
        self.inner.list_recursive(prefix).await
    }

    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        self.enter("exists", path).await?;
        self.inner.exists(path).await
    }
}
