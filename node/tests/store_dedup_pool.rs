//! A bucket holding blocks A and B and a compacted block C made of them, without deletion
//! marks (a compactor crashed before marking, or readers are inside
//! `--ignore-deletion-marks-delay`): `strata store` serves C and leaves A and B out as
//! duplicates, so `count_over_time` through `strata query --endpoint` counts every raw sample
//! once, as the embedded querier over the same bucket does.
//!
//! `--chunk-pool-size`: a store whose pool is smaller than a request's chunks refuses it with
//! `ResourceExhausted` naming the flag, and still answers a request that fits; a store with the
//! default pool answers the large request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use proto::thanos::store_client::StoreClient;
use proto::thanos::{label_matcher, series_response, LabelMatcher, SeriesRequest};
use query_common::{dataset, enc, make_blocks, request, StrataQuery, HOURS, START};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::block::Block;
use storage::compact::merge::{merge_blocks, OutputSpec};
use storage::compact::vertical::MergeMode;
use storage::testing::prometheus::free_port;
use storage::testing::promtool_available;

/// A `strata store` process over a FILESYSTEM bucket, killed when dropped.
struct Store {
    child: Child,
    grpc: String,
    http: u16,
    log: PathBuf,
}

impl Store {
    fn start(work: &Path, name: &str, bucket: &Path, extra: &[&str]) -> Store {
        let http = free_port().expect("port");
        let grpc = format!("127.0.0.1:{}", free_port().expect("port"));
        let log = work.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("store")
            .arg(format!("--data-dir={}", work.join(name).display()))
            .arg(format!("--grpc-address={grpc}"))
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!(
                "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
                bucket.display()
            ))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata store");
        let mut s = Store {
            child,
            grpc,
            http,
            log,
        };
        let start = Instant::now();
        while !s.log().contains("serving StoreAPI") {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("store exited with {status}:\n{}", s.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "store not serving within 60s:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The sum of the samples of `name` on /metrics whose line contains `labels`.
    fn metric(&self, name: &str, labels: &str) -> f64 {
        let r = request(self.http, "GET", "/metrics", None).expect("GET /metrics");
        r.body
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== store =====\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bucket: promtool's three 2 h blocks and a merge of the first two (sources both).
async fn bucket_with_compacted_block(work: &Path) -> PathBuf {
    let blocks = make_blocks(work);
    assert_eq!(blocks.len(), 3, "6 h of data make three 2 h blocks");
    let bucket = work.join("bucket");
    query_common::copy_blocks(&blocks, &bucket);
    let mut opened = Vec::new();
    for dir in &blocks[..2] {
        opened.push(Arc::new(Block::open_dir(dir).await.expect("open block")));
    }
    let spec = OutputSpec {
        labels: Default::default(),
        resolution: 0,
        mode: MergeMode::Union,
    };
    let merged = merge_blocks(&opened, &bucket, &spec)
        .await
        .expect("merge")
        .expect("the blocks hold samples");
    let mut sources: Vec<_> = opened.iter().map(|b| b.meta().ulid).collect();
    sources.sort();
    assert_eq!(merged.meta.compaction.sources, sources);
    assert!(merged.dir.starts_with(&bucket), "{}", merged.dir.display());
    bucket
}

/// `sum(count_over_time(http_requests_total[1d]))` over all data as the querier on `port` answers it, once it
/// answers with a sample (the querier may not have reached its store yet).
fn count_all(q: &mut StrataQuery) -> f64 {
    let end = START + HOURS * 3600;
    let path = format!(
        "/api/v1/query?query={}&time={end}",
        enc("sum(count_over_time(http_requests_total[1d]))")
    );
    q.wait_until("a count", Duration::from_secs(60), |q| {
        request(q.port, "GET", &path, None)
            .is_ok_and(|r| r.status == 200 && r.json()["data"]["result"][0]["value"][1].is_string())
    });
    let r = request(q.port, "GET", &path, None).expect("query");
    let v = &r.json()["data"]["result"][0]["value"][1];
    v.as_str().expect("a value").parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_block_and_its_unmarked_sources_are_counted_once() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = bucket_with_compacted_block(tmp.path()).await;
    let raw: usize = dataset()
        .iter()
        .filter(|(l, _)| l.get("__name__") == Some("http_requests_total"))
        .map(|(_, s)| s.len())
        .sum();
    assert!(raw > 1000, "{raw} samples");

    let store = tokio::task::block_in_place(|| Store::start(tmp.path(), "store", &bucket, &[]));
    assert_eq!(store.metric("strata_store_blocks_loaded", ""), 2.0);
    assert_eq!(
        store.metric("strata_store_blocks_excluded", "reason=\"duplicate\""),
        2.0
    );
    // No series gets a block's chunks twice: the store sends C's, not A's and B's as well.
    let (n, _) = series(&store, None, i64::MIN, i64::MAX)
        .await
        .expect("Series");
    assert!(n > 20, "{n} series");
    let endpoint = format!("--endpoint={}", store.grpc);
    let data = format!("--data-dir={}", tmp.path().join("query").display());
    let through_store = tokio::task::block_in_place(|| {
        let mut q = StrataQuery::spawn(tmp.path(), &[&endpoint, &data]);
        count_all(&mut q)
    });
    assert_eq!(through_store, raw as f64, "through strata store");

    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let data = format!("--data-dir={}", tmp.path().join("embedded").display());
    let embedded = tokio::task::block_in_place(|| {
        let mut q = StrataQuery::spawn(tmp.path(), &[&objstore, &data]);
        count_all(&mut q)
    });
    assert_eq!(embedded, raw as f64, "embedded querier");
}

/// Series over `[mint, maxt]` of the series `name` selects (every series when `None`): the
/// number of series and chunks, or the error status.
async fn series(
    store: &Store,
    name: Option<&str>,
    mint: i64,
    maxt: i64,
) -> Result<(usize, usize), tonic::Status> {
    let mut client = StoreClient::connect(format!("http://{}", store.grpc))
        .await
        .expect("connect");
    let (kind, value) = match name {
        Some(n) => (label_matcher::Type::Eq, n),
        None => (label_matcher::Type::Re, ".+"),
    };
    let req = SeriesRequest {
        min_time: mint,
        max_time: maxt,
        matchers: vec![LabelMatcher {
            r#type: kind as i32,
            name: "__name__".into(),
            value: value.into(),
        }],
        ..Default::default()
    };
    let mut stream = client.series(req).await?.into_inner();
    // Chunk time ranges by series (a series may span several frames).
    let mut by_series: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
    while let Some(frame) = stream.message().await? {
        if let Some(series_response::Result::Series(s)) = frame.result {
            let key: Vec<String> = s
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect();
            let ranges = by_series.entry(key.join(",")).or_default();
            ranges.extend(s.chunks.iter().map(|c| (c.min_time, c.max_time)));
        }
    }
    for (series, ranges) in &mut by_series {
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(
                w[0].1 < w[1].0,
                "{series}: chunks {w:?} overlap (a block served twice)"
            );
        }
    }
    let chunks = by_series.values().map(Vec::len).sum();
    Ok((by_series.len(), chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_pool_too_small_for_a_request_refuses_it_naming_the_flag() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = make_blocks(tmp.path());
    let bucket = tmp.path().join("bucket");
    query_common::copy_blocks(&blocks, &bucket);
    let (tiny, normal) = tokio::task::block_in_place(|| {
        (
            Store::start(tmp.path(), "tiny", &bucket, &["--chunk-pool-size=4KB"]),
            Store::start(tmp.path(), "normal", &bucket, &[]),
        )
    });
    let (all_min, all_max) = (START * 1000, (START + HOURS * 3600) * 1000);

    let (n, chunks) = series(&normal, None, all_min, all_max)
        .await
        .expect("the default pool answers");
    assert!(n > 20 && chunks > 100, "{n} series, {chunks} chunks");

    let e = series(&tiny, None, all_min, all_max)
        .await
        .expect_err("4KB cannot hold every chunk");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("--chunk-pool-size (4096 bytes)"),
        "{}",
        e.message()
    );

    // One series over two minutes is one chunk: it fits, and the pool was given back.
    let one = (START + 60) * 1000;
    for _ in 0..3 {
        let (n, chunks) = series(&tiny, Some("build_info"), one, one + 60_000)
            .await
            .expect("a request that fits");
        assert!(n >= 1 && chunks == n, "{n} series, {chunks} chunks");
    }
}
