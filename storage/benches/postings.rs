//! Index lookups on a node-exporter-like index of 10,000 series: one postings list, a typical
//! matcher set, and a series entry by ref.

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use storage::block::index::{ChunkMeta, IndexReader, IndexWriter};
use storage::block::{FileLocation, LocalFile};
use storage::matcher::Matcher;
use storage::Labels;

/// 100 instances x (45 plain metrics + 5 cpu metrics x 11 cpu/mode combinations) = 10,000.
fn series() -> Vec<Labels> {
    let mut out = Vec::new();
    for i in 0..100 {
        let instance = format!("host-{i}:9100");
        let job = if i < 90 { "node" } else { "node-canary" };
        for m in 0..50 {
            let name = format!("node_metric_{m}");
            let base = [
                ("__name__", name.as_str()),
                ("instance", &instance),
                ("job", job),
            ];
            if m < 45 {
                out.push(Labels::from_pairs(base));
                continue;
            }
            out.push(Labels::from_pairs(
                base.into_iter().chain([("mode", "total")]),
            ));
            for cpu in ["0", "1"] {
                for mode in ["idle", "user", "system", "iowait", "irq"] {
                    let extra = [("cpu", cpu), ("mode", mode)];
                    out.push(Labels::from_pairs(base.into_iter().chain(extra)));
                }
            }
        }
    }
    out.sort();
    out
}

fn build(path: &std::path::Path) {
    let all = series();
    let symbols: BTreeSet<String> = all
        .iter()
        .flat_map(|l| l.iter().flat_map(|l| [l.name.clone(), l.value.clone()]))
        .collect();
    let loc = FileLocation::new("bench", "index");
    let mut w = IndexWriter::create(path, loc, &symbols).expect("create index");
    let mut chunk_ref = 8u64;
    for (i, l) in all.iter().enumerate() {
        let chunks: Vec<ChunkMeta> = (0..2 + i % 3)
            .map(|k| {
                let t = 1_700_000_000_000 + k as i64 * 1_800_000;
                chunk_ref += 150;
                ChunkMeta {
                    min_time: t,
                    max_time: t + 1_785_000,
                    chunk_ref,
                }
            })
            .collect();
        w.add_series(l, &chunks).expect("add series");
    }
    w.finish().expect("finish index");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("index");
    build(&path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let source = Arc::new(LocalFile::open(&path).expect("open index"));
    let r = rt
        .block_on(IndexReader::open(
            source,
            FileLocation::new("bench", "index"),
        ))
        .expect("open reader");
    let all = rt.block_on(r.all_postings()).expect("all postings");
    assert_eq!(all.len(), 10_000);

    c.bench_function("postings __name__=node_metric_7 (100 refs)", |b| {
        b.iter(|| rt.block_on(r.postings(black_box("__name__"), black_box("node_metric_7"))))
    });
    c.bench_function("postings job=node (9000 refs)", |b| {
        b.iter(|| rt.block_on(r.postings(black_box("job"), black_box("node"))))
    });
    let matchers = [
        Matcher::equal("__name__", "node_metric_47"),
        Matcher::equal("job", "node"),
        Matcher::regex("instance", "host-1:9100|host-2:9100").expect("regex"),
    ];
    let hits = rt
        .block_on(r.postings_for_matchers(&matchers))
        .expect("select");
    assert_eq!(hits.len(), 22);
    c.bench_function(
        "postings_for_matchers {__name__=x, job=y, instance=~a|b}",
        |b| b.iter(|| rt.block_on(r.postings_for_matchers(black_box(&matchers)))),
    );
    let scan = [
        Matcher::equal("__name__", "node_metric_47"),
        Matcher::regex("instance", "host-1.*").expect("regex"),
        Matcher::not_equal("mode", "idle"),
    ];
    c.bench_function(
        "postings_for_matchers {__name__=x, instance=~\"host-1.*\", mode!=idle}",
        |b| b.iter(|| rt.block_on(r.postings_for_matchers(black_box(&scan)))),
    );
    let mid = all[all.len() / 2];
    c.bench_function("series(ref)", |b| {
        b.iter(|| rt.block_on(r.series(black_box(mid))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
