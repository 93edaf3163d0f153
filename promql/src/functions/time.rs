//! Calendar parts of a Unix time in UTC (`year()`, `month()`, ...), computed with the
//! algorithm of Go 1.19's `time` package (which Debian's Prometheus 2.42 is built with):
//! proleptic Gregorian, no leap seconds, and the same wrap-around for absurd times.

/// The date function `name` (`day_of_month`, `day_of_week`, `day_of_year`, `days_in_month`,
/// `hour`, `minute`, `month`, `year`) of `t_seconds`, or `None` for another name.
///
/// Prometheus converts the value with Go's `int64(v)`: truncation towards zero, and on amd64
/// `i64::MIN` for NaN, infinities and values outside the int64 range, which Go's calendar
/// code then wraps into the year 292277026596. Both are reproduced.
pub fn date_part(name: &str, t_seconds: f64) -> Option<f64> {
    let part = DatePart::from_name(name)?;
    Some(part.of(go_int64(t_seconds)) as f64)
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
        let abs = (secs.wrapping_add(UNIX_TO_ABSOLUTE)) as u64;
        let date = abs_date(abs);
        let second_of_day = (abs % SECONDS_PER_DAY) as i64;
        match self {
            DatePart::DayOfMonth => date.day,
            // Day 0 of the absolute calendar was a Monday.
            DatePart::DayOfWeek => {
                ((abs.wrapping_add(SECONDS_PER_DAY) % (7 * SECONDS_PER_DAY)) / SECONDS_PER_DAY)
                    as i64
            }
            DatePart::DayOfYear => date.yday + 1,
            DatePart::DaysInMonth => days_in_month(date.year, date.month),
            DatePart::Hour => second_of_day / 3600,
            DatePart::Minute => second_of_day % 3600 / 60,
            DatePart::Month => date.month,
            DatePart::Year => date.year,
        }
    }
}

const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
/// Go's `absoluteZeroYear`: the absolute calendar starts here.
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
/// Go's `unixToInternal + internalToAbsolute`: Unix seconds to absolute seconds.
const UNIX_TO_ABSOLUTE: i64 = 9_223_372_028_715_321_600;
/// Days before the start of each month in a non-leap year (Go's `daysBefore`).
const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

/// Go's `int64(f)` on amd64: truncation towards zero, `i64::MIN` when that does not fit.
fn go_int64(v: f64) -> i64 {
    // 2^63 is exactly representable; every finite f64 below it truncates into range.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() || !(-TWO_63..TWO_63).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

struct AbsDate {
    year: i64,
    month: i64,
    day: i64,
    /// 0-based day of the year.
    yday: i64,
}

/// Go 1.19's `absDate`: the date of `abs` seconds since the absolute zero year.
fn abs_date(abs: u64) -> AbsDate {
    let mut d = abs / SECONDS_PER_DAY;
    let mut n = d / DAYS_PER_400_YEARS;
    let mut y = 400 * n;
    d -= DAYS_PER_400_YEARS * n;
    n = d / DAYS_PER_100_YEARS;
    n -= n >> 2;
    y += 100 * n;
    d -= DAYS_PER_100_YEARS * n;
    n = d / DAYS_PER_4_YEARS;
    y += 4 * n;
    d -= DAYS_PER_4_YEARS * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;

    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let yday = d as i64;
    let mut day = yday;
    if is_leap(year) {
        if day == 31 + 29 - 1 {
            return AbsDate {
                year,
                month: 2,
                day: 29,
                yday,
            };
        }
        if day > 31 + 29 - 1 {
            day -= 1;
        }
    }
    // Every month has at most 31 days, so this estimate is low by at most one month.
    let mut month = day / 31;
    let end = DAYS_BEFORE[(month + 1) as usize];
    let begin = if day >= end {
        month += 1;
        end
    } else {
        DAYS_BEFORE[month as usize]
    };
    AbsDate {
        year,
        month: month + 1,
        day: day - begin + 1,
        yday,
    }
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
    fn non_finite_and_huge_values_wrap_like_go_on_amd64() {
        assert_eq!(date_part("week", 0.0), None);
        // Probed from Prometheus 2.42: year(vector(NaN)) and friends.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e19, -1e19] {
            assert_eq!(part("year", v), 292277026596.0);
            assert_eq!(part("month", v), 12.0);
            assert_eq!(part("day_of_month", v), 4.0);
            assert_eq!(part("hour", v), 15.0);
            assert_eq!(part("day_of_week", v), 0.0);
        }
        assert_eq!(part("year", 1e17), 3168875820.0);
        assert_eq!(part("year", -1e17), -3168871881.0);
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), an
    /// oracle independent of Go's.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    proptest! {
        #[test]
        fn parts_round_trip_to_the_same_time(secs in -100_000_000_000_000i64..100_000_000_000_000) {
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
            // 1970-01-01 was a Thursday.
            prop_assert_eq!(p(DatePart::DayOfWeek), (secs.div_euclid(86_400) + 4).rem_euclid(7));
        }
    }
}
