//! Values and functions of Prometheus' alert templates (template/template.go): `humanize*`,
//! `printf`, `query`, `first`, `label`, `value`, `toUpper`, `reReplaceAll`, ..., plus Go's
//! builtins (`eq`, `and`, `len`, `index`, ...), formatting numbers as Go's fmt does.

use std::collections::BTreeMap;

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go's nil (also missing struct fields).
    Nil,
    /// A string.
    Str(String),
    /// A float64 (every number; integers print without a fraction).
    Num(f64),
    /// A bool.
    Bool(bool),
    /// A `map[string]string` (labels).
    Map(BTreeMap<String, String>),
    /// A struct with named fields (the template's data, a query sample).
    Struct(BTreeMap<String, Value>),
    /// A slice (query results).
    List(Vec<Value>),
}

impl Value {
    /// Go's truth: false for zero values and empty collections.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Str(s) => !s.is_empty(),
            Value::Num(n) => *n != 0.0,
            Value::Bool(b) => *b,
            Value::Map(m) => !m.is_empty(),
            Value::Struct(_) => true,
            Value::List(l) => !l.is_empty(),
        }
    }

    /// `.name` of the value; a missing map key is "" (Prometheus' `missingkey=zero`).
    pub fn field(self, name: &str) -> Value {
        match self {
            Value::Map(m) => Value::Str(m.get(name).cloned().unwrap_or_default()),
            Value::Struct(mut m) => m.remove(name).unwrap_or(Value::Nil),
            _ => Value::Nil,
        }
    }

    /// How `{{ . }}` prints the value (Go's `%v`).
    pub fn to_go_string(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Str(s) => s.clone(),
            Value::Num(n) => format_g(*n, None),
            Value::Bool(b) => b.to_string(),
            Value::Map(m) => {
                let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", inner.join(" "))
            }
            Value::Struct(m) => {
                let inner: Vec<String> = m.values().map(Value::to_go_string).collect();
                format!("{{{}}}", inner.join(" "))
            }
            Value::List(l) => {
                let inner: Vec<String> = l.iter().map(Value::to_go_string).collect();
                format!("[{}]", inner.join(" "))
            }
        }
    }

    fn as_float(&self) -> Result<f64, String> {
        match self {
            Value::Num(n) => Ok(*n),
            Value::Str(s) => s.trim().parse::<f64>().map_err(|_| {
                format!(
                    "strconv.ParseFloat: parsing {}: invalid syntax",
                    super::file::go_q(s)
                )
            }),
            Value::Bool(_) | Value::Nil | Value::Map(_) | Value::Struct(_) | Value::List(_) => {
                Err(format!("can't convert {} to float", self.to_go_string()))
            }
        }
    }
}

/// Evaluates `query` calls: the expression at the evaluation time, as a list of samples.
pub type QueryFn<'a> =
    dyn Fn(&str) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> + Sync + 'a;

/// What template functions need from outside.
#[derive(Default)]
pub struct Env<'a> {
    /// The `query` function (None: `query` fails with an error).
    pub query: Option<&'a QueryFn<'a>>,
    /// `externalURL`, and the base of `pathPrefix`.
    pub external_url: String,
}

const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "toUpper",
    "toLower",
    "title",
    "match",
    "reReplaceAll",
    "safeHtml",
    "args",
    "pathPrefix",
    "externalURL",
    "stripPort",
    "stripDomain",
    "parseDuration",
    "toTime",
    "graphLink",
    "tableLink",
];

/// Whether a template function of this name exists.
pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

fn want(args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("wrong number of args: got {} want {n}", args.len()))
    }
}

fn sample(labels: BTreeMap<String, String>, v: f64) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Labels".into(), Value::Map(labels));
    m.insert("Value".into(), Value::Num(v));
    Value::Struct(m)
}

