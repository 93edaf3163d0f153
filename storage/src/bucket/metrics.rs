//! Request metrics per bucket and operation, named like Thanos' `thanos_objstore_bucket_*`.
//!
//! Operation label values follow Thanos (`get`, `get_range`, `exists`, `upload`, `delete`,
//! `iter`, `attributes`) so existing dashboards translate by renaming the prefix. As in Thanos,
//! "not found" is an expected outcome and does not count as a failure.

use super::{Bucket, BucketError, ErrorKind, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Thanos' buckets for operation durations, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.1, 0.3, 0.6, 1.0, 3.0, 6.0, 9.0, 20.0, 30.0, 60.0, 90.0, 120.0,
];

/// The collectors, registered once per registry and shared by every bucket.
#[derive(Debug, Clone)]
pub struct BucketMetrics {
    ops: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    last_upload: GaugeVec,
}

impl BucketMetrics {
    /// Creates the collectors and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self::new()?;
        m.register_in(registry)?;
        Ok(m)
    }

    /// Registers these collectors in `registry` too: one set shared by every bucket a process
    /// opens, whichever role opens it, and exposed by the process' registry.
    pub fn register_in(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.ops.clone()))?;
        registry.register(Box::new(self.failures.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.last_upload.clone()))
    }

    /// Creates the collectors, registered nowhere yet.
    pub fn new() -> Result<Self, prometheus::Error> {
        let labels = &["bucket", "operation"];
        let ops = IntCounterVec::new(
            Opts::new(
                "strata_objstore_bucket_operations_total",
                "Total number of bucket operations, by operation.",
            ),
            labels,
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "strata_objstore_bucket_operation_failures_total",
                "Total number of bucket operations that failed (not counting not-found).",
            ),
            labels,
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "strata_objstore_bucket_operation_duration_seconds",
                "Duration of successful bucket operations.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            labels,
        )?;
        let last_upload = GaugeVec::new(
            Opts::new(
                "strata_objstore_bucket_last_successful_upload_time",
                "Unix time of the last successful upload.",
            ),
            &["bucket"],
        )?;
        Ok(BucketMetrics {
            ops,
            failures,
            duration,
            last_upload,
        })
    }
}

/// Counts and times every operation of the inner bucket.
#[derive(Debug)]
pub struct MetricsBucket {
    inner: Arc<dyn Bucket>,
    metrics: BucketMetrics,
    name: String,
}

impl MetricsBucket {
    /// Wraps `inner`; `name` is the `bucket` label value.
    pub fn new(inner: Arc<dyn Bucket>, metrics: BucketMetrics, name: impl Into<String>) -> Self {
        MetricsBucket {
            inner,
            metrics,
            name: name.into(),
        }
    }

    async fn run<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, BucketError>> + Send,
    ) -> Result<T, BucketError> {
        let labels = [self.name.as_str(), operation];
        self.metrics.ops.with_label_values(&labels).inc();
        let start = Instant::now();
        let res = fut.await;
        match &res {
            Ok(_) => {
                self.metrics
                    .duration
                    .with_label_values(&labels)
                    .observe(start.elapsed().as_secs_f64());
                if operation == "upload" {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or_default();
                    self.metrics
                        .last_upload
                        .with_label_values(&[self.name.as_str()])
                        .set(now);
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(_) => self.metrics.failures.with_label_values(&labels).inc(),
        }
        res
    }
}

#[async_trait]
impl Bucket for MetricsBucket {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn local_path(&self, path: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(path)
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.run("get", self.inner.get(path)).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.run("get_range", self.inner.get_range(path, range))
            .await
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        self.run("attributes", self.inner.head(path)).await
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        self.run("upload", self.inner.put(path, data)).await
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        self.run("upload", self.inner.upload_file(path, local))
            .await
    }

    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        self.run("delete", self.inner.delete(path)).await
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        self.run("iter", self.inner.list_dir(dir)).await
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError> {
        self.run("iter", self.inner.list_recursive(prefix)).await
    }

    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        self.run("exists", self.inner.exists(path)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::backend::ObjectStoreBucket;
    use crate::bucket::fault::{Fault, FaultBucket};

    fn value(reg: &Registry, name: &str, op: &str) -> f64 {
        for mf in reg.gather() {
            if mf.name() != name {
                continue;
            }
            for m in mf.get_metric() {
                let has_op = m
                    .get_label()
                    .iter()
                    .any(|l| l.name() == "operation" && l.value() == op);
                if has_op {
                    return if name.ends_with("_seconds") {
                        m.get_histogram().get_sample_count() as f64
                    } else {
                        m.get_counter().get_value()
                    };
                }
            }
        }
        0.0
    }

    #[tokio::test]
    async fn counts_operations_failures_and_durations_by_thanos_operation() {
        let reg = Registry::new();
        let metrics = BucketMetrics::register(&reg).unwrap();
        let fb = Arc::new(FaultBucket::new(Arc::new(ObjectStoreBucket::in_memory())));
        let mb = MetricsBucket::new(fb.clone(), metrics, "test");
        mb.put("a", Bytes::from_static(b"x")).await.unwrap();
        mb.get("a").await.unwrap();
        assert!(mb.get("missing").await.unwrap_err().is_not_found());
        fb.fail_next("get", 1, Fault::Kind(ErrorKind::Unavailable));
        mb.get("a").await.unwrap_err();
        mb.head("a").await.unwrap();

        assert_eq!(
            value(&reg, "strata_objstore_bucket_operations_total", "get"),
            3.0
        );
        assert_eq!(
            value(&reg, "strata_objstore_bucket_operations_total", "upload"),
            1.0
        );
        assert_eq!(
            value(
                &reg,
                "strata_objstore_bucket_operations_total",
                "attributes"
            ),
            1.0
        );
        assert_eq!(
            value(
                &reg,
                "strata_objstore_bucket_operation_failures_total",
                "get"
            ),
            1.0
        );
        assert_eq!(
            value(
                &reg,
                "strata_objstore_bucket_operation_duration_seconds",
                "get"
            ),
            1.0
        );
    }

    #[test]
    fn registering_twice_in_one_registry_is_an_error() {
        let reg = Registry::new();
        BucketMetrics::register(&reg).unwrap();
        assert!(BucketMetrics::register(&reg).is_err());
    }
}
