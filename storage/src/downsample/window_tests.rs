#![allow(clippy::unwrap_used)]
//! Cases from Thanos' `pkg/compact/downsample/downsample_test.go` (inputs and expected
//! aggregates copied as data), plus windows computed by hand.

use super::*;
use crate::chunkenc::STALE_NAN_BITS;
use std::collections::BTreeMap;

type Aggrs = BTreeMap<AggrType, Vec<(i64, f64)>>;

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// What Thanos' test reads back: per output chunk, the samples of each aggregate present.
fn read_back(chunks: &[AggrChunkMeta]) -> Vec<Aggrs> {
    chunks
        .iter()
        .map(|c| {
            let mut m = Aggrs::new();
            for a in AggrType::ALL {
                match c.chunk.samples(a) {
                    Ok(s) => {
                        let mut out = Vec::new();
                        expand_xor(&s, &mut out);
                        m.insert(a, out);
                    }
                    Err(AggrError::NotExist(_)) => {}
                    Err(e) => panic!("{a}: {e}"),
                }
            }
            m
        })
        .collect()
}

fn aggrs(
    count: &[(i64, f64)],
    sum: &[(i64, f64)],
    min: &[(i64, f64)],
    max: &[(i64, f64)],
    counter: &[(i64, f64)],
) -> Aggrs {
    let mut m = Aggrs::new();
    for (a, s) in [
        (AggrType::Count, count),
        (AggrType::Sum, sum),
        (AggrType::Min, min),
        (AggrType::Max, max),
        (AggrType::Counter, counter),
    ] {
        if !s.is_empty() {
            m.insert(a, s.to_vec());
        }
    }
    m
}

/// Raw chunks as Thanos' `Downsample` sees them: each chunk expanded, then all downsampled.
fn raw(chunks: &[&[(i64, f64)]], resolution: i64) -> Vec<AggrChunkMeta> {
    let mut all = Vec::new();
    for c in chunks {
        expand_xor(c, &mut all);
    }
    downsample_raw(&all, resolution).unwrap()
}

/// An aggregate chunk holding exactly these samples per aggregate.
fn encode(m: &Aggrs) -> AggrChunk {
    let chunks: Vec<Option<Chunk>> = AggrType::ALL
        .iter()
        .map(|a| {
            m.get(a).map(|s| {
                let mut app = XorAppender::new();
                for &(t, v) in s {
                    app.append(t, v).unwrap();
                }
                app.finish()
            })
        })
        .collect();
    AggrChunk::encode(std::array::from_fn(|i| chunks[i].as_ref()))
}

fn aggr(chunks: &[Aggrs], mint: i64, maxt: i64, in_res: i64, out_res: i64) -> Vec<AggrChunkMeta> {
    let encoded: Vec<AggrChunk> = chunks.iter().map(encode).collect();
    downsample_aggr(&encoded, mint, maxt, in_res, out_res).unwrap()
}

#[test]
fn current_window_ends_one_before_the_next_multiple() {
    assert_eq!(current_window(20, 100), 99);
    assert_eq!(current_window(99, 100), 99);
    assert_eq!(current_window(100, 100), 199);
    assert_eq!(
        current_window(1_587_690_005_791, 300_000),
        1_587_690_299_999
    );
}

#[test]
fn target_chunk_count_keeps_about_140_samples_per_chunk() {
    // Two days of 15s samples at 5m: 576 windows -> 5 chunks (576/5 = 115 <= 140 < 576/4).
    let two_days = 48 * 3_600_000;
    assert_eq!(target_chunk_count(0, two_days, 60_000, 300_000, 11_520), 5);
    // A sparse series needs one chunk.
    assert_eq!(target_chunk_count(0, two_days, 60_000, 300_000, 10), 1);
    // An empty or instant range never divides by zero into a hang.
    assert_eq!(target_chunk_count(5, 5, 60_000, 300_000, 3), 1);
    assert_eq!(target_chunk_count(0, two_days, 60_000, 300_000, 0), 1);
    // Extreme ranges end in closed form rather than counting up.
    assert!(target_chunk_count(i64::MIN, i64::MAX, 1, 1, usize::MAX) >= 1);
}

