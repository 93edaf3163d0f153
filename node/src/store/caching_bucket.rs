//! Thanos' caching bucket for chunks: a bucket decorator that keeps range reads of chunk
//! segment files (`<ULID>/chunks/<n>`) in memory, in aligned pieces of `chunk_subrange_size`
//! bytes, so that a repeated query reads its chunks without a request to the bucket.
//!
//! A read is served from the pieces it covers; the pieces missing are fetched in at most
//! `max_chunks_get_range_requests` range requests (neighbouring runs merged, the closest
//! first), then kept for `chunk_subrange_ttl`. A chunk file's size (to bound its last piece)
//! is asked once per `chunk_object_attrs_ttl`. Every other operation, and local files (which
//! the block reader reads directly, from the page cache), pass through untouched.

use super::caching_bucket_config::CachingBucketConfig;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use moka::sync::Cache;
use prometheus::{IntCounterVec, Opts, Registry};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage::bucket::{Bucket, BucketError, ObjectInfo};

/// The `config` label of the chunk cache's metrics (Thanos' name).
const CHUNKS: &str = "chunks";
const OP_GET_RANGE: &str = "get_range";
const OP_ATTRIBUTES: &str = "attributes";

/// Whether `path` is a chunk segment file: `<anything>/chunks/<digits>`.
fn is_chunk_file(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    let name = parts.next().unwrap_or_default();
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && parts.next() == Some("chunks")
}

/// Thanos' `thanos_store_bucket_cache_*` metrics.
#[derive(Debug, Clone)]
struct Metrics {
    requests: IntCounterVec,
    hits: IntCounterVec,
    requested_bytes: IntCounterVec,
    fetched_bytes: IntCounterVec,
}

impl Metrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "thanos_store_bucket_cache_operation_requests_total",
                    "Number of requested operations matching given config.",
                ),
                &["operation", "config"],
            )?,
            hits: IntCounterVec::new(
                Opts::new(
                    "thanos_store_bucket_cache_operation_hits_total",
                    "Number of operations served from cache for given config.",
                ),
                &["operation", "config"],
            )?,
            requested_bytes: IntCounterVec::new(
                Opts::new(
                    "thanos_store_bucket_cache_getrange_requested_bytes_total",
                    "Total number of bytes requested via GetRange.",
                ),
                &["config"],
            )?,
            fetched_bytes: IntCounterVec::new(
                Opts::new(
                    "thanos_store_bucket_cache_getrange_fetched_bytes_total",
                    "Total number of bytes fetched because of GetRange operation. Data from bucket is then stored to cache.",
                ),
                &["config"],
            )?,
        };
        for op in [OP_GET_RANGE, OP_ATTRIBUTES] {
            m.requests.with_label_values(&[op, CHUNKS]);
            m.hits.with_label_values(&[op, CHUNKS]);
        }
        m.requested_bytes.with_label_values(&[CHUNKS]);
        m.fetched_bytes.with_label_values(&[CHUNKS]);
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.hits.clone()))?;
        registry.register(Box::new(m.requested_bytes.clone()))?;
        registry.register(Box::new(m.fetched_bytes.clone()))?;
        Ok(m)
    }
}

/// A bucket whose chunk file range reads are cached in memory.
pub struct CachingBucket {
    inner: Arc<dyn Bucket>,
    config: CachingBucketConfig,
    /// (chunk file, piece index) -> the piece's bytes (the last piece of a file may be short).
    pieces: Cache<(Arc<str>, u64), Bytes>,
    /// Chunk file -> its size.
    sizes: Cache<Arc<str>, u64>,
    metrics: Metrics,
}

