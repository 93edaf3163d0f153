#![allow(clippy::unwrap_used)]
//! Merging overlapping aggregate chunks, checked against downsampling the union of the raw
//! samples in one go.

use super::*;
use crate::downsample::window::downsample_raw;
use crate::downsample::RES_5M;

const MIN: i64 = 60_000;
const H: i64 = 60 * MIN;

/// A counter at one-minute samples over `[0, 20h)` with a reset at 2h.
fn raw_counter() -> Vec<(i64, f64)> {
    let mut v = 0.0;
    (0..1200)
        .map(|i| {
            v = if i == 120 { 1.0 } else { v + (i % 5) as f64 };
            (i * MIN, v)
        })
        .collect()
}

fn between(raw: &[(i64, f64)], from: i64, to: i64) -> Vec<AggrChunk> {
    let part: Vec<(i64, f64)> = raw
        .iter()
        .copied()
        .filter(|s| s.0 >= from && s.0 < to)
        .collect();
    downsample_raw(&part, RES_5M)
        .unwrap()
        .into_iter()
        .map(|c| c.chunk)
        .collect()
}

fn never(_: i64) -> bool {
    false
}

fn source(chunks: Vec<AggrChunk>) -> AggrSource<'static> {
    AggrSource {
        chunks,
        deleted: &never,
    }
}

/// One aggregate's value per window across `chunks`; fails on two samples in one window.
fn by_window(chunks: &[AggrChunk], aggr: AggrType) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    for c in chunks {
        for (t, v) in c.samples(aggr).unwrap() {
            let prev = out.insert(current_window(t, RES_5M), v);
            assert!(
                prev.is_none(),
                "{aggr} has two samples in the window of {t}"
            );
        }
    }
    out
}

/// The counter as readers see it (resets applied), its last value per window.
fn counter_by_window(chunks: &[AggrChunk]) -> BTreeMap<i64, f64> {
    let per_chunk = chunks
        .iter()
        .map(|c| c.samples(AggrType::Counter).unwrap())
        .collect();
    apply_counter_resets(per_chunk)
        .into_iter()
        .map(|(t, v)| (current_window(t, RES_5M), v))
        .collect()
}

fn merged(sources: &[AggrSource<'_>]) -> Vec<AggrChunk> {
    let out = merge_aggr(sources, RES_5M).unwrap();
    assert!(out.windows(2).all(|w| w[0].max_time < w[1].min_time));
    out.into_iter().map(|c| c.chunk).collect()
}

#[test]
fn overlapping_sources_give_every_window_once_as_the_union_would() {
    let raw = raw_counter();
    // Overlap from 4h to 12h; the reset at 2h is only in the first source's history.
    let a = between(&raw, 0, 12 * H);
    let b = between(&raw, 4 * H, 20 * H);
    let reference = between(&raw, 0, 20 * H);
    let out = merged(&[source(a), source(b)]);
    for aggr in [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max] {
        assert_eq!(by_window(&out, aggr), by_window(&reference, aggr), "{aggr}");
    }
    assert_eq!(counter_by_window(&out), counter_by_window(&reference));
    // The last chunk ends with the true last raw value, for whatever block follows.
    let last = out.last().unwrap().samples(AggrType::Counter).unwrap();
    assert_eq!(last.last().unwrap().1, raw.last().unwrap().1);
    // 240 windows, at most 120 a chunk.
    assert_eq!(out.len(), 2);
}

#[test]
fn a_source_seen_twice_is_kept_once() {
    let raw = raw_counter();
    let a = between(&raw, 0, 20 * H);
    let out = merged(&[source(a.clone()), source(a.clone())]);
    for aggr in AggrType::ALL {
        let got: Vec<(i64, f64)> = out.iter().flat_map(|c| c.samples(aggr).unwrap()).collect();
        let want: Vec<(i64, f64)> = a.iter().flat_map(|c| c.samples(aggr).unwrap()).collect();
        if aggr == AggrType::Counter {
            // Cut anew, the chunk borders (and so the repeated samples) differ.
            assert_eq!(counter_by_window(&out), counter_by_window(&a));
        } else {
            assert_eq!(got, want, "{aggr}");
        }
    }
}

#[test]
fn the_window_with_more_raw_samples_wins() {
    let raw = raw_counter();
    // The second source saw only every other sample of the first hour.
    let sparse: Vec<(i64, f64)> = raw
        .iter()
        .copied()
        .filter(|s| s.0 < H && (s.0 / MIN) % 2 == 0)
        .collect();
    let thin: Vec<AggrChunk> = downsample_raw(&sparse, RES_5M)
        .unwrap()
        .into_iter()
        .map(|c| c.chunk)
        .collect();
    let full = between(&raw, 0, H);
    let out = merged(&[source(thin), source(full.clone())]);
    assert_eq!(
        by_window(&out, AggrType::Count),
        by_window(&full, AggrType::Count)
    );
    assert_eq!(
        by_window(&out, AggrType::Sum),
        by_window(&full, AggrType::Sum)
    );
}

#[test]
fn deleted_windows_are_left_out() {
    let raw = raw_counter();
    let a = between(&raw, 0, 2 * H);
    let deleted = |t: i64| t < H;
    let out = merged(&[
        AggrSource {
            chunks: a.clone(),
            deleted: &deleted,
        },
        source(between(&raw, H, 2 * H)),
    ]);
    let want: BTreeMap<i64, f64> = by_window(&a, AggrType::Count)
        .into_iter()
        .filter(|(k, _)| *k >= H)
        .collect();
    assert_eq!(by_window(&out, AggrType::Count), want);
}

#[test]
fn histogram_aggregates_are_refused_naming_the_source() {
    let raw = raw_counter();
    let h = Chunk::new(crate::chunkenc::Encoding::FloatHistogram, vec![0u8, 0]);
    let hist = AggrChunk::encode([None, None, None, None, Some(&h)]);
    let e = merge_aggr(&[source(between(&raw, 0, H)), source(vec![hist])], RES_5M).unwrap_err();
    assert_eq!(e.index, Some(1));
    assert_eq!(e.error, WindowError::Histogram);
}
