//! JSON written byte-for-byte like Prometheus 2.42: Go's string escaping, sample values as
//! strings in Go's `FormatFloat` forms, timestamps as seconds with millisecond fractions.
//!
//! Results are written by hand rather than through serde because Prometheus' encoders differ
//! from any generic float formatting (e.g. `"1e-07"` for values, `1700000600.500` for points).

use promql::{Sample, Series, Value};
use std::fmt::Write as _;
use storage::labels::Labels;

/// Appends `s` as a JSON string the way Go's `encoding/json` escapes it (HTML-safe: `<`, `>`
/// and `&` become `\u003c`, `\u003e`, `\u0026`; U+2028 and U+2029 are escaped too).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
pub fn format_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's Display is also the shortest round-trip form without an exponent.
        format!("{v}")
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: shortest digits, exponent with sign and at
/// least two digits (`1e-07`, `1.5e+21`).
pub fn format_float_e(v: f64) -> String {
    if !v.is_finite() {
        return format_float_f(v);
    }
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let pad = if digits.len() < 2 { "0" } else { "" };
            format!("{mantissa}e{sign}{pad}{digits}")
        }
        None => s,
    }
}

/// A sample value as Prometheus' API prints it in vectors and matrices: the `'f'` form except
/// for magnitudes below 1e-6 or from 1e21 up, which use the `'e'` form.
pub fn format_sample_value(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        format_float_e(v)
    } else {
        format_float_f(v)
    }
}

/// A point's timestamp: integer seconds, then `.` and exactly three digits when the
/// millisecond part is not zero (Prometheus' `marshalTimestamp`).
pub fn write_point_timestamp(out: &mut String, t_ms: i64) {
    if t_ms < 0 {
        out.push('-');
    }
    let t = t_ms.unsigned_abs();
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// Appends a sample value in the form of [`format_sample_value`], without an intermediate
/// string for the common plain form (a range result writes one per point).
fn write_sample_value(out: &mut String, v: f64) {
    let abs = v.abs();
    if v.is_finite() && (abs == 0.0 || (1e-6..1e21).contains(&abs)) {
        let _ = write!(out, "{v}");
    } else {
        out.push_str(&format_sample_value(v));
    }
}

/// A scalar's or string's timestamp: `float64(t)/1000` as Go's `encoding/json` prints it.
pub fn write_float_timestamp(out: &mut String, t_ms: i64) {
    let secs = t_ms as f64 / 1000.0;
    out.push_str(&format_go_json_float(secs));
}

/// A float as Go's `encoding/json` prints a number (`'f'` form, `'e'` form outside
/// [1e-6, 1e21) with `e-07` shortened to `e-7`).
fn format_go_json_float(v: f64) -> String {
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format_float_e(v);
        // encoding/json trims a leading zero of a two-digit negative exponent.
        match s.find("e-0") {
            Some(i) if s.len() == i + 4 => format!("{}e-{}", &s[..i], &s[i + 3..]),
            _ => s,
        }
    } else {
        format_float_f(v)
    }
}

/// Appends a label set as a JSON object with keys in name order.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

/// Appends `[ts,"v"]` for a vector or matrix point.
fn write_point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    write_point_timestamp(out, t_ms);
    out.push_str(",\"");
    write_sample_value(out, v);
    out.push_str("\"]");
}

fn write_sample(out: &mut String, s: &Sample) {
    out.push_str("{\"metric\":");
    write_labels(out, &s.metric);
    out.push_str(",\"value\":");
    write_point(out, s.t, s.v);
    out.push('}');
}

fn write_series(out: &mut String, s: &Series) {
    out.push_str("{\"metric\":");
    write_labels(out, &s.metric);
    if !s.points.is_empty() {
        out.push_str(",\"values\":[");
        for (i, &(t, v)) in s.points.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_point(out, t, v);
        }
        out.push(']');
    }
    out.push('}');
}

