//! Element-wise math on instant-vector values: the unary functions, `round` and the clamps.
//! Min/max follow Go's `math.Min`/`math.Max` (NaN wins, but an infinity of the right sign beats
//! NaN), which is not what `f64::min`/`f64::max` do.

use std::f64::consts::PI;

/// The unary function called `name` (`abs`, `ceil`, ..., `atanh`), or `None` for any other
/// name.
pub fn unary(name: &str) -> Option<fn(f64) -> f64> {
    let f: fn(f64) -> f64 = match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => sgn,
        "deg" => |v| v * 180.0 / PI,
        "rad" => |v| v * PI / 180.0,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        _ => return None,
    };
    Some(f)
}

/// `sgn`: -1, 1, or the value itself for zeros and NaN (unlike `f64::signum`, which maps +0 to
/// 1).
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// `round(v, to_nearest)`: rounds to a multiple of `to_nearest`, ties upwards, computed as
/// Prometheus does through the inverse (`floor(v * (1/n) + 0.5) / (1/n)`).
pub fn round(v: f64, to_nearest: f64) -> f64 {
    let inverse = 1.0 / to_nearest;
    (v * inverse + 0.5).floor() / inverse
}

/// `clamp(v, min, max)`; `None` when `min > max`, where Prometheus returns no sample for the
/// whole vector. A NaN bound makes every result NaN.
pub fn clamp(v: f64, min: f64, max: f64) -> Option<f64> {
    if max < min {
        return None;
    }
    Some(go_max(min, go_min(max, v)))
}

/// `clamp_min(v, min)`.
pub fn clamp_min(v: f64, min: f64) -> f64 {
    go_max(min, v)
}

/// `clamp_max(v, max)`.
pub fn clamp_max(v: f64, max: f64) -> f64 {
    go_min(max, v)
}

/// Go's `math.Max`: +Inf if either is +Inf, else NaN if either is NaN, +0 over -0.
pub fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf if either is -Inf, else NaN if either is NaN, -0 over +0.
pub fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else if x < y {
        x
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, v: f64) -> f64 {
        unary(name).map(|f| f(v)).unwrap_or(f64::NAN)
    }

    #[test]
    fn every_2_42_unary_function_is_known() {
        for name in [
            "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "deg", "rad",
            "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
            "atanh",
        ] {
            assert!(unary(name).is_some(), "{name}");
        }
        assert!(unary("round").is_none());
        assert!(unary("pi").is_none());
    }

    #[test]
    fn exp_ln_log_match_functions_test() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
        assert!(close(call("exp", 10.0), 22026.465794806718));
        assert!(close(call("exp", 20.0), 485165195.4097903));
        assert!(close(call("exp", -10.0), 4.5399929762484854e-05));
        assert!(close(call("ln", 10.0), std::f64::consts::LN_10)); // 2.302585092994046
        assert_eq!(call("ln", 0.0), f64::NEG_INFINITY);
        assert!(call("ln", -10.0).is_nan());
        assert!(close(call("sqrt", 20.0), 4.47213595499958));
        assert!(close(call("log2", 10.0), 3.3219280948873626));
        assert!(close(call("log10", 20.0), 1.301029995663981));
        assert_eq!(call("log10", 10.0), 1.0);
    }

    #[test]
    fn sgn_keeps_zero_and_nan() {
        assert_eq!(call("sgn", f64::NEG_INFINITY), -1.0);
        assert_eq!(call("sgn", f64::INFINITY), 1.0);
        assert_eq!(call("sgn", -50.0), -1.0);
        assert_eq!(call("sgn", 100.0), 1.0);
        assert_eq!(call("sgn", 0.0), 0.0);
        assert!(call("sgn", -0.0).is_sign_negative());
        assert!(call("sgn", f64::NAN).is_nan());
    }

    #[test]
    fn deg_and_rad_convert() {
        assert_eq!(call("deg", PI), 180.0);
        assert_eq!(call("rad", 180.0), PI);
        assert_eq!(call("abs", -3.5), 3.5);
        assert_eq!(call("ceil", 1.2), 2.0);
        assert_eq!(call("floor", -1.2), -2.0);
    }

    #[test]
    fn round_ties_up_and_uses_the_inverse() {
        assert_eq!(round(2.5, 1.0), 3.0);
        assert_eq!(round(-2.5, 1.0), -2.0);
        assert_eq!(round(1.234, 0.01), 1.23);
        assert_eq!(round(17.0, 5.0), 15.0);
        assert_eq!(round(17.5, 5.0), 20.0);
        assert!(round(f64::NAN, 1.0).is_nan());
        assert_eq!(round(f64::INFINITY, 1.0), f64::INFINITY);
        // A zero step: 1/0 = +Inf, v*Inf+0.5 = Inf (or NaN for 0), Inf/Inf = NaN.
        assert!(round(3.0, 0.0).is_nan());
    }

    #[test]
    fn clamps_match_functions_test() {
        let v = [-50.0, 0.0, 100.0];
        let max: Vec<f64> = v.iter().map(|&x| clamp_max(x, 75.0)).collect();
        assert_eq!(max, [-50.0, 0.0, 75.0]);
        let min: Vec<f64> = v.iter().map(|&x| clamp_min(x, -25.0)).collect();
        assert_eq!(min, [-25.0, 0.0, 100.0]);
        let both: Vec<Option<f64>> = v.iter().map(|&x| clamp(x, -25.0, 75.0)).collect();
        assert_eq!(both, [Some(-25.0), Some(0.0), Some(75.0)]);
        for x in v {
            assert!(clamp(x, 0.0, f64::NAN).is_some_and(f64::is_nan));
            assert!(clamp(x, f64::NAN, 0.0).is_some_and(f64::is_nan));
            assert_eq!(clamp(x, 5.0, -5.0), None);
        }
    }

    #[test]
    fn go_min_max_special_cases() {
        assert_eq!(go_max(f64::INFINITY, f64::NAN), f64::INFINITY);
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert_eq!(go_min(f64::NEG_INFINITY, f64::NAN), f64::NEG_INFINITY);
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(0.0, -0.0).is_sign_negative());
    }
}
