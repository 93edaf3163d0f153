//! Start-up over many blocks: the store is ready once the block list is read, a request over a
//! block still opening waits for it instead of answering without it, and after opening many
//! blocks concurrently over S3 answers exactly what was written, with one request for each small
//! index; with a fresh bucket index a later sync is one request.

use super::client::StoreEndpoint;
use super::{Catalog, StoreService};
use async_trait::async_trait;
use promql::SeriesData;
use prost::bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storage::block::meta::ThanosMeta;
use storage::block::{write_block, BlockWriterOptions};
use storage::bucket::blocks::upload_block;
use storage::bucket::fault::FaultBucket;
use storage::bucket::{
    open_from_flags, Bucket, BucketError, BucketMetrics, BucketOptions, ObjectInfo,
};
use storage::compact::index::{write_index, BucketIndex};
use storage::labels::Labels;
use storage::matcher::Matcher;
use tokio::sync::watch;

const BLOCK_MS: i64 = 2 * 3600 * 1000;
const SERIES: usize = 3;

/// The samples of block `b`: `SERIES` series, one sample a minute over the block's 2 h.
fn block_data(b: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    (0..SERIES)
        .map(|i| {
            let labels =
                Labels::from_pairs([("__name__", "up"), ("instance", &*format!("host-{i}"))]);
            let samples = (0..120)
                .map(|k| {
                    let t = b * BLOCK_MS + k * 60_000;
                    (t, (b * 1000 + k) as f64 + i as f64 / 10.0)
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

/// What the store must answer for blocks `blocks` over their whole range: one series per
/// instance with every sample of those blocks, external label `cluster="a"` added.
fn expected(blocks: Range<i64>) -> Vec<SeriesData> {
    let cluster = Labels::from_pairs([("cluster", "a")]);
    let mut by: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for b in blocks {
        for (l, s) in block_data(b) {
            by.entry(l.merged(&cluster)).or_default().extend(s);
        }
    }
    by.into_iter()
        .map(|(labels, samples)| SeriesData { labels, samples })
        .collect()
}

/// Writes `count` consecutive 2 h blocks under `dir`; returns their directories, oldest first.
fn write_blocks(dir: &Path, count: i64) -> Vec<PathBuf> {
    (0..count)
        .map(|b| {
            let thanos = ThanosMeta {
                version: 1,
                labels: BTreeMap::from([("cluster".to_string(), "a".to_string())]),
                source: "test".into(),
                ..Default::default()
            };
            write_block(
                dir,
                block_data(b),
                Some(thanos),
                BlockWriterOptions::default(),
            )
            .expect("write block")
            .0
        })
        .collect()
}

/// Serves `catalog` on a loopback port; returns the address.
async fn serve(catalog: Arc<Catalog>) -> String {
    let svc = StoreService::new(catalog, super::DEFAULT_FRAME_BYTES);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.store_server())
            .add_service(svc.info_server())
            .serve_with_incoming(crate::node::grpc::incoming(listener)),
    );
    addr
}

/// Waits up to 60 s for `cond`, failing with `what` and the last state seen.
async fn wait_for(what: &str, mut cond: impl FnMut() -> Result<(), String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match cond() {
            Ok(()) => return,
            Err(seen) if tokio::time::Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A bucket whose reads of one block's files (not its meta.json or marks) wait until released, so a
/// test can hold that block in the middle of opening. Reads never take the local-file
/// shortcut, so every read passes here.
#[derive(Debug)]
struct HeldBlock {
    inner: Arc<dyn Bucket>,
    prefix: String,
    release: watch::Receiver<bool>,
}

impl HeldBlock {
    async fn gate(&self, path: &str) {
        if path.starts_with(&self.prefix) && !path.ends_with(".json") {
            let mut rx = self.release.clone();
            let _ = rx.wait_for(|released| *released).await;
        }
    }
}

#[async_trait]
impl Bucket for HeldBlock {
    fn describe(&self) -> String {
        format!("held({})", self.inner.describe())
    }
    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        self.gate(path).await;
        self.inner.get(path).await
    }
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        self.gate(path).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_is_ready_before_blocks_open_and_requests_wait_for_a_block_still_opening() {
    const BLOCKS: i64 = 40;
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket_dir = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let dirs = write_blocks(&bucket_dir, BLOCKS);
    let held = dirs[0]
        .file_name()
        .expect("block dir name")
        .to_string_lossy()
        .into_owned();

    let registry = prometheus::Registry::new();
    let metrics = BucketMetrics::register(&registry).expect("metrics");
    let fs = open_from_flags(None, None, tmp.path(), &BucketOptions::default(), &metrics)
        .expect("bucket");
    let (release, rx) = watch::channel(false);
    let bucket = Arc::new(HeldBlock {
        inner: fs,
        prefix: format!("{held}/"),
        release: rx,
    });
    let catalog = Arc::new(Catalog::new(bucket, &registry).expect("catalog"));
    let addr = serve(catalog.clone()).await;
    let sync = tokio::spawn({
        let c = catalog.clone();
        async move { c.sync().await }
    });

    wait_for("every block but the held one to open", || {
        let (served, unopened) = (catalog.snapshot().len(), catalog.unopened());
        if catalog.is_ready() && served == BLOCKS as usize && unopened == 1 {
            Ok(())
        } else {
            Err(format!(
                "ready {}, {served} served, {unopened} not opened",
                catalog.is_ready()
            ))
        }
    })
    .await;
    let store = StoreEndpoint::new(&addr).expect("endpoint");
    let up = [Matcher::equal("__name__", "up")];

    // Info covers the held block, so a querier does not prune the store for its range.
    let info = store.info().await.expect("info while opening");
    assert_eq!(
        (info.min_time, info.max_time),
        (0, (BLOCKS - 1) * BLOCK_MS + 119 * 60_000 + 1)
    );
    assert_eq!(
        info.label_sets,
        vec![Labels::from_pairs([("cluster", "a")])]
    );

    // The open blocks' range answers in full.
    let recent = store
        .series(&up, BLOCK_MS, i64::MAX, false)
        .await
        .expect("series of open blocks");
    assert_eq!(recent.series, expected(1..BLOCKS));

    // A range that meets the held block waits for it rather than answering without it.
    let mut waiting = Box::pin(catalog.overlapping(0, i64::MAX));
    assert!(
        futures::poll!(&mut waiting).is_pending(),
        "blocks of a range with a block still opening were handed out"
    );
    let during = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .series(&[Matcher::equal("__name__", "up")], 0, i64::MAX, false)
                .await
        }
    });

    release.send(true).expect("release");
    assert_eq!(waiting.await.len(), BLOCKS as usize);
    let answered = tokio::time::timeout(Duration::from_secs(60), during)
        .await
        .expect("request finishes once released")
        .expect("request task")
        .expect("series over the held block");
    assert_eq!(answered.series, expected(0..BLOCKS));
    tokio::time::timeout(Duration::from_secs(60), sync)
        .await
        .expect("sync finishes once released")
        .expect("sync task")
        .expect("sync");
    assert_eq!(catalog.unopened(), 0);
    let all = store
        .series(&up, i64::MIN, i64::MAX, false)
        .await
        .expect("series of every block");
    assert_eq!(all.series, expected(0..BLOCKS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_over_s3_opens_many_blocks_concurrently_with_one_read_per_small_index() {
    const BLOCKS: i64 = 64;
    let s3 = storage::testing::s3::S3Server::start()
        .await
        .expect("s3 server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = prometheus::Registry::new();
    let metrics = BucketMetrics::register(&registry).expect("metrics");
    let yaml = s3.yaml(storage::testing::s3::SECRET_KEY, "");
    let s3_bucket = open_from_flags(
        None,
        Some(&yaml),
        tmp.path(),
        &BucketOptions::default(),
        &metrics,
    )
    .expect("s3 bucket");
    let local = tmp.path().join("blocks");
    std::fs::create_dir_all(&local).expect("local dir");
    for dir in write_blocks(&local, BLOCKS) {
        let meta = storage::block::BlockMeta::read_from_dir(&dir).expect("meta");
        upload_block(s3_bucket.as_ref(), &dir, &meta, None)
            .await
            .expect("upload");
    }

    let counted = Arc::new(FaultBucket::new(s3_bucket.clone()));
    let catalog = Arc::new(Catalog::new(counted.clone(), &registry).expect("catalog"));
    catalog.sync().await.expect("sync");
    assert_eq!(catalog.snapshot().len(), BLOCKS as usize);
    // Per block: meta.json (get; marks only where the listing shows one, and here there are
    // none); the whole small index and the chunk segment's header (get_range). Header, TOC,
    // symbols and postings table used to be four reads. Plus one get: the bucket index, absent.
    assert_eq!(counted.calls("get"), BLOCKS as u64 + 1);
    assert_eq!(
        counted.calls("list"),
        1,
        "one listing finds blocks, metas and marks"
    );
    assert_eq!(counted.calls("get_range"), 2 * BLOCKS as u64);

    let addr = serve(catalog).await;
    let store = StoreEndpoint::new(&addr).expect("endpoint");
    let all = store
        .series(
            &[Matcher::equal("__name__", "up")],
            i64::MIN,
            i64::MAX,
            false,
        )
        .await
        .expect("series");
    assert_eq!(all.series, expected(0..BLOCKS));
    // A sub-range of three blocks, read back by range reads after the index copy was dropped.
    let part = store
        .series(
            &[Matcher::equal("instance", "host-1")],
            10 * BLOCK_MS,
            13 * BLOCK_MS - 1,
            false,
        )
        .await
        .expect("series");
    let want: Vec<SeriesData> = expected(10..13)
        .into_iter()
        .filter(|s| s.labels.get("instance") == Some("host-1"))
        .collect();
    assert_eq!(part.series, want);

    // With a fresh bucket index: a sync is one request; blocks read their meta.json when they
    // open, and the answers stay the same.
    let fetched = storage::bucket::fetcher::MetaFetcher::new(s3_bucket.clone())
        .fetch()
        .await
        .expect("fetch");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let index = BucketIndex::build(
        fetched.metas.values(),
        &fetched.deletion_marks,
        &BTreeMap::new(),
        now_s,
    );
    write_index(s3_bucket.as_ref(), &index)
        .await
        .expect("index");
    let counted = Arc::new(FaultBucket::new(s3_bucket));
    let registry = prometheus::Registry::new();
    let catalog = Arc::new(Catalog::new(counted.clone(), &registry).expect("catalog"));
    catalog.sync().await.expect("sync over the index");
    assert_eq!(catalog.snapshot().len(), BLOCKS as usize);
    assert_eq!(counted.calls("list"), 0, "the index replaces the listing");
    assert_eq!(
        counted.calls("get"),
        1 + BLOCKS as u64,
        "index, then each meta.json"
    );
    let requests = |c: &FaultBucket| -> u64 {
        ["get", "get_range", "list", "list_dir", "head", "exists"]
            .iter()
            .map(|op| c.calls(op))
            .sum()
    };
    let before = requests(&counted);
    catalog.sync().await.expect("later sync");
    let per_sync = requests(&counted) - before;
    assert!(per_sync <= 3, "{per_sync} bucket requests for a sync");
    assert_eq!(per_sync, 1);
    let addr = serve(catalog).await;
    let store = StoreEndpoint::new(&addr).expect("endpoint");
    let all = store
        .series(
            &[Matcher::equal("__name__", "up")],
            i64::MIN,
            i64::MAX,
            false,
        )
        .await
        .expect("series");
    assert_eq!(all.series, expected(0..BLOCKS));
}
