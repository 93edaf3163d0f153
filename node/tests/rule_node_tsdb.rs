//! The rule role of `strata node` keeps its results as `strata rule` does: blocks under
//! `<data-dir>/rule` (source `ruler`, the node's external labels) uploaded to the node's bucket,
//! and a WAL that brings back what a SIGKILL cut off. Real one-node clusters; the rule needs no
//! data, so the embedded engine evaluates it over the node's empty default bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster_common/mod.rs"]
mod common;
mod rule_common;

use common::{http_get, wait_for, Cluster};
use rule_common::WAIT;
use serde_json::Value;
use std::path::{Path, PathBuf};

const RULES: &str =
    "groups:\n- name: rec\n  interval: 1s\n  rules:\n  - record: node_rec\n    expr: vector(time())\n";

/// A one-node cluster with the rule role, its default bucket created, not started.
fn cluster() -> (Cluster, String) {
    let c = Cluster::new(1);
    let rules = c.dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    std::fs::create_dir_all(c.nodes[0].data_dir.join("bucket")).unwrap();
    (c, format!("--rule-file={}", rules.display()))
}

/// Block directories (with meta.json) under `dir` and their meta.json.
fn blocks(dir: &Path) -> Vec<(PathBuf, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.parse::<ulid::Ulid>().is_err() {
            continue;
        }
        let Ok(meta) = std::fs::read_to_string(e.path().join("meta.json")) else {
            continue;
        };
        out.push((e.path(), serde_json::from_str(&meta).unwrap()));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every `node_rec` sample of the blocks under `dir`, by time.
fn samples(dir: &Path) -> Vec<(i64, f64)> {
    let mut all: Vec<(i64, f64)> = blocks(dir)
        .iter()
        .flat_map(|(path, _)| block_samples(path))
        .collect();
    all.sort_by_key(|&(t, _)| t);
    all
}

/// The `node_rec` samples of the block in `path`.
fn block_samples(path: &Path) -> Vec<(i64, f64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = storage::block::reader::Block::open_dir(path).await.unwrap();
        let mut all = Vec::new();
        for s in b.all_series().await.unwrap() {
            if s.labels.get("__name__") == Some("node_rec") {
                all.extend(s.samples);
            }
        }
        all
    })
}

/// The group's last evaluation time (ms) from the node's `/metrics`, once it evaluated.
fn last_eval_ms(http: &str) -> Option<i64> {
    let m = http_get(http, "/metrics").ok()?;
    let line = m
        .lines()
        .find(|l| l.starts_with("prometheus_rule_group_last_evaluation_timestamp_seconds{"))?;
    let secs: f64 = line.rsplit(' ').next()?.parse().ok()?;
    (secs > 0.0).then(|| (secs * 1000.0).round() as i64)
}

#[test]
fn rule_node_uploads_ruler_blocks_with_its_external_labels() {
    let (mut c, rule_file) = cluster();
    c.start(
        0,
        &[
            "--cluster.bootstrap",
            "--role=rule",
            &rule_file,
            "--eval-interval=1s",
            "--rule.lease-duration=1s",
            "--tsdb.block-duration=2s",
            "--label=replica=\"r1\"",
        ],
    );
    c.wait_for_agreement(&[0], 1, WAIT);
    let bucket = c.nodes[0].data_dir.join("bucket");
    let (path, meta) = wait_for(WAIT, "a ruler block with samples in the bucket", || {
        blocks(&bucket)
            .into_iter()
            .find(|(p, _)| !block_samples(p).is_empty())
    });
    assert_eq!(meta["thanos"]["source"], "ruler", "{meta}");
    assert_eq!(
        meta["thanos"]["labels"],
        serde_json::json!({"replica": "r1"}),
        "{meta}"
    );
    let id = path.file_name().unwrap();
    assert!(
        c.nodes[0].data_dir.join("rule").join(id).exists(),
        "the uploaded block was written under <data-dir>/rule"
    );
    for (t, v) in samples(&bucket) {
        assert!(
            (t as f64 / 1000.0 - v).abs() < 1e-6,
            "node_rec = time() at its evaluation: ({t}, {v})"
        );
    }
}

#[test]
fn sigkilled_rule_node_keeps_its_unsealed_results_through_the_wal() {
    let (mut c, rule_file) = cluster();
    // 2h blocks: nothing is sealed before the kill, the results are only in memory and the WAL.
    c.start(
        0,
        &[
            "--cluster.bootstrap",
            "--role=rule",
            &rule_file,
            "--eval-interval=1s",
            "--rule.lease-duration=1s",
        ],
    );
    c.wait_for_agreement(&[0], 1, WAIT);
    let http = c.nodes[0].http.clone();
    let first = wait_for(WAIT, "an evaluation", || last_eval_ms(&http));
    let before = wait_for(WAIT, "two evaluations later", || {
        last_eval_ms(&http).filter(|t| *t >= first + 2_000)
    });
    c.nodes[0].kill();
    let local = c.nodes[0].data_dir.join("rule");
    assert!(blocks(&local).is_empty(), "no block before the kill");

    c.restart(0);
    c.wait_for_agreement(&[0], 1, WAIT);
    wait_for(WAIT, "evaluations after the restart", || {
        last_eval_ms(&http).filter(|t| *t > before + 1_000)
    });
    assert!(c.nodes[0].terminate(WAIT), "clean stop on SIGTERM");

    // The clean stop seals the rest: the samples from before the kill come from the WAL.
    let sealed = samples(&local);
    let times: Vec<i64> = sealed.iter().map(|&(t, _)| t).collect();
    for t in [first, before] {
        assert!(
            times.contains(&t),
            "sample at {t} (before SIGKILL) is in a block: {times:?}"
        );
    }
    let mut unique = times.clone();
    unique.dedup();
    assert_eq!(unique, times, "a sample twice in the blocks");
    let uploaded = samples(&c.nodes[0].data_dir.join("bucket"));
    assert_eq!(uploaded, sealed, "the final blocks are uploaded on stop");
    let wal_left: Vec<_> = std::fs::read_dir(local.join("wal")).unwrap().collect();
    assert!(wal_left.is_empty(), "a clean stop empties the WAL");
}

/// A `/metrics` counter (0 when absent, `None` when unreachable).
fn counter(http: &str, name: &str) -> Option<f64> {
    let m = http_get(http, "/metrics").ok()?;
    Some(
        m.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0),
    )
}

#[test]
fn rule_uploads_count_in_the_node_metrics_next_to_a_sidecar_role() {
    let (mut c, rule_file) = cluster();
    // No Prometheus: the sidecar ships nothing, every upload counted is the rule role's.
    let tsdb = format!("--tsdb.path={}", c.dir.path().join("prom").display());
    std::fs::create_dir_all(c.dir.path().join("prom")).unwrap();
    c.start(
        0,
        &[
            "--cluster.bootstrap",
            "--role=sidecar,rule",
            &rule_file,
            &tsdb,
            "--prometheus.url=http://127.0.0.1:1",
            "--eval-interval=1s",
            "--rule.lease-duration=1s",
            "--tsdb.block-duration=2s",
        ],
    );
    c.wait_for_agreement(&[0], 1, WAIT);
    let http = c.nodes[0].http.clone();
    let bucket = c.nodes[0].data_dir.join("bucket");
    wait_for(WAIT, "a ruler block in the bucket", || {
        (!blocks(&bucket).is_empty()).then_some(())
    });
    wait_for(WAIT, "the upload in thanos_shipper_uploads_total", || {
        counter(&http, "thanos_shipper_uploads_total").filter(|v| *v >= 1.0)
    });
}