impl std::fmt::Debug for CachingBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingBucket")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl CachingBucket {
    /// Wraps `inner` with the cache `config` describes; metrics go to `registry`.
    pub fn new(
        inner: Arc<dyn Bucket>,
        config: CachingBucketConfig,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let pieces = Cache::builder()
            .max_capacity(config.max_size)
            .weigher(|k: &(Arc<str>, u64), v: &Bytes| {
                u32::try_from(k.0.len() + v.len() + 64).unwrap_or(u32::MAX)
            })
            .time_to_live(config.chunk_subrange_ttl)
            .build();
        let sizes = Cache::builder()
            .max_capacity(1 << 20)
            .time_to_live(config.chunk_object_attrs_ttl)
            .build();
        Ok(CachingBucket {
            inner,
            config,
            pieces,
            sizes,
            metrics: Metrics::new(registry)?,
        })
    }

    async fn object_size(&self, path: &Arc<str>) -> Result<u64, BucketError> {
        let m = &self.metrics;
        m.requests.with_label_values(&[OP_ATTRIBUTES, CHUNKS]).inc();
        if let Some(size) = self.sizes.get(path) {
            m.hits.with_label_values(&[OP_ATTRIBUTES, CHUNKS]).inc();
            return Ok(size);
        }
        let size = self.inner.head(path).await?.size;
        self.sizes.insert(path.clone(), size);
        Ok(size)
    }

    /// `range` of chunk file `path`, from cached pieces and range reads of those missing.
    async fn cached_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        let path: Arc<str> = Arc::from(path);
        let size = self.object_size(&path).await?;
        if range.end > size {
            // Out of range: the bucket names the problem.
            return self.inner.get_range(&path, range).await;
        }
        let piece = self.config.chunk_subrange_size;
        let (first, last) = (range.start / piece, (range.end - 1) / piece);
        let mut pieces: Vec<Option<Bytes>> = (first..=last)
            .map(|i| self.pieces.get(&(path.clone(), i)))
            .collect();
        let m = &self.metrics;
        let n = pieces.len() as u64;
        let hits = pieces.iter().filter(|p| p.is_some()).count() as u64;
        m.requests
            .with_label_values(&[OP_GET_RANGE, CHUNKS])
            .inc_by(n);
        m.hits
            .with_label_values(&[OP_GET_RANGE, CHUNKS])
            .inc_by(hits);
        m.requested_bytes
            .with_label_values(&[CHUNKS])
            .inc_by(range.end - range.start);
        let missing: Vec<u64> = (first..=last)
            .zip(&pieces)
            .filter(|(_, p)| p.is_none())
            .map(|(i, _)| i)
            .collect();
        let runs = merge_runs(runs_of(&missing), self.config.max_chunks_get_range_requests);
        let reads = runs.iter().map(|run| {
            let bytes = run.start * piece..(run.end * piece).min(size);
            let path = path.clone();
            async move { self.inner.get_range(&path, bytes).await }
        });
        let fetched = futures::future::try_join_all(reads).await?;
        for (run, data) in runs.iter().zip(fetched) {
            m.fetched_bytes
                .with_label_values(&[CHUNKS])
                .inc_by(data.len() as u64);
            for i in run.clone() {
                let lo = ((i - run.start) * piece) as usize;
                let hi = (lo + piece as usize).min(data.len());
                let Some(bytes) = (lo < hi).then(|| data.slice(lo..hi)) else {
                    continue;
                };
                if bytes.len() as u64 <= self.config.max_item_size {
                    self.pieces.insert((path.clone(), i), bytes.clone());
                }
                if let Some(slot) = pieces.get_mut((i - first) as usize) {
                    *slot = Some(bytes);
                }
            }
        }
        assemble(&pieces, first, piece, range).ok_or_else(|| {
            BucketError::new(
                storage::bucket::ErrorKind::Other,
                "get_range",
                path.to_string(),
                "the bucket returned fewer bytes than the object's size",
            )
        })
    }
}

/// Consecutive runs of the sorted piece indexes `missing`, as half-open ranges.
fn runs_of(missing: &[u64]) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for &i in missing {
        match runs.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// `runs` merged across their smallest gaps until at most `max` remain (0: no limit); the
/// pieces in the merged gaps are read again, as in Thanos.
fn merge_runs(mut runs: Vec<Range<u64>>, max: usize) -> Vec<Range<u64>> {
    while max > 0 && runs.len() > max {
        let Some(at) = (1..runs.len()).min_by_key(|&i| runs[i].start - runs[i - 1].end) else {
            break;
        };
        let next = runs.remove(at);
        runs[at - 1].end = next.end;
    }
    runs
}

/// The bytes of `range` from the pieces starting at piece `first`; `None` if one is missing
/// or short.
fn assemble(pieces: &[Option<Bytes>], first: u64, piece: u64, range: Range<u64>) -> Option<Bytes> {
    let base = first * piece;
    let (lo, hi) = (range.start - base, range.end - base);
    if pieces.len() == 1 {
        let p = pieces[0].as_ref()?;
        return p
            .get(lo as usize..hi as usize)
            .map(|_| p.slice(lo as usize..hi as usize));
    }
    let mut out = BytesMut::with_capacity((hi - lo) as usize);
    for (k, p) in pieces.iter().enumerate() {
        let p = p.as_ref()?;
        let start = k as u64 * piece;
        let from = lo.saturating_sub(start).min(p.len() as u64) as usize;
        let to = (hi - start).min(p.len() as u64) as usize;
        out.extend_from_slice(p.get(from..to)?);
    }
    (out.len() as u64 == hi - lo).then(|| out.freeze())
}

#[async_trait]
impl Bucket for CachingBucket {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.inner.get(path).await
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        if range.start >= range.end || !is_chunk_file(path) {
            return self.inner.get_range(path, range).await;
        }
        self.cached_range(path, range).await
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        self.inner.head(path).await
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        self.inner.put(path, data).await
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        self.inner.upload_file(path, local).await
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

    fn local_path(&self, path: &str) -> Option<PathBuf> {
        self.inner.local_path(path)
    }

    async fn exists(&self, path: &str) -> Result<bool, BucketError> {
        self.inner.exists(path).await
    }
}

#[cfg(test)]
#[path = "caching_bucket_tests.rs"]
mod tests;