#[test]
fn thanos_single_raw_chunk() {
    let input = [
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 1.0),
        (100, 2.0),
        (101, stale()),
        (120, 5.0),
        (180, 10.0),
        (250, 1.0),
    ];
    let got = read_back(&raw(&[&input], 100));
    let want = aggrs(
        &[(99, 4.0), (199, 3.0), (250, 1.0)],
        &[(99, 7.0), (199, 17.0), (250, 1.0)],
        &[(99, 1.0), (199, 2.0), (250, 1.0)],
        &[(99, 3.0), (199, 10.0), (250, 1.0)],
        &[(20, 1.0), (99, 4.0), (199, 13.0), (250, 14.0), (250, 1.0)],
    );
    assert_eq!(got, vec![want]);
}

#[test]
fn thanos_three_raw_chunks_with_stale_markers() {
    let c1 = [
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 1.0),
        (100, 2.0),
        (101, stale()),
        (120, 5.0),
        (180, 10.0),
        (250, 2.0),
    ];
    let c2 = [
        (260, 1.0),
        (300, 10.0),
        (340, 15.0),
        (380, 25.0),
        (420, 35.0),
    ];
    let c3 = [(460, stale()), (500, 10.0), (540, 3.0)];
    let got = read_back(&raw(&[&c1, &c2, &c3], 100));
    let want = aggrs(
        &[
            (99, 4.0),
            (199, 3.0),
            (299, 2.0),
            (399, 3.0),
            (499, 1.0),
            (540, 2.0),
        ],
        &[
            (99, 7.0),
            (199, 17.0),
            (299, 3.0),
            (399, 50.0),
            (499, 35.0),
            (540, 13.0),
        ],
        &[
            (99, 1.0),
            (199, 2.0),
            (299, 1.0),
            (399, 10.0),
            (499, 35.0),
            (540, 3.0),
        ],
        &[
            (99, 3.0),
            (199, 10.0),
            (299, 2.0),
            (399, 25.0),
            (499, 35.0),
            (540, 10.0),
        ],
        &[
            (20, 1.0),
            (99, 4.0),
            (199, 13.0),
            (299, 16.0),
            (399, 40.0),
            (499, 50.0),
            (540, 63.0),
            (540, 3.0),
        ],
    );
    assert_eq!(got, vec![want]);
}

#[test]
fn thanos_first_chunk_all_nan_is_skipped() {
    let nan = f64::from_bits(0x7ff8_0000_0000_0001);
    let c1 = [
        (20, nan),
        (40, nan),
        (100, f64::NAN),
        (101, stale()),
        (180, nan),
        (250, nan),
    ];
    let c2 = [
        (260, 1.0),
        (300, 10.0),
        (340, 15.0),
        (380, 25.0),
        (420, 35.0),
    ];
    let c3 = [(460, stale()), (500, 10.0), (540, 3.0)];
    let got = read_back(&raw(&[&c1, &c2, &c3], 100));
    let want = aggrs(
        &[(299, 1.0), (399, 3.0), (499, 1.0), (540, 2.0)],
        &[(299, 1.0), (399, 50.0), (499, 35.0), (540, 13.0)],
        &[(299, 1.0), (399, 10.0), (499, 35.0), (540, 3.0)],
        &[(299, 1.0), (399, 25.0), (499, 35.0), (540, 10.0)],
        &[
            (260, 1.0),
            (299, 1.0),
            (399, 25.0),
            (499, 35.0),
            (540, 48.0),
            (540, 3.0),
        ],
    );
    assert_eq!(got, vec![want]);
}

#[test]
fn hand_computed_5m_windows_with_a_counter_reset() {
    // One sample a minute for ten minutes; the counter resets from 7 to 2 at minute 7.
    let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 2.0, 3.0, 4.0];
    let input: Vec<(i64, f64)> = (0..10).map(|i| (i * 60_000, values[i as usize])).collect();
    let out = downsample_raw(&input, 300_000).unwrap();
    assert_eq!(out.len(), 1);
    // Windows [0, 299999] and [300000, 599999], the second ending at the last sample.
    assert_eq!((out[0].min_time, out[0].max_time), (299_999, 540_000));
    let want = aggrs(
        &[(299_999, 5.0), (540_000, 5.0)],
        &[(299_999, 15.0), (540_000, 22.0)],
        &[(299_999, 1.0), (540_000, 2.0)],
        &[(299_999, 5.0), (540_000, 7.0)],
        // 1..5 is +4 from the first value; 6, 7 add 2; the reset adds 2; 3, 4 add 2.
        &[(0, 1.0), (299_999, 5.0), (540_000, 11.0), (540_000, 4.0)],
    );
    assert_eq!(read_back(&out), vec![want]);
}

