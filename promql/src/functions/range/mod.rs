//! Functions of a range vector's window: one series' samples `(ms, value)` in time order,
//! stale markers already removed.
//!
//! Rates and regressions live here; the `*_over_time` aggregations are in [`over_time`] and
//! re-exported so callers write `range::avg_over_time`.

mod over_time;

pub use over_time::{
    avg_over_time, count_over_time, last_over_time, max_over_time, min_over_time,
    present_over_time, quantile_over_time, stddev_over_time, stdvar_over_time, sum_over_time,
};

use super::kahan::kahan_sum_inc;

/// `rate` (`is_counter && is_rate`), `increase` (`is_counter && !is_rate`) and `delta`
/// (`!is_counter`) with Prometheus 2.42's extrapolation.
///
/// Counter resets add the value before the drop. The result is extrapolated towards each edge
/// of `[range_start_ms, range_end_ms]` unless the gap to that edge exceeds 1.1 times the average
/// sample interval, in which case it is extended by half an interval. For counters the start is
/// never extrapolated past the point where the counter would have been zero (2.42 applies this
/// cap before the 1.1x threshold test). `rate` divides by the range length in seconds.
/// `None` with fewer than two points.
pub fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    extrapolated_rate_hinted(
        points,
        range_start_ms,
        range_end_ms,
        is_counter,
        is_rate,
        true,
    )
}

/// [`extrapolated_rate`] for a caller that knows whether the window holds a drop (a value
/// lower than the one before): with `may_drop` false the scan for counter resets, which would
/// find none, is skipped. The result is the same bit for bit.
pub fn extrapolated_rate_hinted(
    points: &[(i64, f64)],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
    may_drop: bool,
) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (points.first()?, points.last()?);
    if points.len() < 2 {
        return None;
    }
    let mut result = last_v - first_v;
    if is_counter && may_drop {
        for w in points.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }

    let mut duration_to_start = (first_t - range_start_ms) as f64 / 1000.0;
    let duration_to_end = (range_end_ms - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_interval = sampled_interval / (points.len() - 1) as f64;

    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }

    let threshold = average_interval * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_interval / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_interval / 2.0
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= (range_end_ms - range_start_ms) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` (`is_rate`) and `idelta` from the last two points. `irate` treats a drop as a
/// counter reset (the result is the last value per second); `None` with fewer than two points
/// or when the two share a timestamp.
pub fn instant_delta(points: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    let [.., (prev_t, prev_v), (last_t, last_v)] = points else {
        return None;
    };
    let mut result = if is_rate && last_v < prev_v {
        *last_v
    } else {
        last_v - prev_v
    };
    let interval = last_t - prev_t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares slope and the intercept at `intercept_ms`, with x in seconds relative to
/// `intercept_ms` (Prometheus' `linearRegression`: Kahan sums; a constant series has slope 0,
/// or NaN when the constant is infinite). `points` must not be empty.
fn linear_regression(points: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let init_y = points.first().map_or(f64::NAN, |p| p.1);
    let mut const_y = true;
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    for (i, &(t, v)) in points.iter().enumerate() {
        // NaN != NaN, so a NaN anywhere makes the series non-constant, as in Go.
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `deriv`: the least-squares slope per second. x is measured from the first sample's
/// timestamp, as Prometheus does, to keep precision with large epoch times. `None` with fewer
/// than two points.
pub fn deriv(points: &[(i64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    Some(linear_regression(points, points[0].0).0)
}

/// `predict_linear`: the regression line's value `duration_s` seconds after `eval_t_ms`, the
/// evaluation timestamp (not the `@` time of the selector). `None` with fewer than two points.
pub fn predict_linear(points: &[(i64, f64)], eval_t_ms: i64, duration_s: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(points, eval_t_ms);
    Some(slope * duration_s + intercept)
}

/// `holt_winters` (double exponential smoothing) with smoothing factor `sf` and trend factor
/// `tf`.
///
/// Prometheus 2.42 fails the whole query when a factor is outside `(0, 1)`, with the texts
/// returned here as `Err` (a NaN factor passes the check, as in Go). The check runs before the
/// point count is looked at, so it fails even for a single point; 2.42 only calls the function
/// for windows that have at least one sample, so the engine should do the same.
/// `Ok(None)` with fewer than two points.
pub fn holt_winters(points: &[(i64, f64)], sf: f64, tf: f64) -> Result<Option<f64>, String> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
            go_percent_f(sf)
        ));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {}",
            go_percent_f(tf)
        ));
    }
    let [(_, first), (_, second), ..] = points else {
        return Ok(None);
    };
    let (mut s0, mut s1) = (0.0, *first);
    let mut b = second - first;
    for (i, &(_, v)) in points.iter().enumerate().skip(1) {
        let x = sf * v;
        // The trend at the first step is the initial difference itself.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Ok(Some(s1))
}

/// Go's `fmt` `%f`: six decimals, `NaN`, `+Inf`, `-Inf`.
fn go_percent_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v:.6}")
    }
}

/// `resets`: how many times a value is lower than the one before (NaN never counts).
pub fn resets(points: &[(i64, f64)]) -> f64 {
    points.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64
}

/// `changes`: how many times a value differs from the one before; NaN followed by NaN is no
/// change, any other step to or from NaN is one.
pub fn changes(points: &[(i64, f64)]) -> f64 {
    points
        .windows(2)
        .filter(|w| {
            let (prev, cur) = (w[0].1, w[1].1);
            cur != prev && !(cur.is_nan() && prev.is_nan())
        })
        .count() as f64
}

#[cfg(test)]
mod tests;
