//! Functions over a range vector's window: `points` are the window's samples, time-ordered,
//! without stale markers.

type Points<'a> = &'a [(i64, f64)];

fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// `rate`, `increase` (is_rate false) and `delta` (is_counter false), extrapolated to the
/// range boundaries like Prometheus 2.x.
pub fn extrapolated_rate(
    points: Points,
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut last_value = 0.0;
        for &(_, v) in points {
            if v < last_value {
                result += last_value;
            }
            last_value = v;
        }
    }
    let mut to_start = (first.0 - range_start_ms) as f64 / 1000.0;
    let to_end = (range_end_ms - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg_between = sampled / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_between / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_between / 2.0
    };
    result *= interval / sampled;
    if is_rate {
        result /= (range_end_ms - range_start_ms) as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` (is_rate) and `idelta`: from the last two samples.
pub fn instant_delta(points: Points, is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (prev, last) = (points[points.len() - 2], points[points.len() - 1]);
    let mut result = if is_rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn linear_regression(points: Points, intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in points.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// `deriv`: the least-squares slope per second.
pub fn deriv(points: Points) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    Some(linear_regression(points, points[0].0).0)
}

/// `predict_linear`: the regression line's value `duration_s` after `eval_t_ms`.
pub fn predict_linear(points: Points, eval_t_ms: i64, duration_s: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(points, eval_t_ms);
    Some(slope * duration_s + intercept)
}

/// `holt_winters`: double exponential smoothing; Err with Prometheus' text for a factor
/// outside (0, 1) (NaN passes, as in Go); Ok(None) with fewer than two points.
pub fn holt_winters(points: Points, sf: f64, tf: f64) -> Result<Option<f64>, String> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        ));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        ));
    }
    if points.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, points[0].1);
    let mut b = points[1].1 - points[0].1;
    for (i, &(_, v)) in points.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// `resets`: how often the value decreased.
pub fn resets(points: Points) -> f64 {
    points.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64
}

/// `changes`: how often the value changed (NaN to NaN is no change).
pub fn changes(points: Points) -> f64 {
    points
        .windows(2)
        .filter(|w| !(w[1].1 == w[0].1 || (w[1].1.is_nan() && w[0].1.is_nan())))
        .count() as f64
}

/// `avg_over_time`.
pub fn avg_over_time(points: Points) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
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
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    Some(if mean.is_infinite() { mean } else { mean + c })
}

/// `sum_over_time`.
pub fn sum_over_time(points: Points) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let (mut sum, mut c) = (0.0f64, 0.0);
    for &(_, v) in points {
        (sum, c) = kahan_inc(v, sum, c);
    }
    Some(if sum.is_infinite() { sum } else { sum + c })
}

/// `count_over_time`.
pub fn count_over_time(points: Points) -> Option<f64> {
    (!points.is_empty()).then_some(points.len() as f64)
}

/// `min_over_time` (NaN only if all are NaN).
pub fn min_over_time(points: Points) -> Option<f64> {
    let mut it = points.iter().map(|p| p.1);
    let first = it.next()?;
    Some(it.fold(first, |m, v| if v < m || m.is_nan() { v } else { m }))
}

/// `max_over_time` (NaN only if all are NaN).
pub fn max_over_time(points: Points) -> Option<f64> {
    let mut it = points.iter().map(|p| p.1);
    let first = it.next()?;
    Some(it.fold(first, |m, v| if v > m || m.is_nan() { v } else { m }))
}

fn stdvar(points: Points) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    Some((aux + caux) / count)
}

/// `stddev_over_time` (population).
pub fn stddev_over_time(points: Points) -> Option<f64> {
    stdvar(points).map(f64::sqrt)
}

/// `stdvar_over_time` (population).
pub fn stdvar_over_time(points: Points) -> Option<f64> {
    stdvar(points)
}

/// `last_over_time`.
pub fn last_over_time(points: Points) -> Option<f64> {
    points.last().map(|p| p.1)
}

/// `present_over_time`: 1 when there is any sample.
pub fn present_over_time(points: Points) -> Option<f64> {
    (!points.is_empty()).then_some(1.0)
}

/// `quantile_over_time`.
pub fn quantile_over_time(q: f64, points: Points) -> Option<f64> {
    if points.is_empty() {
        return None;
    }
    let mut vals: Vec<f64> = points.iter().map(|p| p.1).collect();
    Some(super::histogram::quantile(q, &mut vals))
}
