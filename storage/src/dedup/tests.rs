use super::penalty::{picks, Side};
use super::*;
use proptest::prelude::*;

const SCRAPE: i64 = 15_000;

/// The true counter at real time `t` ms: rate 10/s ± 5/s (a sine over 10 min), starting at
/// 1e6 so that a fake reset would show up as a huge increase; reset to 0 at `reset`.
fn truth(t: i64, reset: Option<i64>) -> f64 {
    let c = |t: i64| {
        let s = t as f64 / 1000.0;
        let w = std::f64::consts::TAU / 600.0;
        1e6 + 10.0 * s + 5.0 * (1.0 - (w * s).cos()) / w
    };
    match reset {
        Some(r) if t >= r => c(t) - c(r),
        _ => c(t),
    }
}

/// A replica's samples: scrapes every 15 s from `phase`, stamped by a clock `skew` ms off,
/// the value read `latency(k)` ms after the scrape starts, none inside `gaps` (real time).
fn replica(
    phase: i64,
    skew: i64,
    latency: &dyn Fn(usize) -> i64,
    gaps: &[(i64, i64)],
    end: i64,
    reset: Option<i64>,
) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    let mut k = 0usize;
    loop {
        let at = phase + k as i64 * SCRAPE;
        if at > end {
            return out;
        }
        if !gaps.iter().any(|&(a, b)| at >= a && at < b) {
            out.push((at + skew, truth(at + latency(k), reset)));
        }
        k += 1;
    }
}

/// Prometheus' view of a counter's increase over a stream: deltas, a drop counted as a reset.
fn increase(s: &[(i64, f64)]) -> (f64, usize) {
    let mut inc = 0.0;
    let mut resets = 0;
    for w in s.windows(2) {
        if w[1].1 < w[0].1 {
            inc += w[1].1;
            resets += 1;
        } else {
            inc += w[1].1 - w[0].1;
        }
    }
    (inc, resets)
}

fn strictly_increasing(s: &[(i64, f64)]) -> bool {
    s.windows(2).all(|w| w[0].0 < w[1].0)
}

#[test]
fn stays_on_one_replica_and_switches_after_a_gap() {
    let a: Vec<_> = [0, 15, 30, 90, 105]
        .iter()
        .map(|&t| (t * 1000, 1.0))
        .collect();
    let b: Vec<_> = [1, 16, 31, 46, 61, 76, 91, 106]
        .iter()
        .map(|&t| (t * 1000, 2.0))
        .collect();
    let p = picks(&a, &b);
    let sides: Vec<Side> = p.iter().map(|x| x.0).collect();
    use Side::*;
    // A until its gap after 30 s (B's penalty skips 46 s), B from 61 s on; never back to A
    // (B keeps its rhythm, so A's penalty keeps growing).
    assert_eq!(sides, vec![A, A, A, B, B, B, B]);
    let out = dedup_samples(vec![a, b], Mode::Plain);
    assert!(strictly_increasing(&out));
    assert_eq!(out[3], (61_000, 2.0));
}

#[test]
fn gauge_mode_keeps_values_as_the_replicas_hold_them() {
    let a = vec![(0, 5.0), (15_000, 4.0)];
    let b = vec![(60_000, 1.0)];
    assert_eq!(
        dedup_samples(vec![a, b], Mode::Plain),
        vec![(0, 5.0), (15_000, 4.0), (60_000, 1.0)]
    );
}

#[test]
fn a_late_replica_causes_no_fake_reset_where_thanos_would_spike() {
    // B stamps 40 s late; A has a gap, so output switches to B, whose values are lower.
    let lat = |_| 0;
    let end = 1_800_000;
    let a = replica(0, 0, &lat, &[(600_000, 700_000)], end, None);
    let b = replica(6_000, 40_000, &lat, &[], end, None);
    let out = dedup_samples(vec![a.clone(), b.clone()], Mode::Counter);
    let (inc, resets) = increase(&out);
    assert_eq!(resets, 0, "{out:?}");
    let real = truth(end, None) - truth(0, None);
    assert!((inc - real).abs() < 15.0 * 80.0, "increase {inc} vs {real}");
    // The plain mode shows the fake reset this test guards against.
    let (plain_inc, plain_resets) = increase(&dedup_samples(vec![a, b], Mode::Plain));
    assert!(
        plain_resets >= 1 && plain_inc > 1e6,
        "{plain_inc} {plain_resets}"
    );
}

#[test]
fn a_real_reset_on_both_replicas_counts_once() {
    let reset = Some(900_000);
    let end = 1_800_000;
    for (skew_b, gap_a) in [
        (30_000, (850_000, 1_000_000)),
        (-30_000, (850_000, 1_000_000)),
        (20_000, (1_200_000, 1_300_000)),
    ] {
        let lat = |k: usize| (k as i64 * 37) % 2000;
        let a = replica(0, 0, &lat, &[gap_a], end, reset);
        let b = replica(7_000, skew_b, &lat, &[(300_000, 400_000)], end, reset);
        let out = dedup_samples(vec![a, b], Mode::Counter);
        let (inc, resets) = increase(&out);
        assert_eq!(resets, 1, "skew {skew_b}: {out:?}");
        let real = truth(900_000, None) - truth(0, None) + truth(end, reset);
        assert!(
            (inc - real).abs() < 15.0 * 100.0,
            "skew {skew_b}: increase {inc} vs {real}"
        );
    }
}