/// Calls function `name` with `args` (the piped value last).
pub fn call(name: &str, args: Vec<Value>, env: &Env<'_>) -> Result<Value, String> {
    let a = &args;
    let s = |v: &Value| v.to_go_string();
    Ok(match name {
        "and" => a
            .iter()
            .find(|v| !v.truthy())
            .or(a.last())
            .cloned()
            .unwrap_or(Value::Nil),
        "or" => a
            .iter()
            .find(|v| v.truthy())
            .or(a.last())
            .cloned()
            .unwrap_or(Value::Nil),
        "not" => {
            want(a, 1)?;
            Value::Bool(!a[0].truthy())
        }
        "len" => {
            want(a, 1)?;
            Value::Num(match &a[0] {
                Value::Str(s) => s.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                other => return Err(format!("len of type {}", other.to_go_string())),
            } as f64)
        }
        "index" => {
            a.iter()
                .skip(1)
                .try_fold(a.first().cloned().unwrap_or(Value::Nil), |v, k| {
                    match (v, k) {
                        (Value::Map(m), k) => {
                            Ok(Value::Str(m.get(&s(k)).cloned().unwrap_or_default()))
                        }
                        (Value::List(l), Value::Num(i)) => l
                            .get(*i as usize)
                            .cloned()
                            .ok_or_else(|| format!("index out of range: {i}")),
                        (v, _) => Err(format!("can't index item of type {}", v.to_go_string())),
                    }
                })?
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, a)?,
        "print" => Value::Str(a.iter().map(s).collect::<Vec<_>>().join("")),
        "println" => Value::Str(format!(
            "{}\n",
            a.iter().map(s).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            let (fmt, rest) = a.split_first().ok_or("wrong number of args for printf")?;
            Value::Str(sprintf(&s(fmt), rest))
        }
        "html" | "safeHtml" => Value::Str(escape_html(&a.iter().map(s).collect::<String>())),
        "js" => Value::Str(
            a.iter()
                .map(s)
                .collect::<String>()
                .replace('\'', "\\'")
                .replace('"', "\\\""),
        ),
        "urlquery" => Value::Str(
            form_urlencoded::byte_serialize(a.iter().map(s).collect::<String>().as_bytes())
                .collect(),
        ),
        "humanize" => Value::Str(humanize(one_float(a)?)),
        "humanize1024" => Value::Str(humanize1024(one_float(a)?)),
        "humanizeDuration" => Value::Str(humanize_duration(one_float(a)?)),
        "humanizePercentage" => {
            Value::Str(format!("{}%", format_g(one_float(a)? * 100.0, Some(4))))
        }
        "humanizeTimestamp" => Value::Str(humanize_timestamp(one_float(a)?)),
        "query" => {
            want(a, 1)?;
            let q = env.query.ok_or("query is not available here")?;
            Value::List(
                q(&s(&a[0]))?
                    .into_iter()
                    .map(|(l, v)| sample(l, v))
                    .collect(),
            )
        }
        "first" => match a.first() {
            Some(Value::List(l)) => l
                .first()
                .cloned()
                .ok_or("first() called on vector with no elements")?,
            _ => return Err("first() needs a query result".into()),
        },
        "label" => {
            want(a, 2)?;
            a[1].clone().field("Labels").field(&s(&a[0]))
        }
        "value" => {
            want(a, 1)?;
            a[0].clone().field("Value")
        }
        "strvalue" => {
            want(a, 1)?;
            a[0].clone().field("Labels").field("__value__")
        }
        "sortByLabel" => {
            want(a, 2)?;
            let key = s(&a[0]);
            let Value::List(mut l) = a[1].clone() else {
                return Err("sortByLabel needs a query result".into());
            };
            l.sort_by_key(|v| v.clone().field("Labels").field(&key).to_go_string());
            Value::List(l)
        }
        "toUpper" => Value::Str(s(a.first().ok_or("wrong number of args")?).to_uppercase()),
        "toLower" => Value::Str(s(a.first().ok_or("wrong number of args")?).to_lowercase()),
        "title" => Value::Str(title(&s(a.first().ok_or("wrong number of args")?))),
        "match" => {
            want(a, 2)?;
            let re = regex::Regex::new(&s(&a[0])).map_err(|e| e.to_string())?;
            Value::Bool(re.is_match(&s(&a[1])))
        }
        "reReplaceAll" => {
            want(a, 3)?;
            let re = regex::Regex::new(&s(&a[0])).map_err(|e| e.to_string())?;
            Value::Str(re.replace_all(&s(&a[2]), s(&a[1]).as_str()).into_owned())
        }
        "args" => {
            let mut m = BTreeMap::new();
            for (i, v) in a.iter().enumerate() {
                m.insert(format!("arg{i}"), v.clone());
            }
            Value::Struct(m)
        }
        "externalURL" => Value::Str(env.external_url.clone()),
        "pathPrefix" => Value::Str(
            env.external_url
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
                .unwrap_or_default(),
        ),
        "stripPort" => {
            let h = s(a.first().ok_or("wrong number of args")?);
            Value::Str(match h.rsplit_once(':') {
                Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
                    host.trim_matches(['[', ']']).to_string()
                }
                _ => h,
            })
        }
        "stripDomain" => {
            let h = s(a.first().ok_or("wrong number of args")?);
            let (host, port) = match h.rsplit_once(':') {
                Some((host, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                    (host.to_string(), format!(":{p}"))
                }
                _ => (h.clone(), String::new()),
            };
            Value::Str(format!(
                "{}{port}",
                host.split('.').next().unwrap_or_default()
            ))
        }
        "parseDuration" => {
            let d = s(a.first().ok_or("wrong number of args")?);
            let ms = crate::http::params::parse_prometheus_duration(&d)
                .ok_or_else(|| format!("not a valid duration string: {}", super::file::go_q(&d)))?;
            Value::Num(ms as f64 / 1000.0)
        }
        "toTime" => Value::Str(humanize_timestamp(one_float(a)?)),
        "graphLink" | "tableLink" => {
            let expr = s(a.first().ok_or("wrong number of args")?);
            let tab = if name == "graphLink" { 0 } else { 1 };
            let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
            Value::Str(format!("/graph?g0.expr={q}&g0.tab={tab}"))
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

fn one_float(a: &[Value]) -> Result<f64, String> {
    want(a, 1)?;
    a[0].as_float()
}

fn compare(op: &str, a: &[Value]) -> Result<Value, String> {
    let (x, rest) = a.split_first().ok_or("missing argument for comparison")?;
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let ord = |y: &Value| -> Result<std::cmp::Ordering, String> {
        match (x, y) {
            (Value::Num(p), Value::Num(q)) => {
                p.partial_cmp(q).ok_or_else(|| "NaN comparison".to_string())
            }
            (Value::Str(p), Value::Str(q)) => Ok(p.cmp(q)),
            (Value::Bool(p), Value::Bool(q)) if matches!(op, "eq" | "ne") => Ok(p.cmp(q)),
            _ => Err("incompatible types for comparison".into()),
        }
    };
    use std::cmp::Ordering::*;
    Ok(Value::Bool(match op {
        // eq is true when the first argument equals any of the others.
        "eq" => rest
            .iter()
            .map(ord)
            .collect::<Result<Vec<_>, _>>()?
            .contains(&Equal),
        "ne" => ord(&rest[0])? != Equal,
        "lt" => ord(&rest[0])? == Less,
        "le" => ord(&rest[0])? != Greater,
        "gt" => ord(&rest[0])? == Greater,
        _ => ord(&rest[0])? != Less,
    }))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

/// Go's `%g` (`prec` None: the shortest form, as `%v` prints a float64).
pub fn format_g(v: f64, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
        None => format!("{v:e}"),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits = mant.bytes().filter(|b| b.is_ascii_digit()).count() as i32;
    let eprec = match prec {
        // Go: with an explicit precision, a number with fewer digits than the precision
        // that is an integer uses its digit count.
        Some(p) => {
            let p = p.max(1) as i32;
            if p > digits && digits > exp {
                digits
            } else {
                p
            }
        }
        // Go's strconv decides with precision 6 for the shortest form.
        None => 6,
    };
    if exp < -4 || exp >= eprec {
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (digits - 1 - exp).max(0) as usize;
    let fixed = format!(
        "{:.*}",
        decimals,
        mant.parse::<f64>().unwrap_or(v) * 10f64.powi(exp)
    );
    if fixed.contains('.') {
        fixed
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        fixed
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %e %g %q %x %%`, with flags,
/// width and precision.
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut next = args.iter();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = it.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                it.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            it.next();
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                it.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let body = match (verb, arg) {
            ('d', Value::Num(n)) => format!("{}", n.trunc() as i64),
            ('f' | 'F', Value::Num(n)) => format!("{:.*}", prec.unwrap_or(6), n),
            ('e', Value::Num(n)) => {
                let s = format!("{:.*e}", prec.unwrap_or(6), n);
                let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                let e: i32 = e.parse().unwrap_or(0);
                format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
            }
            ('g' | 'v', Value::Num(n)) => format_g(*n, prec),
            ('s' | 'v', v) => {
                let s = v.to_go_string();
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
            ('q', v) => super::file::go_q(&v.to_go_string()),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('x', Value::Num(n)) => format!("{:x}", n.trunc() as i64),
            ('t', Value::Bool(b)) => b.to_string(),
            (verb, v) => format!("%!{verb}({})", v.to_go_string()),
        };
        let body = if flags.contains('+') && matches!(arg, Value::Num(n) if *n >= 0.0) {
            format!("+{body}")
        } else {
            body
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len < w {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && matches!(arg, Value::Num(_)) {
                let (sign, digits) = match body.strip_prefix(['-', '+']) {
                    Some(d) => (&body[..1], d),
                    None => ("", body.as_str()),
                };
                out.push_str(sign);
                out.push_str(&"0".repeat(pad));
                out.push_str(digits);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    out
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus' `humanizeDuration` of seconds: `1d 2h 3m 4s`, or `1.5s`, `250ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", format_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Prometheus' `humanizeTimestamp`: the UTC time of unix seconds at millisecond precision
/// (Prometheus goes through `model.Time`), as Go's `time.Time.String()` prints it.
pub fn humanize_timestamp(v: f64) -> String {
    let ns = v * 1e9;
    if !v.is_finite() || ns >= i64::MAX as f64 || ns <= i64::MIN as f64 {
        return format_g(v, Some(4));
    }
    let (date, time, frac) = utc_parts((ns as i64).div_euclid(1_000_000));
    format!("{date} {time}{frac} +0000 UTC")
}

/// Date `YYYY-MM-DD`, time `hh:mm:ss` and fraction (`.123`, trailing zeros cut, or "") of
/// unix milliseconds in UTC.
pub fn utc_parts(ms: i64) -> (String, String, String) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let frac = if milli == 0 {
        String::new()
    } else {
        format!(".{milli:03}").trim_end_matches('0').to_string()
    };
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60),
        frac,
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_functions_match_prometheus_outputs() {
        // Expected strings from Prometheus' template_test.go.
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(12345.0), "12.35k");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(1e-16), "100a");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1048576.0 * 1.5), "1.5Mi");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.0), "1s");
        assert_eq!(humanize_duration(60.0), "1m 0s");
        assert_eq!(humanize_duration(3600.0), "1h 0m 0s");
        assert_eq!(humanize_duration(86400.0 + 3661.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(0.1), "100ms");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(
            humanize_timestamp(1435065584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        let pct = call(
            "humanizePercentage",
            vec![Value::Num(0.1234567)],
            &Env::default(),
        );
        assert_eq!(pct, Ok(Value::Str("12.35%".into())));
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(format_g(1e6, None), "1e+06");
        assert_eq!(format_g(123456.0, None), "123456");
        assert_eq!(format_g(0.5, None), "0.5");
        assert_eq!(format_g(1e-5, None), "1e-05");
        assert_eq!(format_g(100.0, Some(4)), "100");
        assert_eq!(format_g(1e5, Some(4)), "1e+05");
        assert_eq!(
            sprintf(
                "%.2f|%5d|%-3s|%q|%%",
                &[
                    Value::Num(1.005),
                    Value::Num(42.0),
                    Value::Str("a".into()),
                    Value::Str("b".into())
                ]
            ),
            "1.00|   42|a  |\"b\"|%"
        );
    }

    #[test]
    fn query_results_feed_first_label_and_value() {
        type Samples = Vec<(BTreeMap<String, String>, f64)>;
        let q = |_: &str| -> Result<Samples, String> {
            Ok(vec![(
                BTreeMap::from([("job".to_string(), "api".to_string())]),
                3.0,
            )])
        };
        let env = Env {
            query: Some(&q),
            external_url: String::new(),
        };
        let r = call("query", vec![Value::Str("up".into())], &env).expect("query");
        let f = call("first", vec![r], &env).expect("first");
        assert_eq!(
            call("label", vec![Value::Str("job".into()), f.clone()], &env),
            Ok(Value::Str("api".into()))
        );
        assert_eq!(call("value", vec![f], &env), Ok(Value::Num(3.0)));
    }
}
