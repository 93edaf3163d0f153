//! Formatting of times, durations and counts for tool output.

use std::time::{Duration, UNIX_EPOCH};

/// First millisecond after 9999-12-31T23:59:59.999Z, beyond which RFC 3339 has no year.
const RFC3339_END_MS: u64 = 253_402_300_800_000;

/// RFC 3339 UTC time of a millisecond timestamp, with milliseconds only when non-zero; times
/// RFC 3339 cannot write (before 1970, after year 9999) as the raw number with `ms`.
pub fn time_ms(t: i64) -> String {
    let ms = match u64::try_from(t) {
        Ok(ms) if ms < RFC3339_END_MS => ms,
        _ => return format!("{t}ms"),
    };
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    if ms % 1000 == 0 {
        humantime::format_rfc3339_seconds(at).to_string()
    } else {
        humantime::format_rfc3339_millis(at).to_string()
    }
}

/// A duration in Go's `time.Duration` style (`2h0m0s`, `1h59m45.001s`, `500ms`).
pub fn go_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{sign}{m}m{secs}")
    } else {
        format!("{sign}{secs}")
    }
}

/// A count with thousands separators, like Thanos' tables (`1,234,567`).
pub fn comma(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints rows as an aligned table with a header and a separator line.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let parts: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        format!("| {} |\n", parts.join(" | "))
    };
    let mut out = line(&mut header.iter().copied());
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", sep.join("-|-")));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_and_thanos() {
        assert_eq!(go_duration_ms(7_200_000), "2h0m0s");
        assert_eq!(go_duration_ms(7_185_001), "1h59m45.001s");
        assert_eq!(go_duration_ms(90_500), "1m30.5s");
        assert_eq!(go_duration_ms(500), "500ms");
        assert_eq!(comma(1_234_567), "1,234,567");
        assert_eq!(comma(999), "999");
        assert_eq!(time_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(time_ms(1_700_000_000_005), "2023-11-14T22:13:20.005Z");
    }

    #[test]
    fn times_rfc3339_cannot_write_fall_back_to_milliseconds() {
        assert_eq!(time_ms(i64::MIN), "-9223372036854775808ms");
        assert_eq!(time_ms(i64::MAX), "9223372036854775807ms");
        assert_eq!(time_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(time_ms(253_402_300_800_000), "253402300800000ms");
        assert_eq!(go_duration_ms(i64::MIN), "-2562047788015h12m55.808s");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "| A   | BB |\n|-----|----|\n| xyz | 1  |\n");
    }
}
