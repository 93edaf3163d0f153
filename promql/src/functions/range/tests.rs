//! Cases from Prometheus 2.42's functions.test (with their expected numbers) and values
//! probed from a running Prometheus 2.42.

use super::*;

const MIN: i64 = 60_000;
const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

/// Samples `values[k]` at `k * step_ms`, `None` meaning no sample (`_` in test scripts).
fn series(step_ms: i64, values: &[Option<f64>]) -> Vec<(i64, f64)> {
    values
        .iter()
        .enumerate()
        .filter_map(|(k, v)| v.map(|v| (k as i64 * step_ms, v)))
        .collect()
}

fn s(step_ms: i64, values: &[f64]) -> Vec<(i64, f64)> {
    series(
        step_ms,
        &values.iter().map(|&v| Some(v)).collect::<Vec<_>>(),
    )
}

/// `a+bxN`: N+1 values.
fn seq(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..=n).map(|i| a + b * i as f64).collect()
}

/// The closed window `[t - range, t]` of 2.42.
fn window(points: &[(i64, f64)], t: i64, range: i64) -> Vec<(i64, f64)> {
    points
        .iter()
        .copied()
        .filter(|&(ts, _)| ts >= t - range && ts <= t)
        .collect()
}

fn rate_at(points: &[(i64, f64)], t: i64, range: i64, counter: bool, rate: bool) -> Option<f64> {
    extrapolated_rate(&window(points, t, range), t - range, t, counter, rate)
}

/// Prometheus' test comparison: relative error below 1e-6, NaN equals NaN.
#[track_caller]
fn assert_close(got: Option<f64>, want: f64) {
    let Some(got) = got else {
        panic!("no result, want {want}");
    };
    let ok = (got.is_nan() && want.is_nan())
        || got == want
        || (got - want).abs() / (got.abs() + want.abs()) < 1e-6;
    assert!(ok, "got {got}, want {want}");
}

/// Bit-exact agreement with a value Prometheus printed (shortest round-trip form).
#[track_caller]
fn assert_exact(got: Option<f64>, want: f64) {
    let Some(got) = got else {
        panic!("no result, want {want}");
    };
    assert!(
        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
        "got {got:e}, want {want:e}"
    );
}

#[test]
fn resets_and_changes_over_growing_windows() {
    let foo = s(5 * MIN, &[1., 2., 3., 0., 1., 0., 0., 1., 2., 0.]);
    let bar = s(5 * MIN, &[1., 2., 3., 4., 5., 1., 2., 3., 4., 5.]);
    let biz = s(5 * MIN, &[0., 0., 0., 0., 0., 1., 1., 1., 1., 1.]);
    let at = 50 * MIN;
    let cases = [
        (5, [0., 0., 0.], [0., 0., 0.]),
        (20, [1., 0., 0.], [3., 3., 0.]),
        (30, [2., 1., 0.], [4., 5., 1.]),
        (50, [3., 1., 0.], [8., 9., 1.]),
    ];
    for (range_min, want_resets, want_changes) in cases {
        for (i, points) in [&foo, &bar, &biz].into_iter().enumerate() {
            let w = window(points, at, range_min * MIN);
            assert_eq!(
                resets(&w),
                want_resets[i],
                "resets [{range_min}m] series {i}"
            );
            assert_eq!(
                changes(&w),
                want_changes[i],
                "changes [{range_min}m] series {i}"
            );
        }
    }
    assert_eq!(resets(&[]), 0.0);
    assert_eq!(changes(&[(0, 1.0)]), 0.0);
}

#[test]
fn changes_treats_nan_to_nan_as_no_change() {
    assert_eq!(changes(&s(5 * MIN, &[NAN, NAN, NAN])), 0.0);
    assert_eq!(changes(&s(5 * MIN, &[0., NAN, 0.])), 2.0);
    // Probed: 3 1 NaN 2 5 has 4 changes and 1 reset (NaN never compares lower).
    let p = s(10_000, &[3., 1., NAN, 2., 5.]);
    assert_eq!(changes(&p), 4.0);
    assert_eq!(resets(&p), 1.0);
}

#[test]
fn increase_handles_resets_and_needs_no_extrapolation_when_aligned() {
    let foo = s(5 * MIN, &seq(0., 10., 10));
    let mut bar_values = seq(0., 10., 5);
    bar_values.extend(seq(0., 10., 5));
    let bar = s(5 * MIN, &bar_values);
    for range in [50 * MIN, 100 * MIN] {
        assert_close(rate_at(&foo, 50 * MIN, range, true, false), 100.0);
        assert_close(rate_at(&bar, 50 * MIN, range, true, false), 90.0);
    }
    let dip = s(5 * MIN, &[0., 1., 2., 3., 2., 3., 4.]);
    assert_close(rate_at(&dip, 30 * MIN, 30 * MIN, true, false), 7.0);
}

