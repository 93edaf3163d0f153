//! The store over S3 with index headers: the first sync builds a small header per block on
//! local disk, a restarted store opens every block without reading an index from the bucket,
//! a cache too small to keep blocks open still answers exactly (blocks reopen from their
//! headers), and a block gone from the bucket loses its header.

use crate::store::catalog::{Catalog, CatalogOptions, TimeWindow};
use crate::store::client::StoreEndpoint;
use crate::store::index_cache::InMemoryIndexCache;
use crate::store::opener::INDEX_HEADER_FILENAME;
use crate::store::{StoreService, DEFAULT_FRAME_BYTES};
use async_trait::async_trait;
use bytes::Bytes;
use promql::SeriesData;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storage::block::meta::ThanosMeta;
use storage::block::{write_block, BlockMeta, BlockWriterOptions};
use storage::bucket::blocks::{delete_block, upload_block};
use storage::bucket::fetcher::MetaFetcher;
use storage::bucket::{
    open_from_flags, Bucket, BucketError, BucketMetrics, BucketOptions, ObjectInfo,
};
use storage::labels::Labels;
use storage::matcher::Matcher;

const BLOCKS: i64 = 6;
const BLOCK_MS: i64 = 2 * 3600 * 1000;

/// Counts reads of index files, passing everything through.
#[derive(Debug)]
struct IndexReads {
    inner: Arc<dyn Bucket>,
    reads: AtomicU64,
}

impl IndexReads {
    fn count(&self, path: &str) {
        if path.ends_with("/index") {
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn take(&self) -> u64 {
        self.reads.swap(0, Ordering::SeqCst)
    }
}

#[async_trait]
impl Bucket for IndexReads {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.count(path);
        self.inner.get(path).await
    }
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.count(path);
        self.inner.get_range(path, range).await
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
}

fn block_data(b: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    (0..4)
        .map(|i| {
            let labels =
                Labels::from_pairs([("__name__", "up"), ("instance", &*format!("host-{i}"))]);
            let samples = (0..120)
                .map(|k| (b * BLOCK_MS + k * 60_000, (b * 1000 + k + i) as f64))
                .collect();
            (labels, samples)
        })
        .collect()
}

fn expected(blocks: Range<i64>) -> Vec<SeriesData> {
    let mut by: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let ext = Labels::from_pairs([("cluster", "a")]);
    for b in blocks {
        for (l, s) in block_data(b) {
            by.entry(l.merged(&ext)).or_default().extend(s);
        }
    }
    by.into_iter()
        .map(|(labels, samples)| SeriesData { labels, samples })
        .collect()
}

fn catalog(bucket: Arc<dyn Bucket>, headers: &Path, cache_bytes: u64) -> Arc<Catalog> {
    catalog_with(bucket, headers, cache_bytes, None)
}

fn catalog_with(
    bucket: Arc<dyn Bucket>,
    headers: &Path,
    cache_bytes: u64,
    index_cache: Option<Arc<InMemoryIndexCache>>,
) -> Arc<Catalog> {
    let options = CatalogOptions {
        fetcher: MetaFetcher::new(bucket.clone()),
        window: TimeWindow::unbounded(),
        header_dir: Some(headers.to_path_buf()),
        header_cache_bytes: cache_bytes,
        index_cache,
    };
    let registry = prometheus::Registry::new();
    Arc::new(Catalog::with_options(bucket, options, &registry).expect("catalog"))
}

async fn all_series(catalog: Arc<Catalog>) -> Vec<SeriesData> {
    let svc = StoreService::new(catalog, DEFAULT_FRAME_BYTES);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.store_server())
            .serve_with_incoming(crate::node::grpc::incoming(listener)),
    );
    let store = StoreEndpoint::new(&addr).expect("endpoint");
    let got = store
        .series(
            &[Matcher::equal("__name__", "up")],
            i64::MIN,
            i64::MAX,
            false,
        )
        .await
        .expect("series");
    server.abort();
    got.series
}

