//! XOR chunk encode and decode, per sample, for three series shapes: 120 samples per chunk at
//! 15 s intervals (Prometheus' target chunk size).
//!
//! Goals (issue 2): decode at most 1.5 / 4 / 8 ns per sample for constant / counter / random.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use storage::chunkenc::{decode_xor, XorAppender, XorIterator};

const SAMPLES: usize = 120;
const T0: i64 = 1_700_000_000_000;

fn shapes() -> Vec<(&'static str, Vec<(i64, f64)>)> {
    let mut rng = StdRng::seed_from_u64(42);
    let ts = |i: usize| T0 + i as i64 * 15_000;
    let constant = (0..SAMPLES).map(|i| (ts(i), 42.0)).collect();
    let mut c = 1000.0;
    let counter = (0..SAMPLES)
        .map(|i| {
            c += f64::from(rng.random_range(0u32..=5));
            (ts(i), c)
        })
        .collect();
    let random = (0..SAMPLES)
        .map(|i| (ts(i), rng.random::<f64>() * 1e6))
        .collect();
    vec![
        ("constant", constant),
        ("counter", counter),
        ("random", random),
    ]
}

fn encode(samples: &[(i64, f64)]) -> storage::chunkenc::Chunk {
    let mut a = XorAppender::new();
    for &(t, v) in samples {
        // The count never reaches the 65535 limit here.
        let _ = a.append(t, v);
    }
    a.finish()
}

fn bench_xor(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor");
    g.throughput(Throughput::Elements(SAMPLES as u64));
    for (name, samples) in shapes() {
        let chunk = encode(&samples);
        assert_eq!(decode_xor(&chunk.data).ok().as_deref(), Some(&samples[..]));
        g.bench_with_input(BenchmarkId::new("encode", name), &samples, |b, s| {
            b.iter(|| encode(black_box(s)))
        });
        g.bench_with_input(BenchmarkId::new("decode", name), &chunk.data, |b, d| {
            b.iter(|| {
                // Integer folds: a float sum would add its 3-cycle latency to every sample.
                let (mut ts, mut vs) = (0i64, 0u64);
                for s in XorIterator::new(black_box(d)) {
                    match s {
                        Ok((t, v)) => {
                            ts = ts.wrapping_add(t);
                            vs ^= v.to_bits();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                (ts, vs)
            })
        });
        g.bench_with_input(
            BenchmarkId::new("decode_batches", name),
            &chunk.data,
            |b, d| {
                b.iter(|| {
                    let (mut ts, mut vs) = (0i64, 0u64);
                    let mut it = XorIterator::new(black_box(d));
                    while let Ok(Some(batch)) = it.next_batch() {
                        for &(t, v) in batch {
                            ts = ts.wrapping_add(t);
                            vs ^= v.to_bits();
                        }
                    }
                    (ts, vs)
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("decode_vec", name), &chunk.data, |b, d| {
            b.iter(|| decode_xor(black_box(d)))
        });
        let mut out = Vec::with_capacity(SAMPLES);
        g.bench_with_input(
            BenchmarkId::new("decode_into", name),
            &chunk.data,
            |b, d| {
                b.iter(|| {
                    out.clear();
                    let r = XorIterator::new(black_box(d)).decode_into(&mut out);
                    (r.is_ok(), out.len())
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_xor);
criterion_main!(benches);