#[test]
fn rate_counts_resets_in_the_middle_and_ignores_none_at_the_end() {
    let mut middle = seq(0., 10., 4);
    middle.extend(seq(0., 10., 5));
    assert_close(
        rate_at(&s(5 * MIN, &middle), 50 * MIN, 50 * MIN, true, true),
        0.03,
    );
    let mut end = seq(0., 10., 9);
    end.extend([0., 10.]);
    assert_close(
        rate_at(&s(5 * MIN, &end), 50 * MIN, 5 * MIN, true, true),
        0.0,
    );
}

#[test]
fn rate_is_per_second_and_honours_offset_windows() {
    let w = s(5 * MIN, &seq(0., 80., 10));
    assert_close(
        rate_at(&w, 50 * MIN, 50 * MIN, true, true),
        0.26666666666666666,
    );
    // rate(x[10m] offset 5m) at 50m: the window ends at 45m.
    let a = s(5 * MIN, &seq(0., 10., 10));
    let b = s(5 * MIN, &seq(0., 20., 10));
    assert_close(
        rate_at(&a, 45 * MIN, 10 * MIN, true, true),
        0.03333333333333333,
    );
    assert_close(
        rate_at(&b, 45 * MIN, 10 * MIN, true, true),
        0.06666666666666667,
    );
}

#[test]
fn counter_extrapolation_stops_at_zero_before_the_threshold_test() {
    // testcounter_zero_cutoff: load 4m, start=Xm means the counter starts at X*60.
    let starts = [0., 60., 120., 180., 240., 300.];
    let at_10m = [0.5, 0.55, 0.6, 0.65, 0.7, 0.6];
    for (start, want) in starts.iter().zip(at_10m) {
        let p = s(4 * MIN, &seq(*start, 240., 10));
        assert_close(rate_at(&p, 10 * MIN, 20 * MIN, true, true), want);
        // Normal half-interval cutoff at 50m.
        assert_close(rate_at(&p, 50 * MIN, 20 * MIN, true, true), 0.6);
    }
}

#[test]
fn delta_extrapolates_gauges_both_ways() {
    let foo = s(5 * MIN, &[0., 50., 100., 150., 200.]);
    let bar = s(5 * MIN, &[200., 150., 100., 50., 0.]);
    assert_close(rate_at(&foo, 20 * MIN, 20 * MIN, false, false), 200.0);
    assert_close(rate_at(&bar, 20 * MIN, 20 * MIN, false, false), -200.0);
}

#[test]
fn extrapolation_to_both_edges_and_by_half_intervals() {
    // Samples at 10s..40s in [0, 60s]: gaps of 10s and 20s, average interval 10s, threshold
    // 11s: extrapolate 10s to the start, only 5s towards the end.
    let p = [(10_000, 1.0), (20_000, 2.0), (30_000, 3.0), (40_000, 4.0)];
    let got = extrapolated_rate(&p, 0, 60_000, false, false);
    assert_close(got, 3.0 * (30.0 + 10.0 + 5.0) / 30.0);
    // A gauge is extrapolated below zero; a counter is not.
    let p = [(30_000, 1.0), (40_000, 3.0), (50_000, 5.0)];
    assert_close(
        extrapolated_rate(&p, 20_000, 60_000, false, false),
        4.0 * 40.0 / 20.0,
    );
    // Counter: zero point is 5s before the first sample, so only 5s are added at the start.
    assert_close(
        extrapolated_rate(&p, 20_000, 60_000, true, false),
        4.0 * 35.0 / 20.0,
    );
}

#[test]
fn rate_needs_two_points() {
    assert_eq!(extrapolated_rate(&[], 0, 60_000, true, true), None);
    assert_eq!(extrapolated_rate(&[(1, 1.0)], 0, 60_000, true, true), None);
}

#[test]
fn irate_and_idelta_use_the_last_two_points() {
    let foo = s(5 * MIN, &seq(0., 10., 10));
    let mut bar_values = seq(0., 10., 5);
    bar_values.extend(seq(0., 10., 5));
    let bar = s(5 * MIN, &bar_values);
    let irate = |p: &[(i64, f64)], t| instant_delta(&window(p, t, 50 * MIN), true);
    assert_close(irate(&foo, 50 * MIN), 0.03333333333333333);
    assert_close(irate(&bar, 50 * MIN), 0.03333333333333333);
    assert_close(irate(&foo, 30 * MIN), 0.03333333333333333);
    assert_close(irate(&bar, 30 * MIN), 0.0);

    let foo = s(5 * MIN, &[0., 50., 100., 150.]);
    let bar = s(5 * MIN, &[0., 50., 100., 50.]);
    assert_close(instant_delta(&foo, false), 50.0);
    assert_close(instant_delta(&bar, false), -50.0);
    assert_eq!(instant_delta(&foo[..1], false), None);
    assert_eq!(instant_delta(&[(5, 1.0), (5, 2.0)], true), None);
}

