//! OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.

use crate::labels::{Labels, METRIC_NAME};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Formats a float the way Go's `strconv.ParseFloat` reads back exactly.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip representation never uses an exponent, which Go parses.
        format!("{v}")
    }
}

/// Formats a millisecond timestamp as OpenMetrics seconds with a fraction.
fn format_timestamp(t_ms: i64) -> String {
    let secs = t_ms.div_euclid(1000);
    let ms = t_ms.rem_euclid(1000);
    if ms == 0 {
        format!("{secs}")
    } else {
        format!("{secs}.{ms:03}")
    }
}

/// Writes `series` as OpenMetrics text (gauges, one family per metric name, `# EOF` last).
///
/// Every series needs a `__name__`; samples must be in time order.
pub fn write_openmetrics(path: &Path, series: &[(Labels, Vec<(i64, f64)>)]) -> std::io::Result<()> {
    type Family<'a> = Vec<&'a (Labels, Vec<(i64, f64)>)>;
    let mut by_family: std::collections::BTreeMap<&str, Family<'_>> = Default::default();
    for s in series {
        let name = s.0.get(METRIC_NAME).unwrap_or("unnamed");
        by_family.entry(name).or_default().push(s);
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut line = String::new();
    for (family, members) in by_family {
        writeln!(out, "# HELP {family} test data\n# TYPE {family} gauge")?;
        for (labels, samples) in members {
            let mut sel = String::from(family);
            sel.push('{');
            let mut first = true;
            for l in labels.iter().filter(|l| l.name != METRIC_NAME) {
                if !first {
                    sel.push(',');
                }
                first = false;
                let _ = write!(sel, "{}=\"{}\"", l.name, l.value);
            }
            sel.push('}');
            for &(t, v) in samples {
                line.clear();
                let _ = writeln!(line, "{sel} {} {}", format_value(v), format_timestamp(t));
                out.write_all(line.as_bytes())?;
            }
        }
    }
    writeln!(out, "# EOF")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_timestamps_use_forms_go_parses() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_timestamp(1_700_000_000_005), "1700000000.005");
        assert_eq!(format_timestamp(1_700_000_000_000), "1700000000");
    }
}