#[test]
fn a_reset_on_one_replica_alone_is_still_a_reset() {
    let a = vec![(0, 100.0), (15_000, 110.0), (30_000, 5.0), (45_000, 15.0)];
    let out = dedup_samples(vec![a.clone(), Vec::new()], Mode::Counter);
    assert_eq!(out, a);
}

#[test]
fn three_replicas_fold_pairwise() {
    let lat = |_| 0;
    let end = 900_000;
    let a = replica(0, 0, &lat, &[(100_000, 300_000)], end, None);
    let b = replica(3_000, -20_000, &lat, &[(250_000, 500_000)], end, None);
    let c = replica(9_000, 35_000, &lat, &[(0, 200_000)], end, None);
    let out = dedup_samples(vec![a, b, c], Mode::Counter);
    assert!(strictly_increasing(&out));
    assert_eq!(increase(&out).1, 0);
}

#[test]
fn stale_markers_pass_through_without_breaking_the_counter() {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let a = vec![(0, 10.0), (15_000, 20.0), (30_000, stale)];
    let b = vec![(50_000, 15.0), (65_000, 25.0)];
    let out = dedup_samples(vec![a, b], Mode::Counter);
    assert_eq!(out[2].1.to_bits(), stale.to_bits());
    let nums: Vec<_> = out.iter().copied().filter(|s| !s.1.is_nan()).collect();
    assert_eq!(increase(&nums).1, 0, "{out:?}");
}

#[test]
fn replica_labels_are_removed_from_the_identity() {
    let l = Labels::from_pairs([("__name__", "up"), ("replica", "A"), ("job", "x")]);
    let got = without_replica_labels(&l, &["replica".to_string()]);
    assert_eq!(got, Labels::from_pairs([("__name__", "up"), ("job", "x")]));
    assert_eq!(without_replica_labels(&l, &[]), l);
}

fn arb_stream() -> impl Strategy<Value = Vec<(i64, f64)>> {
    prop::collection::btree_map(0i64..100_000, -10.0f64..10.0, 0..40)
        .prop_map(|m| m.into_iter().collect())
}

fn arb_gaps() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((0i64..3_000_000, 20_000i64..300_000), 0..3)
        .prop_map(|v| v.into_iter().map(|(a, l)| (a, a + l)).collect())
}

proptest! {
    #[test]
    fn output_timestamps_strictly_increase(a in arb_stream(), b in arb_stream(), counter: bool) {
        let mode = if counter { Mode::Counter } else { Mode::Plain };
        prop_assert!(strictly_increasing(&dedup_samples(vec![a, b], mode)));
    }

    #[test]
    fn identical_replicas_give_one_replica(a in arb_stream(), counter: bool) {
        let mode = if counter { Mode::Counter } else { Mode::Plain };
        prop_assert_eq!(dedup_samples(vec![a.clone(), a.clone()], mode), a);
    }

    #[test]
    fn a_gap_on_one_replica_is_filled_from_the_other(
        phase in 0i64..15_000, gap_start in 60_000i64..600_000, gap_len in 60_000i64..300_000,
    ) {
        let lat = |_| 0;
        let end = 1_000_000;
        let gap = (gap_start, gap_start + gap_len);
        let a = replica(0, 0, &lat, &[gap], end, None);
        let b = replica(phase, 0, &lat, &[], end, None);
        let out = dedup_samples(vec![a, b.clone()], Mode::Plain);
        // Inside the gap, output has a sample at least every two scrape intervals, from B.
        let inside: Vec<_> = out.iter().filter(|s| s.0 >= gap.0 && s.0 < gap.1).collect();
        prop_assert!(inside.len() as i64 >= gap_len / SCRAPE - 3, "{} in {gap:?}", inside.len());
        prop_assert!(inside.iter().all(|s| b.contains(s)));
    }

    #[test]
    fn no_fake_resets_for_skewed_latent_replicas_with_gaps(
        skew_a in -40_000i64..40_000, skew_b in -40_000i64..40_000,
        phase in 0i64..15_000, jitter in 0i64..3_000, seed in 0i64..1000,
        gaps_a in arb_gaps(), gaps_b in arb_gaps(), reset_at in prop::option::of(300_000i64..3_000_000),
    ) {
        let end = 3_600_000;
        let lat = |k: usize| if jitter == 0 { 0 } else { (k as i64 * 7919 + seed) % jitter };
        let a = replica(0, skew_a, &lat, &gaps_a, end, reset_at);
        let b = replica(phase, skew_b, &lat, &gaps_b, end, reset_at);
        let out = dedup_samples(vec![a, b], Mode::Counter);
        prop_assert!(strictly_increasing(&out));
        let (inc, resets) = increase(&out);
        if reset_at.is_none() {
            prop_assert_eq!(resets, 0, "{:?}", out);
        } else {
            prop_assert!(resets <= 2, "{} resets", resets);
        }
        // The real increase between the first and the last sample's real times, within what
        // skew, latency and the gaps can move it (a fake reset would add about 1e6).
        let real_t = |t: i64| t; // stamps are within 40 s of real time
        let (t0, t1) = (real_t(out[0].0), real_t(out[out.len() - 1].0));
        let real = match reset_at {
            Some(r) if r > t0 && r <= t1 => truth(r, None) - truth(t0, None) + truth(t1, reset_at),
            _ => truth(t1, reset_at) - truth(t0, reset_at),
        };
        let slack = 15.0 * (80.0 + 3.0 * 15.0 + 3.0) * (1.0 + resets as f64)
            + if reset_at.is_some() { 15.0 * 400.0 } else { 0.0 };
        prop_assert!((inc - real).abs() < slack, "increase {} vs real {} (slack {})", inc, real, slack);
    }
}