fn thanos_aggr_chunk_1() -> Aggrs {
    let pts = [
        (199, 5.0),
        (299, 1.0),
        (399, 10.0),
        (400, 3.0),
        (499, 10.0),
        (699, 0.0),
        (999, 100.0),
    ];
    let neg = [
        (199, 5.0),
        (299, 1.0),
        (399, 10.0),
        (400, -3.0),
        (499, 10.0),
        (699, 0.0),
        (999, 100.0),
    ];
    aggrs(
        &pts,
        &pts,
        &neg,
        &neg,
        &[
            (99, 100.0),
            (299, 150.0),
            (499, 210.0),
            (499, 10.0),
            (599, 20.0),
            (799, 50.0),
            (999, 120.0),
            (999, 50.0),
            (1099, 40.0),
            (1199, 80.0),
            (1299, 110.0),
        ],
    )
}

#[test]
fn thanos_single_aggregated_chunk() {
    let got = read_back(&aggr(&[thanos_aggr_chunk_1()], 99, 1299, 499, 500));
    let want = aggrs(
        &[(499, 29.0), (999, 100.0)],
        &[(499, 29.0), (999, 100.0)],
        &[(499, -3.0), (999, 0.0)],
        &[(499, 10.0), (999, 100.0)],
        &[
            (99, 100.0),
            (499, 210.0),
            (999, 320.0),
            (1299, 430.0),
            (1299, 110.0),
        ],
    );
    assert_eq!(got, vec![want.clone()]);
    // Downsampling the result again at the same resolution changes nothing.
    assert_eq!(
        read_back(&aggr(std::slice::from_ref(&want), 99, 1299, 499, 500)),
        vec![want]
    );
}

#[test]
fn thanos_two_aggregated_chunks() {
    let pts2 = [
        (1399, 10.0),
        (1400, 3.0),
        (1499, 10.0),
        (1699, 0.0),
        (1999, 100.0),
    ];
    let neg2 = [
        (1399, 10.0),
        (1400, -3.0),
        (1499, 10.0),
        (1699, 0.0),
        (1999, 100.0),
    ];
    let second = aggrs(
        &pts2,
        &pts2,
        &neg2,
        &neg2,
        &[
            (1499, 210.0),
            (1499, 10.0),
            (1599, 20.0),
            (1799, 50.0),
            (1999, 120.0),
            (1999, 50.0),
            (2099, 40.0),
            (2199, 80.0),
            (2299, 110.0),
        ],
    );
    let got = read_back(&aggr(&[thanos_aggr_chunk_1(), second], 99, 2299, 499, 500));
    let want = aggrs(
        &[(499, 29.0), (999, 100.0), (1499, 23.0), (1999, 100.0)],
        &[(499, 29.0), (999, 100.0), (1499, 23.0), (1999, 100.0)],
        &[(499, -3.0), (999, 0.0), (1499, -3.0), (1999, 0.0)],
        &[(499, 10.0), (999, 100.0), (1499, 10.0), (1999, 100.0)],
        &[
            (99, 100.0),
            (499, 210.0),
            (999, 320.0),
            (1499, 530.0),
            (1999, 640.0),
            (2299, 750.0),
            (2299, 110.0),
        ],
    );
    assert_eq!(got, vec![want]);
}

#[test]
fn thanos_realistic_5m_chunk_with_counter_reset_to_1h() {
    let ts = [
        1587690299999i64,
        1587690599999,
        1587690899999,
        1587691199999,
        1587691499999,
        1587691799999,
        1587692099999,
        1587692399999,
        1587692699999,
        1587692999999,
        1587693299999,
        1587693590791,
    ];
    let zip = |vs: [f64; 12]| -> Vec<(i64, f64)> { ts.iter().copied().zip(vs).collect() };
    let count = zip([
        20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 16.0, 20.0, 20.0, 20.0,
    ]);
    let sum = zip([
        9.276972e+06,
        9.359861e+06,
        9.447457e+06,
        9.542732e+06,
        9.630379e+06,
        9.715631e+06,
        9.799808e+06,
        9.888117e+06,
        2.98928e+06,
        81592.0,
        163711.0,
        255746.0,
    ]);
    let min = zip([
        461968.0, 466070.0, 470131.0, 474913.0, 479625.0, 483709.0, 488036.0, 492223.0, 75.0,
        2261.0, 6210.0, 10464.0,
    ]);
    let max = zip([
        465870.0, 469951.0, 474726.0, 479368.0, 483566.0, 487787.0, 492065.0, 496245.0, 496544.0,
        6010.0, 10242.0, 14956.0,
    ]);
    let mut counter = vec![(1587690005791, 461968.0)];
    counter.extend(zip([
        465870.0, 469951.0, 474726.0, 479368.0, 483566.0, 487787.0, 492065.0, 496245.0, 498647.0,
        502554.0, 506786.0, 511500.0,
    ]));
    counter.push((1587693590791, 14956.0));
    let input = aggrs(&count, &sum, &min, &max, &counter);
    let got = read_back(&aggr(
        &[input],
        1587690005791,
        1587693590791,
        300_000,
        3_600_000,
    ));
    let end = 1587693590791;
    let want = aggrs(
        &[(end, 236.0)],
        &[(end, 8.0151286e+07)],
        &[(end, 75.0)],
        &[(end, 496544.0)],
        &[(1587690005791, 461968.0), (end, 511500.0), (end, 14956.0)],
    );
    assert_eq!(got, vec![want]);
}

