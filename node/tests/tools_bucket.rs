//! `strata tools bucket` as a user runs it: a real `strata` process over a filesystem bucket
//! holding blocks made by Prometheus 2.42's promtool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod strata_cli;
use strata_cli::strata;

use std::path::{Path, PathBuf};
use std::process::Output;
use storage::block::BlockMeta;
use storage::labels::Labels;
use storage::testing::prometheus::create_blocks_from_openmetrics;
use storage::testing::{promtool_available, write_openmetrics};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Blocks made by promtool from a few series over 5 hours: three 2h-aligned blocks.
fn promtool_blocks(dir: &Path) -> Vec<PathBuf> {
    let start = 1_699_992_000_000 + 3_600_000;
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..20)
        .map(|i| {
            let labels =
                Labels::from_pairs([("__name__", "demo_metric"), ("series", &format!("s{i:02}"))]);
            let samples = (0..1200)
                .map(|k| (start + k * 15_000, (k * i) as f64))
                .collect();
            (labels, samples)
        })
        .collect();
    let om = dir.join("data.om");
    write_openmetrics(&om, &series).expect("write openmetrics");
    create_blocks_from_openmetrics(&om, &dir.join("prom")).expect("promtool")
}

#[test]
fn inspect_reports_prometheus_blocks_with_their_meta_json_counts() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let blocks = promtool_blocks(tmp.path());
    assert!(blocks.len() >= 2);
    let data_dir = tmp.path().join("strata");
    let data = data_dir.to_str().unwrap();
    let prom = tmp.path().join("prom");
    let up = strata(&[
        "tools",
        "bucket",
        "upload",
        "--data-dir",
        data,
        "--path",
        prom.to_str().unwrap(),
        "--label",
        "replica=\"A\"",
    ]);
    assert!(up.status.success());
    assert!(stdout(&up).contains(&format!("uploaded {} block(s)", blocks.len())));

    let json = strata(&[
        "tools",
        "bucket",
        "inspect",
        "--data-dir",
        data,
        "-o",
        "json",
    ]);
    assert!(json.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows.len(), blocks.len());
    let table = stdout(&strata(&["tools", "bucket", "inspect", "--data-dir", data]));
    for dir in &blocks {
        let meta = BlockMeta::read_from_dir(dir).unwrap();
        let row = rows
            .iter()
            .find(|r| r["ulid"] == meta.ulid.to_string())
            .unwrap_or_else(|| panic!("block {} missing from inspect", meta.ulid));
        assert_eq!(row["series"], meta.stats.num_series);
        assert_eq!(row["samples"], meta.stats.num_samples);
        assert_eq!(row["chunks"], meta.stats.num_chunks);
        assert_eq!(row["labels"]["replica"], "A");
        assert_eq!(row["source"], "bucket.upload");
        let line = table
            .lines()
            .find(|l| l.contains(&meta.ulid.to_string()))
            .expect("table row");
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(
            cells[5].replace(',', ""),
            meta.stats.num_series.to_string(),
            "{line}"
        );
        assert_eq!(
            cells[6].replace(',', ""),
            meta.stats.num_samples.to_string(),
            "{line}"
        );
    }

    let ls = strata(&["tools", "bucket", "ls", "--data-dir", data, "-o", "json"]);
    let listed: Vec<BlockMeta> = stdout(&ls)
        .lines()
        .map(|l| BlockMeta::parse("ls", l.as_bytes()).unwrap())
        .collect();
    assert_eq!(listed.len(), blocks.len());
    assert!(listed
        .iter()
        .all(|m| m.thanos.as_ref().unwrap().files.len() >= 3));

    // Uploading again changes nothing.
    let again = strata(&[
        "tools",
        "bucket",
        "upload",
        "--data-dir",
        data,
        "--path",
        prom.to_str().unwrap(),
        "--label",
        "replica=\"A\"",
    ]);
    assert!(stdout(&again).contains(&format!("skipped {} already present", blocks.len())));
    let verify = strata(&["tools", "bucket", "verify", "--data-dir", data]);
    assert!(verify.status.success(), "promtool blocks must verify clean");
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_finds_overlaps_partial_uploads_and_corrupt_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let gen = strata(&[
        "tools",
        "bucket",
        "generate",
        "--data-dir",
        data,
        "--hours",
        "4",
        "--instances",
        "2",
    ]);
    assert!(gen.status.success());
    assert!(strata(&["tools", "bucket", "verify", "--data-dir", data])
        .status
        .success());

    let bucket = tmp.path().join("bucket");
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(&bucket)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blocks.sort();
    assert!(blocks.len() >= 2, "{blocks:?}");

    // A chunk bit flipped in the first block, an index bit in the second.
    flip_byte(&blocks[0].join("chunks/000001"), 200);
    let index = blocks[1].join("index");
    let len = std::fs::metadata(&index).unwrap().len();
    flip_byte(&index, len - 20);
    // A partial upload: a block directory without meta.json.
    let partial = bucket.join("01JZZZZZZZZZZZZZZZZZZZZZZZ");
    std::fs::create_dir_all(partial.join("chunks")).unwrap();
    std::fs::write(partial.join("index"), b"x").unwrap();
    // An overlapping block of the same group: a second generate over the same hours.
    assert!(strata(&[
        "tools",
        "bucket",
        "generate",
        "--data-dir",
        data,
        "--hours",
        "2",
        "--instances",
        "1"
    ])
    .status
    .success());

    let out = strata(&["tools", "bucket", "verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "verify must fail");
    let text = stdout(&out);
    let b0 = blocks[0].file_name().unwrap().to_str().unwrap();
    let b1 = blocks[1].file_name().unwrap().to_str().unwrap();
    assert!(text.contains("partial upload"), "{text}");
    assert!(text.contains("overlap"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains(b0) && l.contains("chunks/000001") && l.contains("offset")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains(b1) && l.contains("index")),
        "{text}"
    );
}

#[test]
fn bad_flags_and_configs_fail_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let out = strata(&[
        "tools",
        "bucket",
        "upload",
        "--data-dir",
        data,
        "--path",
        data,
        "--label",
        "0bad=x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid label name"));

    let out = strata(&["tools", "bucket", "ls", "--objstore.config", "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:1\n  sse_config:\n    type: SSE-KMS\n"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sse_config"));

    let cfg = format!("type: FILESYSTEM\nconfig:\n  directory: {data}/elsewhere\n");
    let out = strata(&["tools", "bucket", "ls", "--objstore.config", &cfg]);
    // A reader does not conjure up an empty bucket from a typo: it names the directory.
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{data}/elsewhere")));
}

fn block_dirs(bucket: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(bucket)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 26)
        .collect();
    ids.sort();
    ids
}

#[test]
fn verify_leaves_blocks_marked_for_deletion_out_of_the_overlap_check() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let generate = |hours: &str, instances: &str| {
        let out = strata(&[
            "tools",
            "bucket",
            "generate",
            "--data-dir",
            data,
            "--hours",
            hours,
            "--instances",
            instances,
        ]);
        assert!(out.status.success(), "{}", stdout(&out));
    };
    generate("4", "1");
    let bucket = tmp.path().join("bucket");
    let before = block_dirs(&bucket);
    // A second generate over the same hours: blocks of the same group that overlap.
    generate("2", "1");
    let added: Vec<String> = block_dirs(&bucket)
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert!(!added.is_empty());
    let out = strata(&["tools", "bucket", "verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("overlap"), "{}", stdout(&out));

    // Marked for deletion (as a compactor marks replaced blocks): no longer an overlap.
    let mut mark = vec![
        "tools",
        "bucket",
        "mark",
        "--data-dir",
        data,
        "--marker",
        "deletion-mark.json",
    ];
    for id in &added {
        mark.extend(["--id", id.as_str()]);
    }
    assert!(strata(&mark).status.success());
    let out = strata(&["tools", "bucket", "verify", "--data-dir", data]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.lines().any(|l| l.ends_with(" overlap")), "{text}");
    assert!(
        text.contains(&format!(
            "skipped {} block(s) marked for deletion",
            added.len()
        )),
        "{text}"
    );
}
