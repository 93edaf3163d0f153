//! `strata tools bucket compact` as an operator runs it: a real `strata` process over a
//! FILESYSTEM bucket holding two overlapping sets of blocks made by Prometheus 2.42's promtool
//! for the same series; `strata tools bucket verify` judges the bucket before and after, and
//! promtool's dump of what is left must hold every sample of both inputs, once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod strata_cli;
use strata_cli::strata;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use storage::labels::Labels;
use storage::testing::prometheus::{create_blocks_from_openmetrics, promtool_dump};
use storage::testing::{promtool_available, write_openmetrics};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// 20 hours of 12 series, one sample a minute from `offset_ms` past a 2h boundary, so
/// promtool cuts ten or eleven 2h blocks; named `name`.
fn openmetrics(dir: &Path, name: &str, offset_ms: i64) -> PathBuf {
    let start = 1_699_992_000_000 + offset_ms;
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..12)
        .map(|i| {
            let labels =
                Labels::from_pairs([("__name__", "demo_total"), ("series", &format!("s{i:02}"))]);
            let samples = (0..1200)
                .map(|k| (start + k * 60_000, (k * (i + 1)) as f64 + offset_ms as f64))
                .collect();
            (labels, samples)
        })
        .collect();
    let om = dir.join(name);
    write_openmetrics(&om, &series).expect("write openmetrics");
    om
}

/// Every block directory (with meta.json) in the FILESYSTEM bucket.
fn bucket_blocks(bucket: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(bucket)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    out.sort();
    out
}

/// promtool's dump of the bucket's blocks, copied into `dest` as a Prometheus data dir.
fn dump_bucket(bucket: &Path, dest: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    for block in bucket_blocks(bucket) {
        let to = dest.join(block.file_name().unwrap());
        std::fs::create_dir_all(to.join("chunks")).unwrap();
        for f in ["index", "meta.json"] {
            std::fs::copy(block.join(f), to.join(f)).unwrap();
        }
        for c in std::fs::read_dir(block.join("chunks")).unwrap() {
            let c = c.unwrap();
            std::fs::copy(c.path(), to.join("chunks").join(c.file_name())).unwrap();
        }
    }
    promtool_dump(dest).unwrap()
}

#[test]
fn compacts_overlapping_blocks_until_verify_is_clean_keeping_every_sample() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("strata");
    let data = data_dir.to_str().unwrap();
    // Two uploads of the same series with the same external labels, the second's samples
    // half a minute after the first's: their blocks overlap and the union interleaves.
    let mut input_blocks = 0;
    let mut want: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (name, offset) in [("a", 0), ("b", 30_000)] {
        let om = openmetrics(tmp.path(), &format!("{name}.om"), offset);
        let prom = tmp.path().join(format!("prom-{name}"));
        input_blocks += create_blocks_from_openmetrics(&om, &prom).unwrap().len();
        let up = strata(&[
            "tools",
            "bucket",
            "upload",
            "--data-dir",
            data,
            "--path",
            prom.to_str().unwrap(),
            "--label",
            "cluster=\"eu\"",
        ]);
        assert!(up.status.success());
        for (series, samples) in promtool_dump(&prom).unwrap() {
            want.entry(series).or_default().extend(samples);
        }
    }
    for samples in want.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    assert!(input_blocks >= 20, "{input_blocks} promtool blocks");
    assert_eq!(want.len(), 12);
    assert!(want.values().all(|s| s.len() == 2400));

    let before = strata(&["tools", "bucket", "verify", "--data-dir", data]);
    assert_eq!(before.status.code(), Some(1), "the uploads overlap");
    assert!(text(&before.stdout).contains("overlap"));

    let run = strata(&[
        "tools",
        "bucket",
        "compact",
        "--data-dir",
        data,
        "--consistency-delay=0s",
        "--delete-delay=0s",
        "--compact.concurrency=2",
    ]);
    assert!(run.status.success(), "tools bucket compact failed");
    let summary = text(&run.stdout);
    assert!(summary.starts_with("compacted 1 group(s): "), "{summary}");
    assert!(!summary.contains(" 0 merge(s)"), "{summary}");
    assert!(!summary.contains("(0 vertical)"), "{summary}");
    // Not a terminal: progress comes as log lines instead of a bar.
    let log = text(&run.stderr);
    assert!(log.contains("compaction progress"), "{log}");
    assert!(log.contains("groups_done=1 groups=1"), "{log}");

    let bucket = data_dir.join("bucket");
    let left = bucket_blocks(&bucket);
    assert!(
        !left.is_empty() && left.len() < input_blocks / 2,
        "{} blocks left of {input_blocks}",
        left.len()
    );
    let after = strata(&["tools", "bucket", "verify", "--data-dir", data]);
    assert!(after.status.success(), "verify after compaction");
    assert!(text(&after.stdout).contains(&format!("no issues found in {} block(s)", left.len())));
    let got = dump_bucket(&bucket, &tmp.path().join("dump-after"));
    assert_eq!(got.len(), want.len());
    for (series, samples) in &want {
        assert!(
            got.get(series) == Some(samples),
            "series {series}: {} samples after, {} before",
            got.get(series).map_or(0, Vec::len),
            samples.len()
        );
    }
}

#[test]
fn a_missing_bucket_or_a_bad_flag_fails_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let config = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        missing.display()
    );
    let out = strata(&[
        "tools",
        "bucket",
        "compact",
        "--objstore.config",
        &config,
        "--data-dir",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&missing.display().to_string()),
        "the error names the missing directory"
    );
    assert!(!missing.exists(), "a tool must not create the bucket");

    let out = strata(&["tools", "bucket", "compact", "--compact.concurrency=0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("compact.concurrency"));
    let out = strata(&["tools", "bucket", "compact", "--delete-delay=later"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid duration"));
}
