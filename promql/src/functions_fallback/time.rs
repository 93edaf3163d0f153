//! Calendar parts of a Unix time, in UTC.

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The calendar part `name` (`hour`, `month`, ...) of `t_seconds` (truncated like Go's
/// `time.Unix(int64(v), 0)`), or None for an unknown name or a non-finite time.
pub fn date_part(name: &str, t_seconds: f64) -> Option<f64> {
    if !t_seconds.is_finite() {
        return None;
    }
    let secs = t_seconds as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let v = match name {
        "minute" => (sod / 60 % 60) as f64,
        "hour" => (sod / 3600) as f64,
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let before: u32 = (1..m).map(|mm| days_in_month(y, mm)).sum();
            (before + d) as f64
        }
        "days_in_month" => days_in_month(y, m) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => return None,
    };
    Some(v)
}
