//! `strata store` processes with Thanos' store-gateway flags: two stores sharded with
//! `--selector.relabel-config` hashmod over `__block_id` serve disjoint halves whose union is
//! what one unsharded store serves; `--min-time`/`--max-time` leave out blocks outside the
//! window and clamp the range Info advertises. A store reads the bucket index when it is fresh
//! (no listing, one request per sync) and serves what a listing serves, and lists again when
//! the index is corrupt; a wrong S3 secret stops the store with one line naming the credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use proto::thanos::info::info_client::InfoClient;
use proto::thanos::store_client::StoreClient;
use proto::thanos::{label_matcher, series_response, LabelMatcher, SeriesRequest};
use query_common::{make_blocks, request, START};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use storage::testing::prometheus::free_port;
use storage::testing::promtool_available;
use ulid::Ulid;

/// Copies of each promtool block, as separate blocks with fixed ULIDs (so the hashmod split
/// is the same on every run) and external label `copy`.
const COPIES: usize = 4;

/// A bucket of `COPIES` × 3 blocks; returns its directory.
fn bucket(work: &Path) -> PathBuf {
    let blocks = make_blocks(work);
    assert_eq!(blocks.len(), 3, "6 h of data make three 2 h blocks");
    let bucket = work.join("bucket");
    let mut n = 0u64;
    for copy in 0..COPIES {
        for b in &blocks {
            n += 1;
            let id = Ulid::from_parts(START as u64 * 1000 + n, u128::from(n));
            let dir = bucket.join(id.to_string());
            copy_dir(b, &dir);
            let meta_path = dir.join("meta.json");
            let mut meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
            meta["ulid"] = id.to_string().into();
            meta["thanos"] = serde_json::json!({
                "version": 1,
                "labels": {"copy": copy.to_string()},
                "downsample": {"resolution": 0},
                "source": "test",
            });
            std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
        }
    }
    bucket
}

