//! A node's rule role serves its results live: a recording rule's output is queryable through
//! every node's `/api/v1/query` and through a standalone `strata query` pointed at the nodes'
//! gRPC ports within a few evaluation intervals, long before its block is uploaded; once the
//! block is in the bucket (and still in the node's memory), a `count_over_time` over the range
//! counts each evaluation once. Real `strata node` processes over a FILESYSTEM bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster_common/mod.rs"]
mod common;
mod rule_common;

use common::{free_port, http_get, strata, wait_for, Cluster};
use rule_common::{Proc, WAIT};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const RULES: &str =
    "groups:\n- name: live\n  interval: 1s\n  rules:\n  - record: live_rec\n    expr: vector(1)\n";

/// Percent-encodes a query parameter.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The result vector of an instant query (at `time` seconds, or now).
fn query(http: &str, expr: &str, time: Option<f64>) -> Option<Vec<Value>> {
    let at = time.map(|t| format!("&time={t}")).unwrap_or_default();
    let body = http_get(http, &format!("/api/v1/query?query={}{at}", enc(expr))).ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned())?
}

/// The value of a one-element result.
fn only_value(r: &[Value]) -> Option<f64> {
    match r {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// Block directories with a meta.json under `dir`.
fn blocks(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    out.sort();
    out
}

/// The `live_rec` sample timestamps of every block under `dir`.
fn block_timestamps(dir: &Path) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut all: Vec<i64> = rt.block_on(async {
        let mut all = Vec::new();
        for path in blocks(dir) {
            let b = storage::block::reader::Block::open_dir(&path)
                .await
                .unwrap();
            for s in b.all_series().await.unwrap() {
                if s.labels.get("__name__") == Some("live_rec") {
                    all.extend(s.samples.iter().map(|&(t, _)| t));
                }
            }
        }
        all
    });
    all.sort();
    all
}

/// A metric's value from `/metrics` (the first line starting with `prefix`).
fn metric(http: &str, prefix: &str) -> Option<f64> {
    let m = http_get(http, "/metrics").ok()?;
    m.lines()
        .find(|l| l.starts_with(prefix))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// `n` nodes sharing one FILESYSTEM bucket, with the rule file; flags for every node.
fn cluster(n: usize, block_duration: &str) -> (Cluster, PathBuf, Vec<String>) {
    let c = Cluster::new(n);
    let bucket = c.dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let rules = c.dir.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let flags = vec![
        format!(
            "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
        format!("--rule-file={}", rules.display()),
        "--eval-interval=1s".into(),
        "--rule.lease-duration=1s".into(),
        "--sync-block-duration=1s".into(),
        format!("--tsdb.block-duration={block_duration}"),
    ];
    (c, bucket, flags)
}

/// A standalone `strata query` reading the nodes' gRPC ports; its HTTP address.
fn standalone_querier(c: &Cluster) -> (Proc, String) {
    let http = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(strata());
    cmd.arg("query")
        .arg(format!("--http-address={http}"))
        .arg(format!("--grpc-address=127.0.0.1:{}", free_port()));
    for n in &c.nodes {
        cmd.arg(format!("--endpoint={}", n.grpc));
    }
    (Proc::spawn("query", c.dir.path(), &mut cmd), http)
}

#[test]
fn recorded_series_are_queryable_through_every_querier_before_any_upload() {
    // 2 h blocks: nothing is uploaded during the test, the results are only on the owner.
    let (mut c, bucket, flags) = cluster(2, "2h");
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    for i in 0..2 {
        c.start(i, &f);
    }
    c.wait_for_agreement(&[0, 1], 2, WAIT);
    let (_q, q_http) = standalone_querier(&c);
    let mut http: Vec<String> = c.nodes.iter().map(|n| n.http.clone()).collect();
    http.push(q_http.clone());
    for h in &http {
        let r = wait_for(WAIT, &format!("live_rec through {h}"), || {
            query(h, "live_rec", None).filter(|r| !r.is_empty())
        });
        assert_eq!(only_value(&r), Some(1.0), "{h}: {r:?}");
    }
    assert!(blocks(&bucket).is_empty(), "no block was uploaded yet");
    // Each node lists only the groups it holds: the querier shows the group once.
    let rules = wait_for(
        WAIT,
        "the group through the querier's /api/v1/rules",
        || {
            let v: Value = serde_json::from_str(&http_get(&q_http, "/api/v1/rules").ok()?).ok()?;
            let groups = v["data"]["groups"].as_array()?.clone();
            (!groups.is_empty()).then_some(groups)
        },
    );
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["name"], "live");
    // A node's own /api/v1/rules is the cluster's view too: the group once, as its owner last
    // evaluated it, on the node that does not hold it as well.
    for n in &c.nodes {
        let group = wait_for(
            WAIT,
            &format!("the evaluated group through {}", n.http),
            || {
                let v: Value =
                    serde_json::from_str(&http_get(&n.http, "/api/v1/rules").ok()?).ok()?;
                let groups = v["data"]["groups"].as_array()?.clone();
                let evaluated = groups.len() == 1
                    && groups[0]["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001-"));
                evaluated.then(|| groups[0].clone())
            },
        );
        assert_eq!(group["name"], "live", "{}: {group}", n.http);
    }
}

#[test]
fn results_uploaded_and_still_in_memory_are_counted_once() {
    let (mut c, bucket, flags) = cluster(1, "2s");
    let mut f: Vec<&str> = flags.iter().map(String::as_str).collect();
    // No compactor: the 2 s blocks stay as uploaded while the test reads them.
    f.extend(["--cluster.bootstrap", "--role=query,store,rule"]);
    c.start(0, &f);
    c.wait_for_agreement(&[0], 1, WAIT);
    let node = c.nodes[0].http.clone();
    // A block with samples in the bucket, loaded by the node's store role.
    wait_for(WAIT, "an uploaded block loaded by the store role", || {
        let loaded = metric(&node, "strata_store_blocks_loaded")?;
        (loaded >= 1.0 && !block_timestamps(&bucket).is_empty()).then_some(())
    });
    let (_q, q_http) = standalone_querier(&c);
    let uploaded = block_timestamps(&bucket);
    let last = *uploaded.last().unwrap();
    let at = last as f64 / 1000.0;
    let expected = uploaded.len() as f64;
    for h in [&node, &q_http] {
        let r = wait_for(WAIT, &format!("count_over_time through {h}"), || {
            query(h, "count_over_time(live_rec[1h])", Some(at)).filter(|r| !r.is_empty())
        });
        assert_eq!(
            only_value(&r),
            Some(expected),
            "{h}: every evaluation up to the last uploaded one counted once ({} in blocks)",
            uploaded.len()
        );
        let sum = query(h, "sum(live_rec)", Some(at)).unwrap();
        assert_eq!(
            only_value(&sum),
            Some(1.0),
            "{h}: one series, not two: {sum:?}"
        );
    }
}
