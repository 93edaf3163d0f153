//! `strata compact` as an operator runs it: a real process over a FILESYSTEM bucket holding
//! blocks from `strata tools bucket generate` or from Prometheus 2.42's promtool. Outputs are
//! checked with promtool (analyze, and a dump that must hold exactly the samples of the
//! inputs) and with `strata query` answers before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::{enc, get, StrataQuery};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use storage::block::BlockMeta;
use storage::testing::prometheus::{promtool_analyze, promtool_dump};
use storage::testing::promtool_available;

fn strata(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata");
    eprintln!(
        "strata {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `strata compact` once over `data`, with `extra` flags; the exit must be 0.
fn compact(data: &Path, extra: &[&str]) -> String {
    let d = format!("--data-dir={}", data.display());
    let mut args = vec![
        "compact",
        d.as_str(),
        "--http-address=127.0.0.1:0",
        "--consistency-delay=0s",
    ];
    args.extend_from_slice(extra);
    let out = strata(&args);
    assert!(out.status.success(), "strata compact failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn generate(data: &Path, hours: &str) {
    let d = format!("--data-dir={}", data.display());
    let out = strata(&[
        "tools",
        "bucket",
        "generate",
        &d,
        "--hours",
        hours,
        "--instances",
        "2",
    ]);
    assert!(out.status.success());
}

fn bucket_dir(data: &Path) -> PathBuf {
    data.join("bucket")
}

/// Every block with meta.json in the bucket, with whether it carries a deletion mark.
fn blocks(data: &Path) -> Vec<(BlockMeta, bool)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(bucket_dir(data)).unwrap() {
        let p = e.unwrap().path();
        if p.join("meta.json").exists() {
            let marked = p.join("deletion-mark.json").exists();
            out.push((BlockMeta::read_from_dir(&p).unwrap(), marked));
        }
    }
    out.sort_by_key(|(m, _)| (m.min_time, m.ulid));
    out
}

fn live(data: &Path) -> Vec<BlockMeta> {
    blocks(data)
        .into_iter()
        .filter(|(_, marked)| !marked)
        .map(|(m, _)| m)
        .collect()
}

/// Copies the blocks' data files (as a download would) into a fresh Prometheus-style dir.
fn download(data: &Path, metas: &[BlockMeta], dest: &Path) {
    for m in metas {
        let from = bucket_dir(data).join(m.ulid.to_string());
        let to = dest.join(m.ulid.to_string());
        std::fs::create_dir_all(to.join("chunks")).unwrap();
        for f in ["index", "meta.json"] {
            std::fs::copy(from.join(f), to.join(f)).unwrap();
        }
        for c in std::fs::read_dir(from.join("chunks")).unwrap() {
            let c = c.unwrap();
            std::fs::copy(c.path(), to.join("chunks").join(c.file_name())).unwrap();
        }
    }
}

/// promtool's dump of `metas`, downloaded into `work/name`.
fn dump(
    data: &Path,
    metas: &[BlockMeta],
    work: &Path,
    name: &str,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let dir = work.join(name);
    download(data, metas, &dir);
    promtool_dump(&dir).unwrap()
}

fn answers(work: &Path, data: &Path, queries: &[String]) -> Vec<String> {
    let mut q = StrataQuery::start_ready(work, data);
    let out = queries
        .iter()
        .map(|path| {
            let r = get(q.port, path);
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            r.body
        })
        .collect();
    q.terminate(Duration::from_secs(30));
    out
}

fn queries(metas: &[BlockMeta]) -> Vec<String> {
    let start = metas.first().unwrap().min_time / 1000;
    let end = metas.last().unwrap().max_time / 1000 - 1;
    let mid = (start + end) / 2;
    let range = |q: &str| {
        format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step=600",
            enc(q)
        )
    };
    vec![
        range("sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
        range("node_load1"),
        range("count(up)"),
        format!(
            "/api/v1/query?query={}&time={mid}",
            enc("node_memory_MemAvailable_bytes")
        ),
    ]
}

#[test]
fn compacts_generated_blocks_keeping_every_sample_and_every_query_answer() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("strata");
    generate(&data, "24");
    let before = live(&data);
    assert!(before.len() >= 12, "{} blocks", before.len());
    let samples_before = dump(&data, &before, tmp.path(), "dump-before");
    let qs = queries(&before);
    let answers_before = answers(tmp.path(), &data, &qs);

    compact(&data, &[]);
    let after = blocks(&data);
    let outputs: Vec<&BlockMeta> = after
        .iter()
        .filter(|(m, _)| m.compaction.level >= 2)
        .map(|(m, _)| m)
        .collect();
    assert!(!outputs.is_empty(), "no block was compacted");
    for out in &outputs {
        let th = out.thanos.as_ref().unwrap();
        assert_eq!(th.source, "compactor");
        assert_eq!(th.labels["cluster"], "demo");
        assert!(out.compaction.sources.len() >= 2);
        // The sources are marked for deletion (the default --delete-delay keeps them).
        for src in &out.compaction.sources {
            let (_, marked) = after.iter().find(|(m, _)| m.ulid == *src).unwrap();
            assert!(*marked, "source {src} of {} not marked", out.ulid);
        }
        let dir = tmp.path().join(format!("analyze-{}", out.ulid));
        download(&data, &[(*out).clone()], &dir);
        let report = promtool_analyze(&dir, &out.ulid.to_string()).unwrap();
        assert!(report.contains("Block ID"), "{report}");
    }
    assert!(bucket_dir(&data).join("bucket-index.json.gz").exists());
    // Live blocks do not overlap.
    let now_live = live(&data);
    for w in now_live.windows(2) {
        assert!(
            w[0].max_time <= w[1].min_time,
            "{} overlaps {}",
            w[0].ulid,
            w[1].ulid
        );
    }

    // A second pass with no delete delay removes the sources; nothing is lost.
    compact(&data, &["--delete-delay=0s"]);
    let remaining: Vec<BlockMeta> = blocks(&data).into_iter().map(|(m, _)| m).collect();
    assert_eq!(remaining.len(), now_live.len());
    let samples_after = dump(&data, &remaining, tmp.path(), "dump-after");
    assert_eq!(samples_after.len(), samples_before.len());
    assert!(
        samples_after == samples_before,
        "samples changed by compaction"
    );
    assert_eq!(answers(tmp.path(), &data, &qs), answers_before);
}

/// Two copies of the promtool data set uploaded as replicas A and B.
fn replica_blocks(tmp: &Path, data: &Path) {
    for replica in ["A", "B"] {
        let dir = tmp.join(format!("prom-{replica}"));
        std::fs::create_dir_all(&dir).unwrap();
        query_common::make_blocks(&dir);
        let d = format!("--data-dir={}", data.display());
        let path = dir.join("blocks");
        let label = format!("replica=\"{replica}\"");
        let out = strata(&[
            "tools",
            "bucket",
            "upload",
            &d,
            "--path",
            path.to_str().unwrap(),
            "--label",
            "cluster=\"eu\"",
            "--label",
            &label,
        ]);
        assert!(out.status.success());
    }
}

#[test]
fn overlapping_replica_blocks_are_deduplicated_instead_of_halting() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("strata");
    replica_blocks(tmp.path(), &data);
    let inputs = live(&data);
    let replica_a: Vec<BlockMeta> = inputs
        .iter()
        .filter(|m| m.external_labels()["replica"] == "A")
        .cloned()
        .collect();
    assert_eq!(replica_a.len() * 2, inputs.len());
    let want = dump(&data, &replica_a, tmp.path(), "dump-a");

    compact(
        &data,
        &["--deduplication.replica-label=replica", "--delete-delay=0s"],
    );
    let out = live(&data);
    assert_eq!(blocks(&data).len(), out.len(), "sources deleted");
    for w in out.windows(2) {
        assert!(
            w[0].max_time <= w[1].min_time,
            "{} overlaps {}",
            w[0].ulid,
            w[1].ulid
        );
    }
    for m in &out {
        let labels = m.external_labels();
        assert_eq!(labels.get("replica"), None, "{}", m.ulid);
        assert_eq!(labels["cluster"], "eu");
    }
    // Identical replicas: the deduplicated blocks hold exactly one replica's samples.
    let got = dump(&data, &out, tmp.path(), "dump-dedup");
    assert!(
        got == want,
        "deduplicated samples differ from one replica's"
    );
}