/// `BLOCKS` blocks uploaded to `s3`, behind a bucket counting index reads; their ULIDs.
async fn uploaded(
    s3: &storage::testing::s3::S3Server,
    tmp: &Path,
) -> (Arc<IndexReads>, Vec<ulid::Ulid>) {
    let registry = prometheus::Registry::new();
    let metrics = BucketMetrics::register(&registry).expect("metrics");
    let yaml = s3.yaml(storage::testing::s3::SECRET_KEY, "");
    let s3_bucket = open_from_flags(None, Some(&yaml), tmp, &BucketOptions::default(), &metrics)
        .expect("s3 bucket");
    let local = tmp.join("blocks");
    std::fs::create_dir_all(&local).expect("local dir");
    let mut ids = Vec::new();
    for b in 0..BLOCKS {
        let thanos = ThanosMeta {
            version: 1,
            labels: BTreeMap::from([("cluster".to_string(), "a".to_string())]),
            source: "test".into(),
            ..Default::default()
        };
        let (dir, _) = write_block(
            &local,
            block_data(b),
            Some(thanos),
            BlockWriterOptions::default(),
        )
        .expect("write block");
        let meta = BlockMeta::read_from_dir(&dir).expect("meta");
        upload_block(s3_bucket.as_ref(), &dir, &meta, None)
            .await
            .expect("upload");
        ids.push(meta.ulid);
    }
    let counted = Arc::new(IndexReads {
        inner: s3_bucket,
        reads: AtomicU64::new(0),
    });
    (counted, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_series_request_reads_no_postings_or_series_from_the_bucket() {
    let s3 = storage::testing::s3::S3Server::start()
        .await
        .expect("s3 server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (counted, ids) = uploaded(&s3, tmp.path()).await;
    let registry = prometheus::Registry::new();
    let cache = Arc::new(InMemoryIndexCache::new(1 << 20, &registry).expect("cache"));
    // A header cache too small to keep any block open: blocks reopen per request, and the
    // index cache must outlive them.
    let c = catalog_with(
        counted.clone(),
        &tmp.path().join("headers"),
        1,
        Some(cache.clone()),
    );
    c.sync().await.expect("sync");
    counted.take();
    assert_eq!(all_series(c.clone()).await, expected(0..BLOCKS));
    assert!(
        counted.take() > 0,
        "the first request reads postings and series"
    );
    let (items, _) = cache.usage();
    // Per block: the `__name__="up"` list and four series entries.
    assert_eq!(items, 5 * BLOCKS as u64);
    assert_eq!(all_series(c.clone()).await, expected(0..BLOCKS));
    assert_eq!(counted.take(), 0, "the second request reads no index bytes");

    delete_block(counted.as_ref(), ids[0])
        .await
        .expect("delete");
    c.sync().await.expect("sync");
    assert_eq!(
        cache.usage().0,
        5 * (BLOCKS as u64 - 1),
        "the deleted block's items are gone"
    );
    assert_eq!(all_series(c).await, expected(1..BLOCKS));
    assert_eq!(counted.take(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_reopen_from_local_index_headers_without_reading_indexes_from_s3() {
    let s3 = storage::testing::s3::S3Server::start()
        .await
        .expect("s3 server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (counted, ids) = uploaded(&s3, tmp.path()).await;
    let headers = tmp.path().join("headers");

    let first = catalog(counted.clone(), &headers, u64::MAX);
    first.sync().await.expect("sync");
    assert!(
        counted.take() >= BLOCKS as u64,
        "the first sync reads every index"
    );
    for id in &ids {
        let h = headers.join(id.to_string()).join(INDEX_HEADER_FILENAME);
        let size = std::fs::metadata(&h).expect("header on disk").len();
        assert!(size > 0 && size < 1 << 20, "{}: {size} bytes", h.display());
    }
    assert!(first.cached_index_bytes() > 0);
    assert_eq!(all_series(first).await, expected(0..BLOCKS));
    counted.take();

    // A restarted store with a cache too small to keep any block open.
    let second = catalog(counted.clone(), &headers, 1);
    second.sync().await.expect("sync");
    assert_eq!(counted.take(), 0, "opening from headers reads no index");
    assert_eq!(second.snapshot().len(), BLOCKS as usize);
    assert!(
        second.cached_index_bytes() <= 1,
        "{}",
        second.cached_index_bytes()
    );
    // Every query reopens the blocks from their headers and answers the same.
    assert_eq!(all_series(second.clone()).await, expected(0..BLOCKS));
    assert_eq!(all_series(second.clone()).await, expected(0..BLOCKS));

    // A block gone from the bucket loses its header at the next sync.
    delete_block(counted.as_ref(), ids[0])
        .await
        .expect("delete");
    second.sync().await.expect("sync");
    assert!(!headers.join(ids[0].to_string()).exists());
    assert!(headers.join(ids[1].to_string()).exists());
    assert_eq!(all_series(second).await, expected(1..BLOCKS));
}
