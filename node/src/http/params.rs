//! Request parameters with Prometheus 2.42's parsing: Go's `FormValue` semantics, times as
//! unix seconds or RFC 3339, durations as float seconds or `1m30s`, `match[]` selectors.

use super::response::ApiError;
use axum::extract::Request;
use axum::http::{header, Method};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use storage::labels::METRIC_NAME;
use storage::matcher::{MatchKind, Matcher};

/// Request parameters: the form body's pairs first, then the URL query's, as Go's
/// `Request.Form` holds them (so `FormValue` prefers the body).
#[derive(Debug, Default, Clone)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Builds the form from an `application/x-www-form-urlencoded` body (if any) and the URL
    /// query string (if any).
    pub fn new(body: Option<&[u8]>, query: Option<&str>) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(b) = body {
            pairs.extend(form_urlencoded::parse(b).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Form { pairs }
    }

    /// The first value of `name`, or "" like Go's `FormValue`.
    pub fn value(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`, body values first.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Marks a request whose URL query string is its body: the HTTP server moves a GET query
/// longer than hyper accepts there (`http::long_uri`).
pub const QUERY_IN_BODY_HEADER: &str = "x-strata-query-in-body";

/// Reads a request's parameters: the URL query, plus the body for POST, PUT and PATCH
/// requests with a form content type (as Go's `ParseForm` does).
pub async fn read_form(req: Request) -> Result<Form, ApiError> {
    let (parts, body) = req.into_parts();
    if parts.headers.contains_key(QUERY_IN_BODY_HEADER) {
        let query = axum::body::to_bytes(body, super::FORM_LIMIT)
            .await
            .map_err(|e| ApiError::bad_data(format!("error reading the URL query: {e}")))?;
        let query = String::from_utf8_lossy(&query);
        return Ok(Form::new(None, Some(&query)));
    }
    let query = parts.uri.query().map(str::to_string);
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let has_body = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    let body = if has_body && is_form {
        Some(
            axum::body::to_bytes(body, super::FORM_LIMIT)
                .await
                .map_err(|e| ApiError::bad_data(format!("error parsing form values: {e}")))?,
        )
    } else {
        None
    };
    Ok(Form::new(body.as_deref(), query.as_deref()))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The labels a request deduplicates over, as Thanos' querier reads them: `replicaLabels[]`
/// when given, else the server's `--query.replica-label`s (`defaults`); none when `dedup` is
/// false (it defaults to true).
pub fn dedup_labels(form: &Form, defaults: &[String]) -> Result<Vec<String>, ApiError> {
    let dedup = form.value("dedup");
    if !dedup.is_empty() {
        let on = parse_go_bool(dedup).ok_or_else(|| {
            ApiError::bad_data(format!(
                "'dedup' parameter: strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(dedup)
            ))
        })?;
        if !on {
            return Ok(Vec::new());
        }
    }
    let given = form.values("replicaLabels[]");
    if given.is_empty() {
        return Ok(defaults.to_vec());
    }
    if let Some(bad) = given.iter().find(|l| !is_valid_label_name(l)) {
        return Err(ApiError::bad_data(format!(
            "'replicaLabels[]' parameter: invalid label name: {}",
            go_quote(bad)
        )));
    }
    Ok(given.into_iter().map(str::to_string).collect())
}

/// The earliest instant Prometheus' API represents (`minTime`), in ms.
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// The latest instant Prometheus' API represents (`maxTime`), in ms.
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";

/// Parses a timestamp like Prometheus' `parseTime`; returns ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Some(t) = parse_go_float(s) {
        return float_seconds_to_ms(t).ok_or_else(|| cannot_parse_time(s));
    }
    if let Some(ms) = parse_rfc3339(s) {
        return Ok(ms);
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(cannot_parse_time(s)),
    }
}

fn cannot_parse_time(s: &str) -> String {
    format!("cannot parse {} to a valid timestamp", go_quote(s))
}

/// Parses optional time parameter `name` like `parseTimeParam`: `default` when absent.
pub fn parse_time_param(form: &Form, name: &str, default: i64) -> Result<i64, String> {
    let v = form.value(name);
    if v.is_empty() {
        return Ok(default);
    }
    parse_time(v).map_err(|e| format!("Invalid time value for '{name}': {e}"))
}

/// `math.Modf`, fraction rounded to ms, then `time.Unix(s, ns)` and `timestamp.FromTime`.
fn float_seconds_to_ms(t: f64) -> Option<i64> {
    if !t.is_finite() || t.abs() >= 9.2e15 {
        return None;
    }
    let secs = t.trunc();
    let frac = ((t - secs) * 1000.0).round() / 1000.0;
    let nanos = (frac * 1e9) as i64;
    let total_nanos = secs as i128 * 1_000_000_000 + nanos as i128;
    // FromTime: whole seconds times 1000 plus the floored millisecond of the nanoseconds.
    let s = total_nanos.div_euclid(1_000_000_000);
    let ns = total_nanos.rem_euclid(1_000_000_000);
    i64::try_from(s * 1000 + ns / 1_000_000).ok()
}

/// Go's `strconv.ParseFloat` for the forms clients send (decimal, exponent, Inf, NaN).
fn parse_go_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    match unsigned {
        "inf" | "infinity" => {
            return Some(if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    // Rust accepts a few spellings Go does not ("inf" handled above); keep to digits.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse().ok()
}

/// RFC 3339 with optional fraction (Go's `time.RFC3339Nano` parsing), in ms.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        let digits = s.get(start..end)?;
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - (end - start) as u32);
        i = end;
    }
    let offset_secs = match s.get(i..)? {
        "Z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if tz.starts_with('-') {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_secs;
    Some(secs * 1000 + nanos / 1_000_000)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a duration like Prometheus' `parseDuration`; returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(d) = parse_go_float(s) {
        let ns = d * 1e9;
        if ns > i64::MAX as f64 || ns < i64::MIN as f64 || ns.is_nan() {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                go_quote(s)
            ));
        }
        return Ok(ns as i64);
    }
    if let Some(ms) = parse_prometheus_duration(s) {
        return ms
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("cannot parse {} to a valid duration", go_quote(s)));
    }
    Err(format!("cannot parse {} to a valid duration", go_quote(s)))
}

/// Prometheus' `model.ParseDuration` (`1y2w3d4h5m6s7ms`, each unit at most once, in this
/// order; `0` alone allowed); returns ms.
pub fn parse_prometheus_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (idx, unit) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())?;
        total = total.checked_add(n.checked_mul(unit.1)?)?;
        rest = &rest[unit.0.len()..];
        next_unit = idx + 1;
    }
    Some(total)
}

/// Formats ms as Prometheus' `model.Duration.String()` (`5m`, `1h30m`, `0s`).
pub fn format_prometheus_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        let n = rest / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            rest -= n * size;
        }
    }
    out
}

/// Runs `f`, a parse of client input, off the async runtime: a selector can be megabytes of
/// matchers and regexes to compile, and a worker thread busy with it stalls every connection
/// it serves (`/-/healthy` included).
pub async fn off_runtime<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("parsing the request failed: {e}")))
}

/// [`parse_match_params`] off the async runtime.
pub async fn parse_match_params_async(values: &[&str]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let owned: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    off_runtime(move || {
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        parse_match_params(&refs)
    })
    .await?
    .map_err(ApiError::bad_data)
}

/// Parses `match[]` values like `parseMatchersParam`: each must be a series selector, and each
/// must have a matcher that does not match the empty string.
pub fn parse_match_params(values: &[&str]) -> Result<Vec<Vec<Matcher>>, String> {
    const EMPTY: &str = "match[] must contain at least one non-empty matcher";
    let mut sets = Vec::with_capacity(values.len());
    for v in values {
        match parse_series_selector(v) {
            Ok(set) => sets.push(set),
            // promql-parser checks what only Prometheus' ParseExpr checks; ParseMetricSelector
            // accepts such a selector and the API then refuses it with its own message.
            Err(e) if e.contains("vector selector must contain at least one non-empty matcher") => {
                return Err(EMPTY.into())
            }
            Err(e) => return Err(e),
        }
    }
    for set in &sets {
        if !set.iter().any(|m| !m.matches("")) {
            return Err(EMPTY.into());
        }
    }
    Ok(sets)
}

/// Parses one series selector (`up{job="a"}`) into storage matchers.
pub fn parse_series_selector(s: &str) -> Result<Vec<Matcher>, String> {
    // The parser's and regex compiler's messages quote the input whole: cut them.
    let expr = promql::engine::parse(s)
        .map_err(|e| super::response::bounded(&e.to_string(), 2 * MAX_QUOTED_CHARS).into_owned())?;
    let Expr::VectorSelector(vs) = &*expr else {
        return Err(format!(
            "1:1: parse error: unexpected expression {}, expected a series selector",
            go_quote(s)
        ));
    };
    if !vs.matchers.or_matchers.is_empty() {
        return Err("1:1: parse error: \"or\" in label matchers is not supported".into());
    }
    if vs.offset.is_some() || vs.at.is_some() {
        return Err("1:1: parse error: a series selector takes no offset or @ modifier".into());
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        out.push(convert_matcher(m)?);
    }
    Ok(out)
}

fn convert_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, String> {
    let kind = match m.op {
        MatchOp::Equal => MatchKind::Equal,
        MatchOp::NotEqual => MatchKind::NotEqual,
        MatchOp::Re(_) => MatchKind::Regex,
        MatchOp::NotRe(_) => MatchKind::NotRegex,
    };
    Matcher::new(kind, m.name.clone(), m.value.clone())
        .map_err(|e| super::response::bounded(&e.to_string(), 2 * MAX_QUOTED_CHARS).into_owned())
}

/// Most characters of a client's input that an error message quotes.
pub const MAX_QUOTED_CHARS: usize = 256;

/// Go's `%q` for the strings we echo back (printable ASCII and UTF-8 kept as they are), of at
/// most the first [`MAX_QUOTED_CHARS`] characters, then `...` after the closing quote.
pub fn go_quote(s: &str) -> String {
    let cut = s.char_indices().nth(MAX_QUOTED_CHARS).map(|(at, _)| at);
    let shown = cut.map_or(s, |at| &s[..at]);
    let mut out = String::with_capacity(shown.len() + 5);
    out.push('"');
    for c in shown.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    if cut.is_some() {
        out.push_str("...");
    }
    out
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_unix_seconds_with_rounded_millis() {
        assert_eq!(parse_time("1700000600"), Ok(1_700_000_600_000));
        assert_eq!(parse_time("1700000600.5"), Ok(1_700_000_600_500));
        assert_eq!(parse_time("1700000600.0004"), Ok(1_700_000_600_000));
        assert_eq!(parse_time("1700000600.0006"), Ok(1_700_000_600_001));
        assert_eq!(parse_time("-1.5"), Ok(-1_500));
        assert_eq!(parse_time("1.7e9"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("4"), Ok(4_000));
    }

    #[test]
    fn times_parse_as_rfc3339() {
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123456Z"),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_time("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn bad_times_are_refused_with_prometheus_text() {
        assert_eq!(
            parse_time("abc"),
            Err("cannot parse \"abc\" to a valid timestamp".into())
        );
        assert!(parse_time("2023-02-30T00:00:00Z").is_err());
        assert!(parse_time("2023-11-14 22:13:20Z").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn boundary_times_parse() {
        assert_eq!(parse_time(MIN_TIME_FORMATTED), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        assert_eq!(MIN_TIME_MS, -9_223_309_901_257_974_000);
        assert_eq!(MAX_TIME_MS, 9_223_309_901_257_974_999);
    }

    #[test]
    fn durations_parse_as_float_seconds_or_units() {
        assert_eq!(parse_duration("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration("0.5"), Ok(500_000_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-1"), Ok(-1_000_000_000));
        assert_eq!(
            parse_duration("1x"),
            Err("cannot parse \"1x\" to a valid duration".into())
        );
        assert!(parse_duration("1s1m").is_err(), "units out of order");
        assert!(parse_duration("1us").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e300").is_err());
    }

    #[test]
    fn durations_format_like_model_duration() {
        assert_eq!(format_prometheus_duration(300_000), "5m");
        assert_eq!(format_prometheus_duration(5_400_000), "1h30m");
        assert_eq!(format_prometheus_duration(0), "0s");
        assert_eq!(format_prometheus_duration(1_500), "1s500ms");
    }

    #[test]
    fn form_prefers_body_values_and_keeps_repeats() {
        let f = Form::new(
            Some(b"query=up&match%5B%5D=a"),
            Some("query=down&match[]=b&time=1"),
        );
        assert_eq!(f.value("query"), "up");
        assert_eq!(f.value("time"), "1");
        assert_eq!(f.value("missing"), "");
        assert_eq!(f.values("match[]"), vec!["a", "b"]);
        let plus = Form::new(None, Some("query=a+b%2Bc"));
        assert_eq!(plus.value("query"), "a b+c");
    }

    #[test]
    fn quoted_input_is_cut_to_a_prefix() {
        let long = "y".repeat(12_000);
        let q = go_quote(&long);
        assert_eq!(q.len(), MAX_QUOTED_CHARS + 5, "{q}");
        assert!(q.ends_with("\"..."));
        assert_eq!(go_quote("ab\"c"), "\"ab\\\"c\"");
        let bad = format!("{{a=~\"({long}\"}}");
        let e = parse_match_params(&[&bad]).expect_err("bad regex");
        assert!(
            e.len() < 2 * MAX_QUOTED_CHARS + 10,
            "{} chars: {e}",
            e.len()
        );
    }

    #[test]
    fn match_params_need_a_non_empty_matcher() {
        let sets =
            parse_match_params(&["up{job=\"a\"}", "{__name__=~\"x.*\"}"]).expect("valid selectors");
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0][0], Matcher::equal("__name__", "up"));
        assert_eq!(
            parse_match_params(&["{job=~\".*\"}"]),
            Err("match[] must contain at least one non-empty matcher".into())
        );
        assert!(parse_match_params(&["rate(up[5m])"]).is_err());
        assert!(parse_match_params(&["up{"]).is_err());
    }

    #[test]
    fn label_names_are_checked() {
        assert!(is_valid_label_name("__name__"));
        assert!(is_valid_label_name("job_1"));
        assert!(!is_valid_label_name("0bad"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("a-b"));
    }

    #[test]
    fn dedup_parameters_follow_thanos() {
        let defaults = vec!["replica".to_string()];
        let f = |q: &str| Form::new(None, Some(q));
        assert_eq!(dedup_labels(&f(""), &defaults).ok(), Some(defaults.clone()));
        assert_eq!(
            dedup_labels(&f("dedup=true"), &defaults).ok(),
            Some(defaults.clone())
        );
        assert_eq!(dedup_labels(&f("dedup=0"), &defaults).ok(), Some(vec![]));
        assert_eq!(
            dedup_labels(&f("replicaLabels[]=a&replicaLabels[]=b"), &defaults).ok(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            dedup_labels(&f("dedup=false&replicaLabels[]=a"), &defaults).ok(),
            Some(vec![])
        );
        let e = dedup_labels(&f("dedup=maybe"), &defaults).expect_err("bad bool");
        assert!(format!("{e:?}").contains("'dedup' parameter"), "{e:?}");
        let e = dedup_labels(&f("replicaLabels[]=1x"), &defaults).expect_err("bad name");
        assert!(format!("{e:?}").contains("invalid label name"), "{e:?}");
    }
}
