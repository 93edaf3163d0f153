//! Calendar parts of a Unix time in UTC (`year()`, `month()`, ...), proleptic Gregorian, no
//! leap seconds, like Go's `time` package.

/// The date function `name` (`day_of_month`, `day_of_week`, `day_of_year`, `days_in_month`,
/// `hour`, `minute`, `month`, `year`) of `t_seconds`, or `None` for another name.
///
/// Prometheus converts the value with Go's `int64(v)`, truncating towards zero; on amd64 a NaN,
/// an infinity or a value outside the int64 range becomes `i64::MIN`. That value is far outside
/// any calendar, so those inputs answer NaN here (documented difference: Go prints a
/// meaningless date for them).
pub fn date_part(name: &str, t_seconds: f64) -> Option<f64> {
    let part = DatePart::from_name(name)?;
    let Some(secs) = go_int64(t_seconds) else {
        return Some(f64::NAN);
    };
    Some(part.of(secs) as f64)
}

/// One calendar field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    /// 1..=31.
    DayOfMonth,
    /// 0 (Sunday) ..= 6.
    DayOfWeek,
    /// 1..=366.
    DayOfYear,
    /// 28..=31.
    DaysInMonth,
    /// 0..=23.
    Hour,
    /// 0..=59.
    Minute,
    /// 1..=12.
    Month,
    /// The year.
    Year,
}

impl DatePart {
    /// The part named like the PromQL function, or `None`.
    pub fn from_name(name: &str) -> Option<DatePart> {
        Some(match name {
            "day_of_month" => DatePart::DayOfMonth,
            "day_of_week" => DatePart::DayOfWeek,
            "day_of_year" => DatePart::DayOfYear,
            "days_in_month" => DatePart::DaysInMonth,
            "hour" => DatePart::Hour,
            "minute" => DatePart::Minute,
            "month" => DatePart::Month,
            "year" => DatePart::Year,
            _ => return None,
        })
    }

    /// This part of the UTC time `secs` seconds after the epoch.
    pub fn of(self, secs: i64) -> i64 {
        let days = secs.div_euclid(86_400);
        let second_of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        match self {
            DatePart::DayOfMonth => day,
            // 1970-01-01 was a Thursday (4).
            DatePart::DayOfWeek => (days + 4).rem_euclid(7),
            DatePart::DayOfYear => days - days_from_civil(year, 1, 1) + 1,
            DatePart::DaysInMonth => days_in_month(year, month),
            DatePart::Hour => second_of_day / 3600,
            DatePart::Minute => second_of_day % 3600 / 60,
            DatePart::Month => month,
            DatePart::Year => year,
        }
    }
}

/// Go's `int64(f)` on amd64 for the values that stay meaningful: truncation towards zero;
/// `None` where Go would produce `i64::MIN` (NaN, infinities, out of range). Times beyond a
/// few hundred billion years would overflow the day arithmetic, so they are `None` too.
fn go_int64(v: f64) -> Option<i64> {
    const LIMIT: f64 = 1e16; // about 317 million years
    (v.is_finite() && v.abs() < LIMIT).then(|| v.trunc() as i64)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part(name: &str, t: f64) -> f64 {
        date_part(name, t).unwrap_or(-1.0)
    }

    #[test]
    fn epoch_is_thursday_first_of_january_1970() {
        assert_eq!(part("year", 0.0), 1970.0);
        assert_eq!(part("month", 0.0), 1.0);
        assert_eq!(part("day_of_month", 0.0), 1.0);
        assert_eq!(part("day_of_year", 0.0), 1.0);
        assert_eq!(part("day_of_week", 0.0), 4.0);
        assert_eq!(part("hour", 0.0), 0.0);
        assert_eq!(part("minute", 0.0), 0.0);
        assert_eq!(part("days_in_month", 0.0), 31.0);
    }

    #[test]
    fn functions_test_dates() {
        // 2006-01-02 22:04:05 (Monday).
        let t = 1136239445.0;
        assert_eq!(part("year", t), 2006.0);
        assert_eq!(part("month", t), 1.0);
        assert_eq!(part("day_of_month", t), 2.0);
        assert_eq!(part("day_of_year", t), 2.0);
        assert_eq!(part("day_of_week", t), 1.0);
        assert_eq!(part("hour", t), 22.0);
        assert_eq!(part("minute", t), 4.0);
        assert_eq!(part("year", 1230767999.0), 2008.0);
        assert_eq!(part("year", 1230768000.0), 2009.0);
        assert_eq!(part("month", 1456790399.0), 2.0);
        assert_eq!(part("day_of_month", 1456790399.0), 29.0);
        assert_eq!(part("month", 1456790400.0), 3.0);
        assert_eq!(part("day_of_month", 1456790400.0), 1.0);
        assert_eq!(part("day_of_year", 1483191420.0), 366.0);
        assert_eq!(part("day_of_year", 1672493820.0), 365.0);
        assert_eq!(part("days_in_month", 1454284800.0), 29.0);
        assert_eq!(part("days_in_month", 1485907200.0), 28.0);
    }

    #[test]
    fn negative_times_truncate_towards_zero_then_use_the_calendar() {
        // -0.5 truncates to 0 (Go's int64 conversion), still 1970.
        assert_eq!(part("year", -0.5), 1970.0);
        // One second before the epoch: 1969-12-31 23:59:59, a Wednesday.
        assert_eq!(part("year", -1.0), 1969.0);
        assert_eq!(part("day_of_year", -1.0), 365.0);
        assert_eq!(part("hour", -1.0), 23.0);
        assert_eq!(part("minute", -1.0), 59.0);
        assert_eq!(part("day_of_week", -1.0), 3.0);
        // 1900 was not a leap year, 2000 was.
        assert_eq!(part("days_in_month", -2_206_310_400.0), 28.0); // 1900-02-01
        assert_eq!(part("days_in_month", 951_782_400.0), 29.0); // 2000-02-29
    }

    #[test]
    fn unknown_name_and_non_finite_values() {
        assert_eq!(date_part("week", 0.0), None);
        assert!(part("year", f64::NAN).is_nan());
        assert!(part("year", f64::INFINITY).is_nan());
    }

    proptest! {
        #[test]
        fn parts_round_trip_to_the_same_time(secs in -100_000_000_000i64..100_000_000_000) {
            let p = |d: DatePart| d.of(secs);
            let (y, mo, d) = (p(DatePart::Year), p(DatePart::Month), p(DatePart::DayOfMonth));
            prop_assert!((1..=12).contains(&mo));
            prop_assert!(d >= 1 && d <= p(DatePart::DaysInMonth));
            let back = days_from_civil(y, mo, d) * 86_400
                + p(DatePart::Hour) * 3600
                + p(DatePart::Minute) * 60
                + secs.rem_euclid(60);
            prop_assert_eq!(back, secs);
            let doy = p(DatePart::DayOfYear);
            prop_assert_eq!(days_from_civil(y, 1, 1) + doy - 1, secs.div_euclid(86_400));
            let dow = p(DatePart::DayOfWeek);
            prop_assert!((0..7).contains(&dow));
        }
    }
}
