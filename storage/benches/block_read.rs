//! Reading one series' chunks from a block on local disk: index lookup, chunk reads by range,
//! XOR decode. 10,000 series of 480 samples (2 h at 15 s, 4 chunks each).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use storage::block::{write_block, Block, BlockWriterOptions};
use storage::labels::Labels;
use storage::matcher::Matcher;

const SERIES: usize = 10_000;
const SAMPLES: i64 = 480;

fn bench_block_read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..SERIES)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", format!("node_metric_{}", i % 50)),
                ("instance", format!("host-{}:9100", i / 50)),
                ("job", "node".to_string()),
            ]);
            let samples = (0..SAMPLES)
                .map(|k| (k * 15_000, (k * (i as i64 % 7 + 1)) as f64))
                .collect();
            (labels, samples)
        })
        .collect();
    let (dir, _) =
        write_block(tmp.path(), series, None, BlockWriterOptions::default()).expect("write block");
    let block = rt.block_on(Block::open_dir(&dir)).expect("open block");
    let matchers = [
        Matcher::equal("__name__", "node_metric_7"),
        Matcher::equal("instance", "host-123:9100"),
    ];
    let refs = rt
        .block_on(block.index().postings_for_matchers(&matchers))
        .expect("postings");
    assert_eq!(refs.len(), 1);

    let mut group = c.benchmark_group("block_read");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    group.bench_function("one_series_all_chunks_decoded", |b| {
        b.iter(|| {
            let s = rt
                .block_on(block.series_samples(refs[0], i64::MIN, i64::MAX))
                .expect("read");
            black_box(s.samples.len())
        })
    });
    group.bench_function("select_by_matchers_then_decode", |b| {
        b.iter(|| {
            let s = rt
                .block_on(block.select(&matchers, i64::MIN, i64::MAX))
                .expect("select");
            black_box(s.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_block_read);
criterion_main!(benches);