/// Appends the `data` object of a query answer: `{"resultType":...,"result":...}`.
pub fn write_query_data(out: &mut String, value: &Value) {
    out.push_str("{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        Value::Scalar { t, v } => {
            out.push('[');
            write_float_timestamp(out, *t);
            out.push_str(",\"");
            out.push_str(&format_float_f(*v));
            out.push_str("\"]");
        }
        Value::String { t, s } => {
            out.push('[');
            write_float_timestamp(out, *t);
            out.push(',');
            write_str(out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sample(out, s);
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_series(out, s);
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// Appends a JSON array of strings.
pub fn write_str_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, s);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_values_use_prometheus_forms() {
        assert_eq!(format_sample_value(1.0), "1");
        assert_eq!(format_sample_value(0.1), "0.1");
        assert_eq!(format_sample_value(-2.5), "-2.5");
        assert_eq!(format_sample_value(1e-7), "1e-07");
        assert_eq!(format_sample_value(1.5e-7), "1.5e-07");
        assert_eq!(format_sample_value(0.000001), "0.000001");
        assert_eq!(format_sample_value(1e21), "1e+21");
        assert_eq!(format_sample_value(1.2345e100), "1.2345e+100");
        assert_eq!(
            format_sample_value(123456789012345680000.0),
            "123456789012345680000"
        );
        assert_eq!(format_sample_value(f64::NAN), "NaN");
        assert_eq!(format_sample_value(f64::INFINITY), "+Inf");
        assert_eq!(format_sample_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_sample_value(0.0), "0");
        assert_eq!(format_sample_value(-0.0), "-0");
        assert_eq!(format_sample_value(5e-324), "5e-324");
    }

    #[test]
    fn scalars_always_use_the_plain_form() {
        assert_eq!(format_float_f(1e-7), "0.0000001");
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
    }

    #[test]
    fn point_timestamps_print_three_fraction_digits() {
        let ts = |t| {
            let mut s = String::new();
            write_point_timestamp(&mut s, t);
            s
        };
        assert_eq!(ts(1_700_000_600_000), "1700000600");
        assert_eq!(ts(1_700_000_600_500), "1700000600.500");
        assert_eq!(ts(1_700_000_600_005), "1700000600.005");
        assert_eq!(ts(-1_500), "-1.500");
        assert_eq!(ts(0), "0");
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn written_sample_values_match_the_formatted_ones() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.1,
            -2.5,
            1e-6,
            9.99e-7,
            1e21,
            9.99e20,
            5e-324,
            1.5e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            123456789012345680000.0,
        ] {
            let mut s = String::new();
            write_sample_value(&mut s, v);
            assert_eq!(s, format_sample_value(v), "{v:e}");
        }
    }

    #[test]
    fn scalar_timestamps_print_as_go_floats() {
        let ts = |t| {
            let mut s = String::new();
            write_float_timestamp(&mut s, t);
            s
        };
        assert_eq!(ts(1_700_000_600_500), "1700000600.5");
        assert_eq!(ts(4_000), "4");
        assert_eq!(ts(1), "0.001");
    }

    #[test]
    fn strings_escape_like_go_encoding_json() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\n<&>\u{1}\u{2028}é");
        assert_eq!(s, r#""a\"b\\c\n\u003c\u0026\u003e\u0001\u2028é""#);
    }

    #[test]
    fn results_have_prometheus_layout() {
        let metric = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let mut out = String::new();
        write_query_data(
            &mut out,
            &Value::Vector(vec![Sample {
                metric: metric.clone(),
                t: 1_000,
                v: 1.0,
            }]),
        );
        assert_eq!(
            out,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1,"1"]}]}"#
        );
        out.clear();
        write_query_data(
            &mut out,
            &Value::Matrix(vec![Series {
                metric,
                points: vec![(1_000, 1.0), (2_500, 0.5)],
            }]),
        );
        assert_eq!(
            out,
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1,"1"],[2.500,"0.5"]]}]}"#
        );
        out.clear();
        write_query_data(&mut out, &Value::Scalar { t: 4_000, v: 2.0 });
        assert_eq!(out, r#"{"resultType":"scalar","result":[4,"2"]}"#);
        out.clear();
        write_query_data(&mut out, &Value::Vector(vec![]));
        assert_eq!(out, r#"{"resultType":"vector","result":[]}"#);
    }
}