#[test]
fn thanos_counter_only_chunks_merge_into_one() {
    let inputs: Vec<Aggrs> = (0..4i64)
        .map(|c| {
            let s: Vec<(i64, f64)> = (0..120)
                .map(|i| (c * 120 + i, (c * 120 + i) as f64))
                .collect();
            aggrs(&[], &[], &[], &[], &s)
        })
        .collect();
    let out = aggr(&inputs, 0, 479, 1, 2);
    let mut want = vec![(0, 0.0)];
    want.extend((0..480).step_by(2).map(|i| (1 + i, (1 + i) as f64)));
    want.push((479, 479.0));
    assert_eq!(read_back(&out), vec![aggrs(&[], &[], &[], &[], &want)]);
}

#[test]
fn thanos_counter_boundary_resets_survive_two_levels() {
    let raw_samples = [
        (10, 1.0),
        (20, 3.0),
        (30, 5.0),
        (50, 1.0),
        (60, 8.0),
        (70, 10.0),
        (120, 1.0),
        (130, 18.0),
        (140, 20.0),
        (160, 21.0),
        (170, 38.0),
        (180, 40.0),
    ];
    // More chunks than samples: every chunk holds one window.
    let first = downsample_raw_loop(&raw_samples, 50, raw_samples.len() + 1).unwrap();
    assert_eq!(first.len(), 4);
    let counters = |cs: &[AggrChunkMeta]| -> Vec<(i64, f64)> {
        cs.iter()
            .flat_map(|c| c.chunk.samples(AggrType::Counter).unwrap())
            .collect()
    };
    let iterate = |cs: &[AggrChunkMeta]| -> Vec<(i64, f64)> {
        let mut it = CounterResets::new(
            cs.iter()
                .map(|c| c.chunk.samples(AggrType::Counter).unwrap())
                .collect(),
        );
        std::iter::from_fn(|| it.next()).collect()
    };
    assert_eq!(
        counters(&first),
        vec![
            (10, 1.0),
            (30, 5.0),
            (30, 5.0),
            (50, 1.0),
            (70, 10.0),
            (70, 10.0),
            (120, 1.0),
            (140, 20.0),
            (140, 20.0),
            (160, 21.0),
            (180, 40.0),
            (180, 40.0)
        ]
    );
    assert_eq!(
        iterate(&first),
        vec![
            (10, 1.0),
            (30, 5.0),
            (50, 6.0),
            (70, 15.0),
            (120, 16.0),
            (140, 35.0),
            (160, 36.0),
            (180, 55.0)
        ]
    );
    let chunks: Vec<AggrChunk> = first.iter().map(|c| c.chunk.clone()).collect();
    let second = downsample_aggr_loop(&chunks, 100, 2).unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(
        counters(&second),
        vec![
            (10, 1.0),
            (70, 15.0),
            (70, 10.0),
            (120, 1.0),
            (180, 40.0),
            (180, 40.0)
        ]
    );
    assert_eq!(
        iterate(&second),
        vec![(10, 1.0), (70, 15.0), (120, 16.0), (180, 55.0)]
    );
}

#[test]
fn empty_input_gives_no_chunks_and_empty_aggregates_are_an_error() {
    assert!(downsample_raw(&[], 300_000).unwrap().is_empty());
    let nothing = AggrChunk::encode([None, None, None, None, None]);
    let e = downsample_aggr(&[nothing], 0, 10, 1, 2).unwrap_err();
    assert_eq!(e, WindowError::Empty);
}

#[test]
fn histogram_aggregates_are_refused() {
    let h = Chunk::new(crate::chunkenc::Encoding::FloatHistogram, vec![0u8, 0]);
    let c = AggrChunk::encode([None, None, None, None, Some(&h)]);
    assert_eq!(
        downsample_aggr(&[c], 0, 10, 1, 2).unwrap_err(),
        WindowError::Histogram
    );
}

