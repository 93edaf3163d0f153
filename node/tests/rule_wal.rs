//! The ruler's results survive SIGKILL (its WAL under `--data-dir/wal`) and its local blocks go
//! after `--tsdb.retention`, never before they are uploaded. Real `strata rule` processes; the
//! rule needs no data, so the embedded engine evaluates it over an empty FILESYSTEM bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster_common/mod.rs"]
mod common;
mod rule_common;

use common::{http_get, wait_for};
use rule_common::{get_json, now_ms, start_ruler, WAIT};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const RULES: &str = "groups:\n- name: wal\n  interval: 1s\n  rules:\n  - record: wal_rec\n    expr: vector(time())\n";

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("ruler/bucket")).unwrap();
    std::fs::write(tmp.path().join("rules.yml"), RULES).unwrap();
    tmp
}

/// `wal_rec`'s raw samples of the last 10 minutes through the ruler's query API.
fn served(ruler: &str) -> Option<Vec<(i64, String)>> {
    let v = get_json(ruler, "/api/v1/query?query=wal_rec%5B10m%5D")?;
    let values = v["data"]["result"][0]["values"].as_array()?.clone();
    Some(
        values
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().to_string())
            })
            .collect(),
    )
}

fn samples_at_least(ruler: &str, n: usize) -> Option<Vec<(i64, String)>> {
    served(ruler).filter(|s| s.len() >= n)
}

/// Local block directories (with meta.json) under the data dir and their max time.
fn local_blocks(data: &Path) -> Vec<(PathBuf, i64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(data).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.parse::<ulid::Ulid>().is_err() {
            continue;
        }
        let Ok(meta) = std::fs::read_to_string(e.path().join("meta.json")) else {
            continue;
        };
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        out.push((e.path(), meta["maxTime"].as_i64().unwrap()));
    }
    out.sort();
    out
}

/// Every `wal_rec` sample of every local block.
fn block_samples(data: &Path) -> Vec<(i64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut all = Vec::new();
        for (path, _) in local_blocks(data) {
            let b = storage::block::reader::Block::open_dir(&path)
                .await
                .unwrap();
            for s in b.all_series().await.unwrap() {
                if s.labels.get("__name__") == Some("wal_rec") {
                    all.extend(s.samples);
                }
            }
        }
        all.sort_by_key(|&(t, _)| t);
        all
    })
}

fn metric(ruler: &str, name: &str) -> Option<f64> {
    let text = http_get(ruler, "/metrics").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The newest WAL segment.
fn last_segment(data: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment")
}

#[test]
fn sigkilled_ruler_serves_its_results_after_a_restart_and_seals_each_sample_once() {
    let tmp = setup();
    let dir = tmp.path();
    let (mut first, ruler) = start_ruler(dir, "strata-rule-1", &[]);
    let before = wait_for(WAIT, "5 recorded samples", || samples_at_least(&ruler, 5));
    first.kill();
    assert!(
        local_blocks(&dir.join("ruler")).is_empty(),
        "mid-block: nothing sealed before the kill (2h blocks)"
    );

    let (mut second, ruler) = start_ruler(dir, "strata-rule-2", &[]);
    let after = wait_for(WAIT, "the results served again", || served(&ruler));
    for s in &before {
        assert!(
            after.contains(s),
            "sample {s:?} computed before SIGKILL is served after the restart: {after:?}"
        );
    }
    let newer = wait_for(WAIT, "new evaluations after the restart", || {
        samples_at_least(&ruler, after.len() + 2)
    });
    assert!(second.terminate(WAIT), "clean stop on SIGTERM");

    let sealed = block_samples(&dir.join("ruler"));
    let times: Vec<i64> = sealed.iter().map(|&(t, _)| t).collect();
    let unique: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(
        times.len(),
        unique.len(),
        "a sample twice in the blocks: {times:?}"
    );
    for (t, v) in before.iter().chain(&newer) {
        let want: f64 = v.parse().unwrap();
        assert!(
            sealed.contains(&(*t, want)),
            "({t}, {v}) is in a block: {sealed:?}"
        );
    }
    let wal_left: Vec<_> = std::fs::read_dir(dir.join("ruler/wal")).unwrap().collect();
    assert!(wal_left.is_empty(), "a clean stop empties the WAL");
}

#[test]
fn a_torn_wal_tail_is_truncated_and_the_rest_replayed() {
    let tmp = setup();
    let dir = tmp.path();
    let (mut first, ruler) = start_ruler(dir, "strata-rule-1", &[]);
    let before = wait_for(WAIT, "3 recorded samples", || samples_at_least(&ruler, 3));
    first.kill();
    // A record cut short by the kill: its header promises 100 bytes, 10 follow.
    let seg = last_segment(&dir.join("ruler"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&[7; 14]).unwrap();
    drop(f);

    let (_second, ruler) = start_ruler(dir, "strata-rule-2", &[]);
    let after = wait_for(WAIT, "the results served again", || served(&ruler));
    for s in &before {
        assert!(after.contains(s), "{s:?} replayed: {after:?}");
    }
    assert_eq!(
        metric(&ruler, "strata_rule_wal_torn_records_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(&ruler, "strata_rule_wal_corruptions_total"),
        Some(0.0)
    );
}

#[test]
fn blocks_past_retention_are_deleted_only_once_uploaded() {
    let tmp = setup();
    let dir = tmp.path();
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let (_ruler_proc, ruler) = start_ruler(
        dir,
        "strata-rule",
        &[
            objstore,
            "--tsdb.block-duration=2s".into(),
            "--tsdb.retention=3s".into(),
        ],
    );
    // Uploads fail while the bucket's directory is a file.
    std::fs::remove_dir_all(&bucket).unwrap();
    std::fs::write(&bucket, "not a directory").unwrap();
    let data = dir.join("ruler");
    let (old, max_time) = wait_for(WAIT, "a local block 3 s past retention", || {
        local_blocks(&data)
            .into_iter()
            .find(|(_, max)| *max < now_ms() - 6_000)
    });
    assert!(
        old.exists(),
        "an unshipped block past retention stays (max time {max_time})"
    );
    assert_eq!(
        metric(&ruler, "strata_rule_blocks_deleted_total"),
        Some(0.0)
    );

    std::fs::remove_file(&bucket).unwrap();
    std::fs::create_dir_all(&bucket).unwrap();
    let name = old.file_name().unwrap().to_owned();
    wait_for(WAIT, "the old block uploaded and deleted locally", || {
        (bucket.join(&name).join("meta.json").exists() && !old.exists()).then_some(())
    });
    wait_for(WAIT, "deletions counted", || {
        metric(&ruler, "strata_rule_blocks_deleted_total").filter(|n| *n >= 1.0)
    });
    for (path, max) in local_blocks(&data) {
        assert!(
            max >= now_ms() - 3_000 - 10_000 || !bucket.join(path.file_name().unwrap()).exists(),
            "{} is uploaded and long past retention yet kept",
            path.display()
        );
    }
}