#[test]
fn a_corrupt_block_is_marked_no_compact_and_the_pass_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("strata");
    generate(&data, "24");
    let before = live(&data);
    // A block from the middle of the day: the planner leaves the oldest (alone in its 8h range
    // at some hours of the day) and the newest range (still filling) uncompacted.
    let bad = before[before.len() / 2].ulid;
    let chunk = bucket_dir(&data)
        .join(bad.to_string())
        .join("chunks/000001");
    let mut bytes = std::fs::read(&chunk).unwrap();
    for b in bytes.iter_mut().skip(8) {
        *b = 0xff;
    }
    std::fs::write(&chunk, bytes).unwrap();

    let log = compact(&data, &[]);
    assert!(log.contains("marked block no-compact"), "{log}");
    let mark_path = bucket_dir(&data)
        .join(bad.to_string())
        .join("no-compact-mark.json");
    let mark: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mark_path).expect("no-compact mark")).unwrap();
    assert_eq!(mark["reason"], "corrupt-block");
    assert_eq!(mark["id"], bad.to_string());
    assert_eq!(mark["version"], 1);
    assert!(
        mark["details"].as_str().unwrap().contains("corrupt"),
        "{mark}"
    );
    // The rest of the bucket was compacted, and the bad block left where it was.
    let after = blocks(&data);
    assert!(after.iter().any(|(m, _)| m.compaction.level >= 2));
    assert!(after.iter().any(|(m, marked)| m.ulid == bad && !marked));
}

#[test]
fn with_wait_it_serves_probes_and_metrics_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("strata");
    generate(&data, "24");
    let port = storage::testing::prometheus::free_port().unwrap();
    let log = tmp.path().join("compact.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "compact",
            &format!("--data-dir={}", data.display()),
            &format!("--http-address=127.0.0.1:{port}"),
            "--consistency-delay=0s",
            "--wait",
            "--wait-interval=1h",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "strata compact exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        let m = query_common::request(port, "GET", "/metrics", None);
        if let Ok(r) = m {
            if r.body.contains("strata_compact_iterations_total 1") {
                break r.body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no completed pass in /metrics:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert!(value("strata_compact_group_compactions_total") >= 1.0);
    assert_eq!(value("strata_compact_halted"), 0.0);
    assert!(
        value("strata_compact_blocks_marked_total{marker=\"deletion-mark.json\",reason=\"compacted\"}") >= 2.0
    );
    assert_eq!(get(port, "/-/healthy").status, 200);
    assert_eq!(get(port, "/-/ready").status, 200);
    // Waiting for the next pass, it stops promptly on SIGTERM with status 0.
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata compact did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