/// A FILESYSTEM bucket config for `dir`.
fn fs_config(dir: &Path) -> String {
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A `strata store` process, killed when dropped.
struct Store {
    child: Option<Child>,
    grpc: String,
    http: u16,
    log: PathBuf,
}

impl Store {
    fn start(work: &Path, name: &str, bucket: &Path, extra: &[String]) -> Store {
        let mut s = Store::spawn(work, name, &fs_config(bucket), extra);
        s.wait_serving();
        s
    }

    /// Starts `strata store` over the bucket config `objstore` without waiting.
    fn spawn(work: &Path, name: &str, objstore: &str, extra: &[String]) -> Store {
        let http = free_port().expect("port");
        let grpc = format!("127.0.0.1:{}", free_port().expect("port"));
        let log = work.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("store")
            .arg(format!("--data-dir={}", work.join(name).display()))
            .arg(format!("--grpc-address={grpc}"))
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!("--objstore.config={objstore}"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata store");
        Store {
            child: Some(child),
            grpc,
            http,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until every block of the first sync is open.
    fn wait_serving(&mut self) {
        let start = Instant::now();
        while !self.log().contains("serving StoreAPI") {
            if let Some(Ok(Some(s))) = self.child.as_mut().map(Child::try_wait) {
                panic!("store exited with {s}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "store not serving within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The sum of the samples of `name` on /metrics whose labels contain `labels`.
    fn sum(&self, name: &str, labels: &str) -> f64 {
        let r = request(self.http, "GET", "/metrics", None).expect("GET /metrics");
        r.body
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits up to 60 s until `cond` holds of the store's /metrics.
    fn wait_metrics(&self, what: &str, cond: impl Fn(&Store) -> bool) {
        let start = Instant::now();
        while !cond(self) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The value of gauge `name` on /metrics.
    fn gauge(&self, name: &str) -> f64 {
        let r = request(self.http, "GET", "/metrics", None).expect("GET /metrics");
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", r.body))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== store {} =====\n{}", self.grpc, self.log());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every (series, chunk time range) a store serves for all series over all time.
async fn served(store: &Store) -> BTreeSet<(String, i64, i64)> {
    let mut client = StoreClient::connect(format!("http://{}", store.grpc))
        .await
        .expect("connect");
    let req = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![LabelMatcher {
            r#type: label_matcher::Type::Re as i32,
            name: "__name__".into(),
            value: ".+".into(),
        }],
        ..Default::default()
    };
    let mut stream = client.series(req).await.expect("Series").into_inner();
    let mut out = BTreeSet::new();
    while let Some(frame) = stream.message().await.expect("frame") {
        let Some(series_response::Result::Series(s)) = frame.result else {
            panic!("unexpected frame {frame:?}");
        };
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect();
        for c in s.chunks {
            assert!(
                out.insert((labels.join(","), c.min_time, c.max_time)),
                "chunk served twice"
            );
        }
    }
    out
}

fn shard_flag(shard: u32) -> String {
    format!(
        "--selector.relabel-config=- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: 2\n- action: keep\n  source_labels: [shard]\n  regex: {shard}\n"
    )
}

fn rfc3339(unix_s: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix_s}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashmod_shards_partition_the_bucket_and_the_time_window_clamps_it() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = bucket(tmp.path());
    let total = (COPIES * 3) as f64;
    let (whole, zero, one) = tokio::task::block_in_place(|| {
        (
            Store::start(tmp.path(), "whole", &bucket, &[]),
            Store::start(tmp.path(), "shard-0", &bucket, &[shard_flag(0)]),
            Store::start(tmp.path(), "shard-1", &bucket, &[shard_flag(1)]),
        )
    });
    let (n_whole, n0, n1) = (
        whole.gauge("strata_store_blocks_loaded"),
        zero.gauge("strata_store_blocks_loaded"),
        one.gauge("strata_store_blocks_loaded"),
    );
    assert_eq!(n_whole, total);
    assert_eq!(n0 + n1, total, "shards load {n0} and {n1} blocks");
    assert!(n0 > 0.0 && n1 > 0.0, "both shards have blocks: {n0}, {n1}");

    let (all, a, b) = (
        served(&whole).await,
        served(&zero).await,
        served(&one).await,
    );
    assert!(!all.is_empty());
    assert!(
        a.is_disjoint(&b),
        "shards overlap: {:?}",
        a.intersection(&b).next()
    );
    let union: BTreeSet<_> = a.union(&b).cloned().collect();
    assert_eq!(union.len(), all.len());
    assert!(union == all, "the shards' union differs from the whole");

    // A window covering only the middle blocks' second half and the last blocks' first half.
    let (min_s, max_s) = (START + 3 * 3600, START + 5 * 3600);
    let window = tokio::task::block_in_place(|| {
        Store::start(
            tmp.path(),
            "window",
            &bucket,
            &[
                format!("--min-time={}", rfc3339(min_s)),
                format!("--max-time={}", rfc3339(max_s)),
            ],
        )
    });
    assert_eq!(
        window.gauge("strata_store_blocks_loaded"),
        (COPIES * 2) as f64,
        "the first 2 h blocks are outside the window"
    );
    let info = InfoClient::connect(format!("http://{}", window.grpc))
        .await
        .expect("connect")
        .info(proto::thanos::info::InfoRequest {})
        .await
        .expect("Info")
        .into_inner()
        .store
        .expect("store info");
    assert_eq!((info.min_time, info.max_time), (min_s * 1000, max_s * 1000));
    let chunks = served(&window).await;
    assert!(!chunks.is_empty());
    for (s, lo, hi) in &chunks {
        assert!(
            *hi >= min_s * 1000 && *lo <= max_s * 1000,
            "{s}: chunk [{lo}, {hi}] outside the window"
        );
    }
    let inside = all
        .iter()
        .filter(|(_, lo, hi)| *hi >= min_s * 1000 && *lo <= max_s * 1000)
        .count();
    assert_eq!(chunks.len(), inside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_bucket_index_replaces_the_listing_and_a_corrupt_one_falls_back() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = bucket(tmp.path());
    let listed = tokio::task::block_in_place(|| Store::start(tmp.path(), "listed", &bucket, &[]));
    assert_eq!(
        listed.sum(
            "strata_store_bucket_index_fallbacks_total",
            "reason=\"missing\""
        ),
        1.0
    );
    let want = served(&listed).await;
    drop(listed);

    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tools", "bucket", "index"])
        .arg(format!("--objstore.config={}", fs_config(&bucket)))
        .output()
        .expect("strata tools bucket index");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} blocks", COPIES * 3)),
        "{stdout}"
    );

    let sync = ["--sync-block-duration=1s".to_string()];
    let indexed =
        tokio::task::block_in_place(|| Store::start(tmp.path(), "indexed", &bucket, &sync));
    assert_eq!(
        indexed.sum("strata_store_bucket_index_fallbacks_total", ""),
        0.0
    );
    let syncs = |s: &Store| s.sum("strata_store_block_syncs_total", "result=\"success\"");
    let ops = |s: &Store, op: &str| {
        s.sum(
            "strata_objstore_bucket_operations_total",
            &format!("operation=\"{op}\""),
        )
    };
    // Later syncs: one GET each (the index), no listing at all.
    // (Opening a block whose meta.json lists no files lists its directory once; syncs list
    // nothing.)
    let (syncs_before, gets_before, iters_before) =
        (syncs(&indexed), ops(&indexed, "get"), ops(&indexed, "iter"));
    indexed.wait_metrics("two more syncs", |s| syncs(s) >= syncs_before + 2.0);
    let (syncs_after, gets_after) = (syncs(&indexed), ops(&indexed, "get"));
    assert_eq!(
        ops(&indexed, "iter"),
        iters_before,
        "a store with a fresh index lists nothing when it syncs"
    );
    assert!(
        gets_after - gets_before <= 3.0 * (syncs_after - syncs_before) + 3.0,
        "{} GETs over {} syncs",
        gets_after - gets_before,
        syncs_after - syncs_before
    );
    assert!(
        want == served(&indexed).await,
        "the index serves what the listing served"
    );

    std::fs::write(bucket.join("bucket-index.json.gz"), b"not gzip").expect("corrupt the index");
    indexed.wait_metrics("a fallback to listing", |s| {
        s.sum(
            "strata_store_bucket_index_fallbacks_total",
            "reason=\"corrupt\"",
        ) >= 1.0
    });
    assert!(ops(&indexed, "iter") > iters_before);
    assert!(
        want == served(&indexed).await,
        "the listing serves the same after the fallback"
    );
    let log = indexed.log();
    assert_eq!(
        log.matches("bucket index not usable").count(),
        1,
        "the fallback is logged once, not every sync:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_s3_secret_stops_the_store_with_one_line_naming_the_credentials() {
    let s3 = storage::testing::s3::S3Server::start()
        .await
        .expect("s3s-fs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "type: S3\nconfig:\n  bucket: {}\n  endpoint: 127.0.0.1:{}\n  access_key: {}\n  secret_key: not-the-secret\n  insecure: true\n",
        storage::testing::s3::BUCKET,
        s3.port,
        storage::testing::s3::ACCESS_KEY
    );
    let mut store = Store::spawn(tmp.path(), "wrong-secret", &config, &[]);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = store
            .child
            .as_mut()
            .and_then(|c| c.try_wait().expect("wait"))
        {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the store kept running with a wrong secret:\n{}",
            store.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    store.child = None;
    let log = store.log();
    assert!(!status.success(), "exit {status}:\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{log}");
    assert!(
        errors[0].contains("refused the credentials")
            && errors[0].contains(storage::testing::s3::ACCESS_KEY)
            && errors[0].contains("secret_key"),
        "{}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_query_over_s3_is_answered_from_the_index_cache_and_the_caching_bucket() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let s3 = storage::testing::s3::S3Server::start()
        .await
        .expect("s3s-fs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let blocks = bucket(tmp.path());
    copy_dir(&blocks, &s3.bucket_dir());
    let caching = "--store.caching-bucket.config=type: IN-MEMORY\nconfig:\n  max_size: 64MB\n  max_item_size: 16MB\nchunk_subrange_size: 16000\nmax_chunks_get_range_requests: 3\n";
    let store = tokio::task::block_in_place(|| {
        let mut s = Store::spawn(
            tmp.path(),
            "s3-store",
            &s3.yaml(storage::testing::s3::SECRET_KEY, ""),
            &[caching.to_string()],
        );
        s.wait_serving();
        s
    });
    let ops = |s: &Store| s.sum("strata_objstore_bucket_operations_total", "");
    let first = served(&store).await;
    assert!(!first.is_empty());
    let index_hits = |s: &Store| s.sum("thanos_store_index_cache_hits_total", "");
    let chunk_hits = |s: &Store| {
        s.sum(
            "thanos_store_bucket_cache_operation_hits_total",
            "operation=\"get_range\"",
        )
    };
    let (ops_before, index_hits_before, chunk_hits_before) =
        (ops(&store), index_hits(&store), chunk_hits(&store));
    assert!(
        store.sum("thanos_store_index_cache_items", "item_type=\"Series\"") > 0.0,
        "the first query filled the index cache"
    );

    let second = served(&store).await;
    assert!(second == first, "the cached answer differs from the first");
    assert_eq!(
        ops(&store),
        ops_before,
        "the second identical query sent requests to the bucket"
    );
    assert!(index_hits(&store) > index_hits_before);
    assert!(chunk_hits(&store) > chunk_hits_before);

    // The control: without either cache the same second query does read the bucket.
    let uncached = tokio::task::block_in_place(|| {
        let mut s = Store::spawn(
            tmp.path(),
            "s3-uncached",
            &s3.yaml(storage::testing::s3::SECRET_KEY, ""),
            &["--index-cache-size=0".to_string()],
        );
        s.wait_serving();
        s
    });
    assert!(served(&uncached).await == first);
    let before = ops(&uncached);
    assert!(served(&uncached).await == first);
    assert!(
        ops(&uncached) > before,
        "an uncached store reads the bucket again"
    );
}

#[test]
fn a_caching_bucket_config_of_an_unsupported_type_stops_the_store_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bucket");
    std::fs::create_dir_all(&dir).unwrap();
    for (config, want) in [
        (
            "type: MEMCACHED\nconfig:\n  addresses: [127.0.0.1:11211]\n",
            "\"MEMCACHED\"",
        ),
        (
            "type: IN-MEMORY\nconfig:\n  max_size: lots\n",
            "config.max_size",
        ),
    ] {
        let mut s = Store::spawn(
            tmp.path(),
            "refused",
            &fs_config(&dir),
            &[format!("--store.caching-bucket.config={config}")],
        );
        let start = Instant::now();
        let status = loop {
            if let Some(Ok(Some(status))) = s.child.as_mut().map(Child::try_wait) {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "store still running with a bad caching bucket config:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success());
        assert!(s.log().contains(want), "{want} not named:\n{}", s.log());
    }
}
