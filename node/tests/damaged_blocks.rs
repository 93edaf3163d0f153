//! Damaged buckets as users meet them, with real `strata` processes: blocks that cannot be
//! read are skipped with a warning on every answer that needed them (embedded querier and
//! `strata node --role store` + `strata query --endpoint` alike) and a metric, while the healthy
//! blocks still answer; a partial upload stays invisible; the tools survive extreme meta.json
//! times; readers refuse a bucket directory that does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod strata_cli;
use strata_cli::strata;

mod query_common;
mod storeapi_common;

use query_common::{get, make_blocks, StrataQuery, START};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::block::BlockMeta;
use storage::testing::promtool_available;
use storeapi_common::{ask, bucket_flag, instant, range, StoreNode};
use ulid::Ulid;

macro_rules! need_promtool {
    () => {
        if !promtool_available() {
            eprintln!("SKIPPED: promtool not on PATH");
            return;
        }
    };
}

/// The bucket's blocks and what was done to them.
struct Damaged {
    bucket: PathBuf,
    /// Healthy: the first 2 h.
    healthy: Ulid,
    /// Index bytes overwritten: the middle 2 h.
    corrupt_index: Ulid,
    /// A chunk segment meta.json lists was deleted: the last 2 h.
    missing_chunk: Ulid,
    /// A copy of the healthy block whose meta.json is not JSON.
    garbage_meta: Ulid,
    /// A copy of the healthy block without meta.json (a partial upload).
    no_meta: Ulid,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// The data set's three blocks uploaded with `strata tools bucket upload` (so meta.json lists
/// their files, as a Thanos or Strata upload does), then damaged.
fn damaged_bucket(work: &Path) -> Damaged {
    let blocks = make_blocks(work);
    assert_eq!(blocks.len(), 3);
    let bucket = work.join("bucket");
    let flag = bucket_flag(&bucket);
    let path = format!("--path={}", work.join("blocks").display());
    let out = strata(&["tools", "bucket", "upload", &flag, &path]);
    assert!(out.status.success(), "upload");
    let mut metas: Vec<BlockMeta> = blocks
        .iter()
        .map(|b| BlockMeta::read_from_dir(b).expect("meta"))
        .collect();
    metas.sort_by_key(|m| m.min_time);
    let (healthy, corrupt_index, missing_chunk) = (metas[0].ulid, metas[1].ulid, metas[2].ulid);
    let dir = |id: Ulid| bucket.join(id.to_string());

    let index = dir(corrupt_index).join("index");
    let mut bytes = std::fs::read(&index).expect("index");
    bytes[..64].fill(0xff);
    std::fs::write(&index, bytes).expect("write index");
    std::fs::remove_file(dir(missing_chunk).join("chunks/000001")).expect("remove chunk");

    let garbage_meta = Ulid::new();
    copy_dir(&dir(healthy), &dir(garbage_meta));
    std::fs::write(dir(garbage_meta).join("meta.json"), "this is not JSON {").expect("garbage");
    let no_meta = Ulid::new();
    copy_dir(&dir(healthy), &dir(no_meta));
    std::fs::remove_file(dir(no_meta).join("meta.json")).expect("remove meta");
    Damaged {
        bucket,
        healthy,
        corrupt_index,
        missing_chunk,
        garbage_meta,
        no_meta,
    }
}

fn warnings(j: &serde_json::Value) -> Vec<String> {
    j["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn warned(ws: &[String], id: Ulid, reason: &str) -> bool {
    ws.iter()
        .any(|w| w.contains(&id.to_string()) && w.contains(reason))
}

/// What both queriers must answer over the damaged bucket on `port`.
fn check_answers(port: u16, d: &Damaged) {
    // The first 2 h come from the healthy block; only the block of unknown range is warned of.
    let (r, j) = ask(port, &instant("count(http_requests_total)", START + 3600));
    assert_eq!(r.status, 200, "{j}");
    assert_eq!(j["status"], "success", "{j}");
    assert_eq!(j["data"]["result"][0]["value"][1], "24", "{j}");
    let ws = warnings(&j);
    assert!(warned(&ws, d.garbage_meta, "corrupt_meta_json"), "{j}");
    assert!(!warned(&ws, d.corrupt_index, ""), "not needed: {j}");
    assert!(
        !ws.iter().any(|w| w.contains(&d.no_meta.to_string())),
        "{j}"
    );
    assert!(
        !ws.iter().any(|w| w.contains(&d.healthy.to_string())),
        "{j}"
    );

    // A time only a skipped block covers: an empty answer that says why (the store is not
    // pruned from the fan-out as holding nothing there).
    let (_, j) = ask(
        port,
        &instant("count(http_requests_total)", START + 5 * 3600),
    );
    assert_eq!(j["status"], "success", "{j}");
    assert_eq!(j["data"]["result"], serde_json::json!([]), "{j}");
    let ws = warnings(&j);
    assert!(warned(&ws, d.missing_chunk, "missing_file"), "{j}");
    assert!(!warned(&ws, d.corrupt_index, ""), "not needed: {j}");

    // Over all 6 h every skipped block is named, and the data is the healthy block's alone.
    let (_, j) = ask(
        port,
        &range("count(http_requests_total)", START, START + 6 * 3600, 600),
    );
    assert_eq!(j["status"], "success", "{j}");
    let ws = warnings(&j);
    assert!(warned(&ws, d.corrupt_index, "corrupt_index"), "{j}");
    assert!(warned(&ws, d.missing_chunk, "missing_file"), "{j}");
    assert!(warned(&ws, d.garbage_meta, "corrupt_meta_json"), "{j}");
    assert!(
        !ws.iter().any(|w| w.contains(&d.no_meta.to_string())),
        "{j}"
    );
    // The metadata endpoints say so too.
    let (_, j) = ask(
        port,
        &format!(
            "/api/v1/series?match[]=up&start={START}&end={}",
            START + 6 * 3600
        ),
    );
    assert!(
        warned(&warnings(&j), d.corrupt_index, "corrupt_index"),
        "{j}"
    );
    let (_, j) = ask(port, "/api/v1/labels");
    assert!(
        warned(&warnings(&j), d.missing_chunk, "missing_file"),
        "{j}"
    );
    let (_, j) = ask(
        port,
        &range("count(http_requests_total)", START, START + 6 * 3600, 600),
    );
    let values = j["data"]["result"][0]["values"].as_array().expect("values");
    assert!(values.len() >= 12, "the healthy 2 h answer: {j}");
    for v in values {
        let t = v[0].as_f64().expect("time") as i64;
        assert!(
            t <= START + 7200 + 300,
            "data only from the healthy block: {j}"
        );
        assert_eq!(v[1], "24", "{j}");
    }
}

#[test]
fn skipped_blocks_are_warned_of_counted_and_the_healthy_ones_answer() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = damaged_bucket(tmp.path());

    let mut q = StrataQuery::spawn(tmp.path(), &[&bucket_flag(&d.bucket)]);
    q.wait_until("ready", Duration::from_secs(60), |q| {
        query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    check_answers(q.port, &d);
    let metrics = get(q.port, "/metrics").body;
    for reason in ["corrupt_index", "missing_file", "corrupt_meta_json"] {
        let line = format!("strata_query_blocks_skipped{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    assert!(metrics.contains("strata_query_blocks_skipped{reason=\"corrupt_chunks\"} 0"));
    let log = q.log();
    assert_eq!(
        log.matches(&format!("block={}", d.corrupt_index)).count(),
        1,
        "logged once with its reason:\n{log}"
    );

    let mut store = StoreNode::start(tmp.path(), "store", &d.bucket);
    store.wait_ready();
    let mut fq = StrataQuery::spawn(tmp.path(), &[&format!("--endpoint={}", store.grpc)]);
    fq.wait_until("ready", Duration::from_secs(30), |q| {
        query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    check_answers(fq.port, &d);
    let log = store.log();
    assert!(
        log.contains("corrupt_index") && log.contains(&d.missing_chunk.to_string()),
        "the store logs what it skipped:\n{log}"
    );
}

#[test]
fn tools_survive_meta_json_spanning_all_of_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = tmp.path().join("bucket");
    let id = Ulid::new();
    let dir = bucket.join(id.to_string());
    std::fs::create_dir_all(dir.join("chunks")).expect("dir");
    std::fs::write(dir.join("index"), b"not an index").expect("index");
    BlockMeta::new_level1(id, i64::MIN, i64::MAX)
        .write_to_dir(&dir)
        .expect("meta");
    let flag = bucket_flag(&bucket);
    for args in [
        vec!["tools", "bucket", "ls", &flag],
        vec!["tools", "bucket", "ls", &flag, "-o", "json"],
        vec!["tools", "bucket", "inspect", &flag],
        vec!["tools", "bucket", "inspect", &flag, "-o", "json"],
    ] {
        let out = strata(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&id.to_string()));
    }
    let out = strata(&["tools", "bucket", "inspect", &flag]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("-9223372036854775808ms"),
        "times RFC 3339 cannot write are shown as milliseconds"
    );
    let out = strata(&["tools", "bucket", "verify", &flag]);
    assert_eq!(out.status.code(), Some(1), "issues found, no crash");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id.to_string()));
}

/// Runs `strata args` expecting it to exit by itself within 60 s.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (
                status.code(),
                std::fs::read_to_string(log.path()).unwrap_or_default(),
            );
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "strata {args:?} still running after 60s:\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_reader_refuses_a_bucket_directory_that_does_not_exist() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("no-such-bucket");
    let flag = bucket_flag(&missing);
    let shown = missing.display().to_string();
    let port = storage::testing::prometheus::free_port().expect("port");
    let http = format!("--http-address=127.0.0.1:{port}");
    let grpc = format!(
        "--grpc-address=127.0.0.1:{}",
        storage::testing::prometheus::free_port().expect("port")
    );
    let node_dir = format!("--data-dir={}", tmp.path().join("node").display());
    let runs: Vec<Vec<&str>> = vec![
        vec!["tools", "bucket", "ls", &flag],
        vec!["tools", "bucket", "inspect", &flag],
        vec!["tools", "bucket", "verify", &flag],
        vec!["query", &flag, &http, &grpc],
        vec![
            "node",
            "--role",
            "store",
            "--cluster.insecure",
            "--cluster.bootstrap",
            &node_dir,
            &grpc,
            &http,
            &flag,
        ],
    ];
    for args in runs {
        let (code, stderr) = run_to_exit(&args);
        assert!(
            code.is_some_and(|c| c != 0),
            "{args:?} exit {code:?}: {stderr}"
        );
        assert!(
            stderr.contains(&shown) && stderr.contains("does not exist"),
            "{args:?} names the directory: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created the directory");
    }
    // Writers create it.
    let blocks_dir = tmp.path().join("empty-prometheus");
    std::fs::create_dir_all(&blocks_dir).expect("dir");
    let path = format!("--path={}", blocks_dir.display());
    // (It then fails: there is nothing to upload.)
    strata(&["tools", "bucket", "upload", &flag, &path]);
    assert!(missing.is_dir(), "upload creates the bucket directory");
}
