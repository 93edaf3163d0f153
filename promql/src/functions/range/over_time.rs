//! The `*_over_time` aggregations of one window. Each returns `None` for an empty window
//! (Prometheus emits no sample then).

use crate::functions::histogram::quantile;
use crate::functions::kahan::{kahan_sum_inc, KahanSum};

/// `avg_over_time`: an incremental mean with Kahan compensation, so that values near
/// `f64::MAX` do not overflow; an infinite mean stays infinite unless an opposite infinity or
/// a NaN arrives (then NaN), exactly as 2.42 does.
pub fn avg_over_time(points: &[(i64, f64)]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let (mut mean, mut c, mut count) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in points {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_sum_inc(v / count - mean / count, mean, c);
    }
    Some(if mean.is_infinite() { mean } else { mean + c })
}

/// `sum_over_time`, Kahan-compensated.
pub fn sum_over_time(points: &[(i64, f64)]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut sum = KahanSum::default();
    for &(_, v) in points {
        sum.add(v);
    }
    Some(sum.value())
}

/// `count_over_time`.
pub fn count_over_time(points: &[(i64, f64)]) -> Option<f64> {
    (!points.is_empty()).then_some(points.len() as f64)
}

/// `min_over_time`: NaN only when every value is NaN.
pub fn min_over_time(points: &[(i64, f64)]) -> Option<f64> {
    let mut min = points.first()?.1;
    for &(_, v) in points {
        if v < min || min.is_nan() {
            min = v;
        }
    }
    Some(min)
}

/// `max_over_time`: NaN only when every value is NaN.
pub fn max_over_time(points: &[(i64, f64)]) -> Option<f64> {
    let mut max = points.first()?.1;
    for &(_, v) in points {
        if v > max || max.is_nan() {
            max = v;
        }
    }
    Some(max)
}

/// Population variance by Welford's method with Kahan-compensated mean and sum of squares,
/// as 2.42 computes it (bit-for-bit agreement was checked against a running 2.42).
fn variance(points: &[(i64, f64)]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut count = 0.0f64;
    let (mut mean, mut c_mean) = (0.0f64, 0.0f64);
    let (mut aux, mut c_aux) = (0.0f64, 0.0f64);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    Some((aux + c_aux) / count)
}

/// `stdvar_over_time`: the population variance.
pub fn stdvar_over_time(points: &[(i64, f64)]) -> Option<f64> {
    variance(points)
}

/// `stddev_over_time`: the population standard deviation.
pub fn stddev_over_time(points: &[(i64, f64)]) -> Option<f64> {
    variance(points).map(f64::sqrt)
}

/// `last_over_time`: the last value.
pub fn last_over_time(points: &[(i64, f64)]) -> Option<f64> {
    points.last().map(|p| p.1)
}

/// `present_over_time`: 1 for any non-empty window.
pub fn present_over_time(points: &[(i64, f64)]) -> Option<f64> {
    (!points.is_empty()).then_some(1.0)
}

/// `quantile_over_time`: the `q`-quantile of the window's values (see
/// [`quantile`](crate::functions::histogram::quantile)).
pub fn quantile_over_time(q: f64, points: &[(i64, f64)]) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    Some(quantile(q, &mut values))
}