/// A plain reference computation: per resolution-aligned window, count/sum/min/max.
fn reference(samples: &[(i64, f64)], res: i64) -> BTreeMap<i64, (f64, f64, f64, f64)> {
    let mut m: BTreeMap<i64, (f64, f64, f64, f64)> = BTreeMap::new();
    for &(t, v) in samples {
        let w = t - t % res;
        let e = m.entry(w).or_insert((0.0, 0.0, f64::MAX, f64::MIN));
        e.0 += 1.0;
        e.1 += v;
        e.2 = e.2.min(v);
        e.3 = e.3.max(v);
    }
    m
}

proptest::proptest! {
    #[test]
    fn raw_aggregates_match_a_reference_and_counters_keep_first_and_last(
        start in 0i64..1_000_000,
        steps in proptest::collection::vec((1i64..200_000, -1e6f64..1e6), 1..600),
    ) {
        let mut t = start;
        let mut samples = Vec::new();
        for (dt, v) in steps {
            samples.push((t, v.round()));
            t += dt;
        }
        let out = downsample_raw(&samples, 300_000).unwrap();
        let want = reference(&samples, 300_000);
        let mut got = BTreeMap::new();
        let mut prev_max = i64::MIN;
        for c in &out {
            proptest::prop_assert!(c.min_time > prev_max, "chunks overlap");
            prev_max = c.max_time;
            let count = c.chunk.samples(AggrType::Count).unwrap();
            let sum = c.chunk.samples(AggrType::Sum).unwrap();
            let min = c.chunk.samples(AggrType::Min).unwrap();
            let max = c.chunk.samples(AggrType::Max).unwrap();
            for i in 0..count.len() {
                let w = count[i].0 - count[i].0 % 300_000;
                got.insert(w, (count[i].1, sum[i].1, min[i].1, max[i].1));
            }
            let counter = c.chunk.samples(AggrType::Counter).unwrap();
            proptest::prop_assert_eq!(counter.len(), count.len() + 2);
        }
        proptest::prop_assert_eq!(got, want);
        let first_counter = out[0].chunk.samples(AggrType::Counter).unwrap()[0];
        proptest::prop_assert_eq!(first_counter, samples[0]);
        let last = out.last().unwrap().chunk.samples(AggrType::Counter).unwrap();
        proptest::prop_assert_eq!(last.last().unwrap().1, samples.last().unwrap().1);
    }
}

proptest::proptest! {
    #[test]
    fn two_levels_match_a_reference_at_one_hour_and_keep_counter_totals(
        start in 0i64..10_000_000,
        steps in proptest::collection::vec((1i64..900_000, 0u32..1000, proptest::bool::weighted(0.05)), 1..1500),
    ) {
        let (mut t, mut v) = (start, 0.0);
        let mut samples = Vec::new();
        for (dt, inc, reset) in steps {
            v = if reset { f64::from(inc) } else { v + f64::from(inc) };
            samples.push((t, v));
            t += dt;
        }
        let five = downsample_raw(&samples, 300_000).unwrap();
        let chunks: Vec<AggrChunk> = five.iter().map(|c| c.chunk.clone()).collect();
        let (mint, maxt) = (five[0].min_time, five[five.len() - 1].max_time);
        let hour = downsample_aggr(&chunks, mint, maxt, 300_000, 3_600_000).unwrap();
        let mut got = BTreeMap::new();
        for c in &hour {
            let [count, sum, min, max] = [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max]
                .map(|a| c.chunk.samples(a).unwrap());
            for i in 0..count.len() {
                let w = count[i].0 - count[i].0 % 3_600_000;
                got.insert(w, (count[i].1, sum[i].1, min[i].1, max[i].1));
            }
        }
        proptest::prop_assert_eq!(got, reference(&samples, 3_600_000));
        // Resets applied across the hour chunks give the raw counter's final total.
        let mut total = 0.0;
        let mut last: Option<f64> = None;
        for &(_, v) in &samples {
            total += match last { Some(l) if v >= l => v - l, _ => v };
            last = Some(v);
        }
        let applied = apply_counter_resets(
            hour.iter().map(|c| c.chunk.samples(AggrType::Counter).unwrap()).collect(),
        );
        proptest::prop_assert_eq!(applied.last().map(|s| s.1), Some(total));
        proptest::prop_assert_eq!(applied.first().copied(), samples.first().copied());
    }
}
