//! Quantiles: `histogram_quantile` over classic `le` buckets, and the sample quantile used by
//! the `quantile` aggregator and `quantile_over_time` (Prometheus 2.42's `quantile.go`).

use std::cmp::Ordering;

/// `histogram_quantile` over classic buckets `(upper bound, cumulative count)` in any order.
///
/// Sorts the buckets by bound (in place), requires a `+Inf` bucket (else NaN), merges buckets
/// with equal bounds by adding their counts, and lifts any count lower than a previous one
/// (2.42's monotonicity envelope). Then interpolates linearly inside the bucket holding rank
/// `q * total`: the lowest bucket starts at 0 unless its upper bound is `<= 0` (then that
/// bound is the answer), and a rank in the `+Inf` bucket answers the second-highest bound.
/// NaN when `q` is NaN, with no buckets, fewer than two distinct bounds or no observations;
/// `-Inf` for `q < 0`, `+Inf` for `q > 1`.
pub fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    match buckets.last() {
        Some(&(le, _)) if le == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce(buckets);
    ensure_monotonic(buckets);

    let n = buckets.len();
    if n < 2 {
        return f64::NAN;
    }
    let observations = buckets[n - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // First bucket among all but +Inf whose count reaches the rank (Go's sort.Search).
    let b = buckets[..n - 1].partition_point(|&(_, count)| count < rank);
    if b == n - 1 {
        return buckets[n - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (bucket_end, mut count) = buckets[b];
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Merges adjacent buckets (sorted by bound) that share an upper bound, adding their counts.
fn coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}

/// Raises each count to the highest count seen in a lower bucket.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) {
    let Some(&(_, mut max)) = buckets.first() else {
        return;
    };
    for bucket in buckets.iter_mut().skip(1) {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
}

/// The `q`-quantile of `values` (sorted in place): rank `q * (n - 1)` with linear
/// interpolation between neighbours. NaN values sort below every number, as Prometheus'
/// heap ordering puts them. NaN for no values or a NaN `q`; `-Inf` for `q < 0`, `+Inf` for
/// `q > 1`.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(nan_first);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    // Both indexes are in [0, n-1] because 0 <= q <= 1.
    let (lo, hi) = (lower as usize, upper as usize);
    values[lo] * (1.0 - weight) + values[hi] * weight
}

/// Orders NaN before all numbers; numbers by value (so -0 and +0 are equal).
fn nan_first(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bq(q: f64, buckets: &[(f64, f64)]) -> f64 {
        bucket_quantile(q, &mut buckets.to_vec())
    }

    const INF: f64 = f64::INFINITY;

    fn close(got: f64, want: f64) -> bool {
        got == want || (got - want).abs() <= 1e-9 * want.abs().max(1e-9)
    }

    #[test]
    fn histograms_test_positive_and_negative_lowest_buckets() {
        // histograms.test at 50m: testhistogram{start="positive"} and {start="negative"}.
        let pos = [(0.1, 50.0), (0.2, 70.0), (1.0, 110.0), (INF, 120.0)];
        let neg = [(-0.2, 10.0), (-0.1, 20.0), (0.3, 20.0), (INF, 30.0)];
        for (q, want_pos, want_neg) in [
            (0.0, 0.0, -0.2),
            (1.0, 1.0, 0.3),
            (0.2, 0.048, -0.2),
            (0.5, 0.15, -0.15),
            (0.8, 0.72, 0.3),
        ] {
            assert!(
                close(bq(q, &pos), want_pos),
                "positive q={q}: {}",
                bq(q, &pos)
            );
            assert!(
                close(bq(q, &neg), want_neg),
                "negative q={q}: {}",
                bq(q, &neg)
            );
        }
    }

    #[test]
    fn histograms_test_middle_of_bucket() {
        // histograms.test at 7m: testhistogram2 0:0, 2:1, 4:2, 6:3, +Inf:3.
        let b = [(0.0, 0.0), (2.0, 1.0), (4.0, 2.0), (6.0, 3.0), (INF, 3.0)];
        assert!(close(bq(1. / 6., &b), 1.0));
        assert!(close(bq(0.5, &b), 3.0));
        assert!(close(bq(5. / 6., &b), 5.0));
    }

    #[test]
    fn histograms_test_nonmonotonic_buckets() {
        // histograms.test at 50m: nonmonotonic_bucket 20, 10, 50, 40, 90, 80.
        let b = [
            (0.1, 20.0),
            (1.0, 10.0),
            (10.0, 50.0),
            (100.0, 40.0),
            (1000.0, 90.0),
            (INF, 80.0),
        ];
        assert!(close(bq(0.01, &b), 0.0045));
        assert!(close(bq(0.5, &b), 8.5));
        assert!(close(bq(0.99, &b), 979.75));
    }

    #[test]
    fn histograms_test_equal_bounds_in_other_spellings_are_merged() {
        // mixed_bucket rate at 50m: 0.1, 0.2 three times, +Inf; rates 1/300 each, +Inf 4/300.
        let r = 1.0 / 300.0;
        let b = [(0.1, r), (0.2, r), (0.2, r), (0.2, r), (INF, 4.0 * r)];
        assert!(close(bq(0.5, &b), 0.15));
        assert!(close(bq(0.75, &b), 0.2));
        assert!(close(bq(1.0, &b), 0.2));
        // ins2: +inf and +Inf, both zero.
        assert!(bq(0.5, &[(INF, 0.0), (INF, 0.0)]).is_nan());
    }

    #[test]
    fn q_out_of_range_and_nan() {
        let b = [(1.0, 1.0), (INF, 2.0)];
        assert_eq!(bq(-0.1, &b), f64::NEG_INFINITY);
        assert_eq!(bq(1.1, &b), INF);
        assert!(bq(f64::NAN, &b).is_nan());
        assert!(quantile(f64::NAN, &mut [1.0]).is_nan());
    }

    #[test]
    fn missing_inf_bucket_or_no_observations_is_nan() {
        assert!(bq(0.5, &[(1.0, 1.0), (2.0, 2.0)]).is_nan());
        assert!(bq(0.5, &[(1.0, 0.0), (INF, 0.0)]).is_nan());
        assert!(bq(0.5, &[(INF, 5.0)]).is_nan());
        assert!(bq(0.5, &[]).is_nan());
    }

    #[test]
    fn unsorted_and_duplicate_bounds_are_sorted_and_merged() {
        // Two series with the same le (after dropping distinguishing labels) add up.
        let b = [(INF, 6.0), (1.0, 2.0), (INF, 4.0), (1.0, 3.0)];
        // Merged: 1.0:5, +Inf:10; rank 2.5 lies in the first bucket -> 0.5.
        assert!((bq(0.25, &b) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn non_monotonic_counts_are_lifted() {
        // Probed against Prometheus 2.42: 1:5, 2:10, 4:12, 8:9, +Inf:12 -> q=0.9 gives 2.8.
        let b = [
            (1.0, 5.0),
            (2.0, 10.0),
            (4.0, 12.0),
            (8.0, 9.0),
            (INF, 12.0),
        ];
        assert!((bq(0.9, &b) - 2.8000000000000007).abs() < 1e-12);
        assert!((bq(0.95, &b) - 3.3999999999999986).abs() < 1e-12);
    }

    #[test]
    fn rank_in_inf_bucket_returns_second_highest_bound() {
        let b = [(1.0, 5.0), (2.0, 6.0), (INF, 10.0)];
        assert_eq!(bq(0.9, &b), 2.0);
    }

    #[test]
    fn sample_quantile_matches_functions_test() {
        // functions.test quantile_over_time cases.
        let cases: [(&[f64], f64, f64); 6] = [
            (&[0.0, 1.0], 0.75, 0.75),
            (&[0.0, 1.0, 2.0], 0.8, 1.6),
            (&[0.0, 1.0, 4.0], 0.75, 2.5),
            (&[0.0, 1.0, 4.0], 0.8, 2.8),
            (&[4.0, 0.0, 1.0], 1.0, 4.0),
            (&[4.0, 0.0, 1.0], 0.0, 0.0),
        ];
        for (values, q, want) in cases {
            let got = quantile(q, &mut values.to_vec());
            assert!(
                (got - want).abs() < 1e-12,
                "{values:?} q={q}: {got} != {want}"
            );
        }
        assert!(quantile(0.5, &mut []).is_nan());
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &mut [1.0]), INF);
    }

    #[test]
    fn nan_values_sort_lowest() {
        // Probed against Prometheus 2.42 with quantile_over_time over 3 1 NaN 2 5.
        let v = [3.0, 1.0, f64::NAN, 2.0, 5.0];
        assert!(quantile(0.0, &mut v.to_vec()).is_nan());
        assert_eq!(quantile(0.25, &mut v.to_vec()), 1.0);
        assert_eq!(quantile(0.5, &mut v.to_vec()), 2.0);
    }

    proptest! {
        #[test]
        fn sample_quantile_is_monotonic_in_q(
            mut values in prop::collection::vec(-1e6f64..1e6, 1..40),
            q1 in 0.0f64..=1.0, q2 in 0.0f64..=1.0,
        ) {
            let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            let a = quantile(lo, &mut values);
            let b = quantile(hi, &mut values);
            prop_assert!(a <= b + 1e-9 * b.abs().max(1.0), "q {lo} -> {a}, q {hi} -> {b}");
            let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(a >= min - 1e-9 * min.abs().max(1.0) && b <= max + 1e-9 * max.abs().max(1.0));
        }

        #[test]
        fn bucket_quantile_is_monotonic_in_q(
            increments in prop::collection::vec(0.0f64..100.0, 1..12),
            q1 in 0.0f64..=1.0, q2 in 0.0f64..=1.0,
        ) {
            let mut total = 0.0;
            let mut buckets: Vec<(f64, f64)> = increments.iter().enumerate().map(|(i, inc)| {
                total += inc;
                ((i + 1) as f64, total)
            }).collect();
            buckets.push((INF, total + 1.0));
            let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            let a = bucket_quantile(lo, &mut buckets.clone());
            let b = bucket_quantile(hi, &mut buckets.clone());
            prop_assert!(a <= b + 1e-9, "q {lo} -> {a}, q {hi} -> {b}");
            prop_assert!((0.0..=increments.len() as f64).contains(&a));
        }
    }
}