#[test]
fn deriv_and_predict_linear_match_functions_test() {
    let mut middle = seq(0., 10., 4);
    middle.extend(seq(0., 10., 5));
    let p = window(&s(5 * MIN, &middle), 50 * MIN, 100 * MIN);
    assert_close(deriv(&p), 0.010606060606060607);
    assert_close(predict_linear(&p, 50 * MIN, 3600.0), 76.81818181818181);
    assert_close(predict_linear(&p, 10 * MIN, 3600.0), 51.36363636363637);
    assert_close(predict_linear(&p, 70 * MIN, 3600.0), 89.54545454545455);
    let linear = window(&s(5 * MIN, &seq(0., 80., 10)), 50 * MIN, 50 * MIN);
    assert_close(deriv(&linear), 0.26666666666666666);
    // The line passes through the last sample, so predict_linear = last + deriv * 3600.
    assert_close(
        predict_linear(&linear, 50 * MIN, 3600.0),
        800.0 + 0.26666666666666666 * 3600.0,
    );
}

#[test]
fn regression_of_constant_series() {
    let c = [(0, 5.0), (1000, 5.0), (2000, 5.0)];
    assert_eq!(deriv(&c), Some(0.0));
    assert_eq!(predict_linear(&c, 2000, 100.0), Some(5.0));
    let inf = [(0, INF), (1000, INF)];
    assert!(deriv(&inf).is_some_and(f64::is_nan));
    assert_eq!(deriv(&c[..1]), None);
    assert_eq!(predict_linear(&[], 0, 1.0), None);
}

#[test]
fn holt_winters_follows_linear_trends() {
    // functions.test: load 10s, evaluated at 8000s over [1m], sf=0.01, tf=0.1.
    let step = 10_000;
    let at = 8_000_000;
    let mut up = seq(0., 10., 1000);
    up.extend(seq(100., 30., 1000));
    let cases: [(Vec<f64>, f64); 4] = [
        (up, 8000.0),
        (seq(0., 40., 2000), 32000.0),
        (seq(8000., -10., 1000), 0.0),
        (seq(0., -20., 1000), -16000.0),
    ];
    for (values, want) in cases {
        let w = window(&s(step, &values), at, MIN);
        assert_close(holt_winters(&w, 0.01, 0.1).ok().flatten(), want);
    }
}

#[test]
fn holt_winters_rejects_factors_outside_zero_one_like_prometheus() {
    let p = [(0, 1.0), (1000, 2.0)];
    assert_eq!(
        holt_winters(&p, 2.0, 0.5),
        Err("invalid smoothing factor. Expected: 0 < sf < 1, got: 2.000000".to_string())
    );
    assert_eq!(
        holt_winters(&p, 0.5, 0.0),
        Err("invalid trend factor. Expected: 0 < tf < 1, got: 0.000000".to_string())
    );
    assert!(holt_winters(&p[..1], 1.0, 0.5).is_err());
    assert_eq!(holt_winters(&p[..1], 0.5, 0.5), Ok(None));
    // NaN passes Go's `sf <= 0 || sf >= 1` check.
    assert!(holt_winters(&p, NAN, 0.5).is_ok_and(|v| v.is_some_and(f64::is_nan)));
    assert!(holt_winters(&p, 0.5, -INF).is_err_and(|e| e.ends_with("got: -Inf")));
}

#[test]
#[allow(clippy::excessive_precision)] // the literal is copied from functions.test
fn avg_and_sum_over_time_infinities_and_overflow() {
    let big = 9.988465674311579e+307;
    let cases: [(&[f64], f64, f64); 14] = [
        (&[1., 2., 3., 4., 5.], 3.0, 15.0),
        (&[1., 2., 3., 4., INF], INF, INF),
        (&[1., 2., 3., 4., -INF], -INF, -INF),
        (&[1., 2., 3., INF, -INF], NAN, NAN),
        (&[INF, 0., INF], INF, INF),
        (&[INF, INF, INF, -INF], NAN, NAN),
        (&[1., 2., 3., -INF, -INF], -INF, -INF),
        (&[-INF, 0., -INF], -INF, -INF),
        (&[-INF, -INF, -INF, INF], NAN, NAN),
        (&[1., 2., -INF, -INF, INF], NAN, NAN),
        (&[big, big], big, INF),
        (&[-big, -big, -big], -big, -INF),
        (&[-big, big], 0.0, 0.0),
        (&[NAN, 1.0], NAN, NAN),
    ];
    for (values, want_avg, want_sum) in cases {
        let p = s(10_000, values);
        assert_close(avg_over_time(&p), want_avg);
        assert_close(sum_over_time(&p), want_sum);
        assert_close(count_over_time(&p), values.len() as f64);
    }
}

