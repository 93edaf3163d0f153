//! Shared by the `storeapi*` tests: a FILESYSTEM bucket of promtool-made blocks, store nodes
//! (`strata node --role store`) over it, and comparison of HTTP answers between queriers.
#![allow(dead_code)]

use crate::query_common::{copy_blocks, enc, make_blocks, request, Reply, StrataQuery, START};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use storage::testing::prometheus::free_port;

/// A bucket directory holding the data set's three blocks, and the block directories.
pub fn bucket(work: &Path) -> (PathBuf, Vec<PathBuf>) {
    let blocks = make_blocks(work);
    assert_eq!(blocks.len(), 3, "6 h of data make three 2 h blocks");
    let bucket = work.join("bucket");
    copy_blocks(&blocks, &bucket);
    (bucket, blocks)
}

/// `--objstore.config` for a FILESYSTEM bucket at `dir`.
pub fn bucket_flag(dir: &Path) -> String {
    format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    )
}

/// A `strata node --role store` on its own one-node cluster, killed when dropped.
pub struct StoreNode {
    child: Option<Child>,
    /// gRPC address (StoreAPI).
    pub grpc: String,
    log: PathBuf,
}

impl StoreNode {
    /// Starts a store over `bucket` with its data directory under `work`.
    pub fn start(work: &Path, name: &str, bucket: &Path) -> StoreNode {
        let grpc = format!("127.0.0.1:{}", free_port().expect("port"));
        let http = format!("127.0.0.1:{}", free_port().expect("port"));
        let log = work.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "node",
                "--role",
                "store",
                "--cluster.insecure",
                "--cluster.bootstrap",
            ])
            .arg(format!("--data-dir={}", work.join(name).display()))
            .arg(format!("--grpc-address={grpc}"))
            .arg(format!("--http-address={http}"))
            .arg(bucket_flag(bucket))
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata node");
        StoreNode {
            child: Some(child),
            grpc,
            log,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the store says its blocks are loaded.
    pub fn wait_ready(&mut self) {
        let start = Instant::now();
        while !self.log().contains("serving StoreAPI") {
            if let Some(Ok(Some(s))) = self.child.as_mut().map(Child::try_wait) {
                panic!("store exited with {s}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "store not ready within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for StoreNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== store {} =====\n{}", self.grpc, self.log());
        }
        self.kill();
    }
}

/// An instant query's path.
pub fn instant(expr: &str, t: i64) -> String {
    format!("/api/v1/query?query={}&time={t}", enc(expr))
}

/// A range query's path.
pub fn range(expr: &str, start: i64, end: i64, step: i64) -> String {
    format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
        enc(expr)
    )
}

/// Instant and range queries, and metadata calls, over the data set.
pub fn queries() -> Vec<String> {
    let exprs = [
        "http_requests_total",
        "rate(http_requests_total[5m])",
        "sum by (job, code) (increase(http_requests_total[1h]))",
        "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[10m])))",
        "node_memory_free_bytes / 1e9",
        "topk(2, temperature_celsius)",
        "sparse_metric",
        "extreme_values",
        "{__name__=~\"http_.*\", code!=\"200\", instance=~\"a.*|c.*\"}",
        "count by (__name__) ({__name__=~\".+\"})",
        "absent(no_such_metric)",
    ];
    let end = START + 6 * 3600;
    let mut out = Vec::new();
    for e in exprs {
        for t in [
            START + 60,
            START + 7200,
            START + 3 * 3600 + 30,
            end - 1,
            end + 3600,
        ] {
            out.push(instant(e, t));
        }
    }
    for e in [
        "rate(http_requests_total[5m])",
        "sum(node_memory_free_bytes)",
        "sparse_metric",
        "max_over_time(temperature_celsius[1h])",
        "build_info",
    ] {
        out.push(range(e, START, end, 300));
        out.push(range(e, START + 7000, START + 7400, 15));
    }
    out.push("/api/v1/labels".into());
    out.push(format!("/api/v1/labels?match[]={}", enc("{job=\"api\"}")));
    out.push("/api/v1/label/job/values".into());
    out.push(format!(
        "/api/v1/label/instance/values?match[]={}",
        enc("node_memory_free_bytes")
    ));
    out.push(format!(
        "/api/v1/series?match[]={}&start={START}&end={end}",
        enc("{__name__=~\"request_duration.*\"}")
    ));
    out
}

/// GET `path` on `port`, with the reply's JSON.
pub fn ask(port: u16, path: &str) -> (Reply, serde_json::Value) {
    let r = request(port, "GET", path, None).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let j = r.json();
    (r, j)
}

/// Differences between `want`'s and `got`'s answers to `paths` (empty when they agree).
pub fn differences(want: &StrataQuery, got_port: u16, paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        let (_, a) = ask(want.port, p);
        let (_, b) = ask(got_port, p);
        if a != b {
            out.push(format!("{p}:\n  embedded: {a}\n  storeapi: {b}"));
        }
    }
    out
}

/// An embedded querier over `bucket`, ready.
pub fn embedded(work: &Path, bucket: &Path) -> StrataQuery {
    let mut q = StrataQuery::spawn(work, &[&bucket_flag(bucket)]);
    q.wait_until("ready", Duration::from_secs(60), |q| {
        request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    q
}

/// Polls until `port` answers every path like `want`; panics with the differences after 60 s.
pub fn wait_for_same_answers(want: &StrataQuery, got_port: u16, paths: &[String]) {
    let start = Instant::now();
    loop {
        let diff = differences(want, got_port, paths);
        if diff.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {} answers differ after 60s; first:\n{}",
            diff.len(),
            paths.len(),
            diff[0]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
