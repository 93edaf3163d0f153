//! Cross-check against Prometheus itself: a block made by `promtool tsdb create-blocks-from
//! openmetrics` is read with [`IndexReader`] and rewritten with [`IndexWriter`]; the two index
//! files must be byte-identical. Skipped (with a note) when `promtool` is not on PATH.

use super::tests::{loc, symbols_of, Series};
use super::*;
use crate::block::source::LocalFile;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// OpenMetrics text: three gauge families, node-exporter-like labels (500 series, enough for
/// multi-byte offsets everywhere), 15 s for 40 min from a 2 h-aligned start (so promtool cuts
/// a single block, two chunks per series). Timestamps are in seconds.
fn openmetrics() -> String {
    const HOSTS: usize = 40;
    let start = 1_700_006_400; // a multiple of 7200
    let mut s = String::new();
    let families: [(&str, Vec<String>); 3] = [
        (
            "node_cpu_seconds",
            (0..HOSTS * 4)
                .flat_map(|i| {
                    ["idle", "system", "user"].map(|m| {
                        let (host, cpu) = (i / 4, i % 4);
                        format!(r#"cpu="{cpu}",instance="host-{host}:9100",job="node",mode="{m}""#)
                    })
                })
                .collect(),
        ),
        (
            "up",
            (0..HOSTS)
                .map(|i| format!(r#"instance="host-{i}:9100",job="node""#))
                .collect(),
        ),
        ("temp", vec![r#"room="a""#.into(), r#"room="b""#.into()]),
    ];
    for (name, label_sets) in &families {
        let _ = writeln!(s, "# HELP {name} synthetic\n# TYPE {name} gauge");
        for t in (start..start + 2400).step_by(15) {
            for (k, l) in label_sets.iter().enumerate() {
                let v = ((t / 15) as usize * 7 + k * 13) % 1000;
                let _ = writeln!(s, "{name}{{{l}}} {v} {t}");
            }
        }
    }
    s.push_str("# EOF\n");
    s
}

fn promtool_block(dir: &Path) -> Option<PathBuf> {
    let input = dir.join("input.om");
    std::fs::write(&input, openmetrics()).unwrap();
    let out = dir.join("blocks");
    let run = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&out)
        .output();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            println!("note: promtool not runnable ({e}); skipping the Prometheus cross-check");
            return None;
        }
    };
    assert!(
        run.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let blocks: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("index").exists())
        .collect();
    assert_eq!(blocks.len(), 1, "expected one block, got {blocks:?}");
    blocks.into_iter().next()
}

#[tokio::test]
async fn rewriting_a_promtool_index_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let Some(block) = promtool_block(dir.path()) else {
        return;
    };
    let theirs_path = block.join("index");
    let r = IndexReader::open(Arc::new(LocalFile::open(&theirs_path).unwrap()), loc())
        .await
        .unwrap();
    assert_eq!(r.verify().await.unwrap(), Vec::<String>::new());
    assert_eq!(
        r.label_names(),
        ["__name__", "cpu", "instance", "job", "mode", "room"]
    );

    let mut series: Vec<Series> = Vec::new();
    for s in r.all_postings().await.unwrap() {
        series.push(r.series(s).await.unwrap());
    }
    assert_eq!(series.len(), 40 * 12 + 40 + 2);
    assert!(series.iter().any(|(_, c)| c.len() > 1));
    assert!(series.iter().all(|(_, c)| !c.is_empty()));

    let symbols = symbols_of(&series);
    let mut with_empty: Vec<String> = symbols.iter().cloned().collect();
    with_empty.insert(0, String::new());
    assert_eq!(
        r.symbols(),
        with_empty.as_slice(),
        "promtool's symbols are the series' strings plus \"\""
    );

    let ours_path = dir.path().join("rewritten-index");
    let mut w = IndexWriter::create(&ours_path, loc(), &symbols).unwrap();
    for (l, c) in &series {
        w.add_series(l, c).unwrap();
    }
    w.finish().unwrap();
    let theirs = std::fs::read(&theirs_path).unwrap();
    let ours = std::fs::read(&ours_path).unwrap();
    assert!(
        theirs.len() > 1 << 15,
        "offsets should need 3-byte uvarints"
    );
    let first_diff = theirs.iter().zip(&ours).position(|(a, b)| a != b);
    assert!(
        theirs == ours,
        "sizes {} vs {}, first difference at {first_diff:?}",
        theirs.len(),
        ours.len()
    );
}