#[test]
fn stddev_and_stdvar_over_time() {
    let p = s(10_000, &[0., 8., 8., 2., 3.]);
    assert_close(stdvar_over_time(&p), 10.56);
    assert_close(stddev_over_time(&p), 3.249615);
    let same = s(10_000, &[1.5990505637277868; 3]);
    assert_exact(stdvar_over_time(&same), 0.0);
    assert_exact(stddev_over_time(&same), 0.0);
    assert_exact(stdvar_over_time(&p[..1]), 0.0);
}

#[test]
fn min_max_last_skip_nan_unless_all_nan() {
    let rows: [(&[f64], f64, f64, f64); 5] = [
        (&[2., 0., 3.], 0., 3., 3.),
        (&[2., 0., NAN], 0., 2., NAN),
        (&[2., NAN, 1.], 1., 2., 1.),
        (&[NAN, 0., 1.], 0., 1., 1.),
        (&[NAN, NAN, NAN], NAN, NAN, NAN),
    ];
    for (values, min, max, last) in rows {
        let p = s(10_000, values);
        assert_close(min_over_time(&p), min);
        assert_close(max_over_time(&p), max);
        assert_close(last_over_time(&p), last);
        assert_close(present_over_time(&p), 1.0);
    }
}

#[test]
fn quantile_over_time_matches_functions_test() {
    let two = s(10_000, &[0., 1.]);
    let three = s(10_000, &[0., 1., 2.]);
    let uneven = s(10_000, &[0., 1., 4.]);
    let rows = [
        (0.0, [0., 0., 0.]),
        (0.5, [0.5, 1., 1.]),
        (0.75, [0.75, 1.5, 2.5]),
        (0.8, [0.8, 1.6, 2.8]),
        (1.0, [1., 2., 4.]),
        (-1.0, [-INF; 3]),
        (2.0, [INF; 3]),
    ];
    for (q, want) in rows {
        for (p, w) in [&two, &three, &uneven].into_iter().zip(want) {
            assert_close(quantile_over_time(q, p), w);
        }
    }
}

#[test]
fn empty_windows_give_no_sample() {
    type F = fn(&[(i64, f64)]) -> Option<f64>;
    let fs: [F; 9] = [
        avg_over_time,
        sum_over_time,
        count_over_time,
        min_over_time,
        max_over_time,
        stddev_over_time,
        stdvar_over_time,
        last_over_time,
        present_over_time,
    ];
    for f in fs {
        assert_eq!(f(&[]), None);
    }
    assert_eq!(quantile_over_time(0.5, &[]), None);
}

/// Values printed by Prometheus 2.42 for windows of 10s-spaced samples (see the report of the
/// probe in the module docs); these pin Kahan and Welford details bit for bit.
#[test]
fn probed_prometheus_values_agree_bit_for_bit() {
    let series: [&[f64]; 5] = [
        &[1e100, 1., -1e100],
        &[1., 1e100, 1., -1e100],
        &[1e16, 1., 1., 1., 1., 1., 1., 1., 1., 1., 1.],
        &[
            100000000.1,
            100000000.2,
            100000000.3,
            100000000.4,
            100000000.7,
        ],
        &[1e10, 1., -1e10, 5., 3.],
    ];
    let sums = [1.0, 2.0, 10000000000000010.0, 500000001.7, 9.0];
    let avgs = [
        0.0,
        -2.4283361152821613e+83,
        909090909090909.8,
        100000000.34,
        1.7999998092651368,
    ];
    let vars = [
        6.666666666666667e+199,
        5.000000000000001e+199,
        8.264462809917353e+30,
        0.04240000105500221,
        39999999999999990000.0,
    ];
    let derivs = [-1e+99, -4e+98, -45454545454545.445, 0.014, -199999999.9];
    for (i, values) in series.iter().enumerate() {
        let p = s(10_000, values);
        assert_exact(sum_over_time(&p), sums[i]);
        assert_exact(avg_over_time(&p), avgs[i]);
        assert_exact(stdvar_over_time(&p), vars[i]);
        assert_exact(deriv(&p), derivs[i]);
    }
}
