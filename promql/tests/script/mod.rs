//! Parser for Prometheus' PromQL test scripts (`load`, `clear`, `eval*`), the 2.42 format plus
//! the parts of the newer format the runner can use (`eval range`, `expect fail|ordered`).

use storage::labels::Labels;

/// Float bits of a staleness marker.
pub const STALE_BITS: u64 = 0x7ff0_0000_0000_0002;

/// One expected element.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A scalar result.
    Scalar(f64),
    /// Series with one value (instant) or one value-or-gap per step (range).
    Series(Vec<(Labels, Vec<Option<f64>>)>),
}

/// What an eval runs.
#[derive(Debug, Clone)]
pub enum EvalKind {
    /// `eval instant at T`.
    Instant { at_ms: i64 },
    /// `eval range from A to B step S`.
    Range { start: i64, end: i64, step: i64 },
}

/// One command of a script.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// Start over with empty storage.
    Clear,
    /// Append series.
    Load(Vec<(Labels, Vec<(i64, f64)>)>),
    /// Evaluate and compare.
    Eval {
        kind: EvalKind,
        expr: String,
        fail: bool,
        ordered: bool,
        expect: Expect,
        line: usize,
    },
    /// A command the runner cannot run (newer syntax): counted as not run.
    #[allow(dead_code)]
    Unsupported {
        line: usize,
        evals: usize,
        why: String,
    },
}

/// A Prometheus duration such as `5m`, `1h30m`, `100ms`.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let (mut i, mut total) = (0usize, 0i64);
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let ust = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[ust..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total += n * mult;
    }
    Some(if neg { -total } else { total })
}

/// A float as Go's ParseFloat reads it (Inf/NaN case-insensitive).
pub fn parse_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        l if l.contains("inf") || l.contains("nan") => None,
        _ => s.parse().ok(),
    }
}

/// An expectation number: Go's ParseInt(s, 0, 64) first, then ParseFloat.
pub fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bb) = lower.strip_prefix("0b") {
        i64::from_str_radix(bb, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if !lower.is_empty() && lower.bytes().all(|c| c.is_ascii_digit()) {
        lower.parse().ok()
    } else {
        None
    };
    match int {
        Some(i) => Some(if neg { -(i as f64) } else { i as f64 }),
        None => parse_float(s),
    }
}

/// Reads a quoted string starting at `b[i]` (a quote), returning the value and the index after.
fn read_quoted(s: &str, i: usize) -> Option<(String, usize)> {
    let q = s[i..].chars().next()?;
    let mut out = String::new();
    let mut it = s[i + 1..].char_indices();
    while let Some((k, c)) = it.next() {
        if c == q {
            return Some((out, i + 1 + k + 1));
        }
        if c == '\\' && q != '`' {
            let (_, e) = it.next()?;
            out.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                other => other,
            });
        } else {
            out.push(c);
        }
    }
    None
}

/// Splits `name{a="b"} values` into labels and the rest.
pub fn parse_series(line: &str) -> Option<(Labels, &str)> {
    let line = line.trim();
    let brace = line.find('{');
    let ws = line.find(char::is_whitespace).unwrap_or(line.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    let rest_start;
    match brace {
        Some(bi) if bi <= ws => {
            let name = line[..bi].trim();
            if !name.is_empty() {
                pairs.push(("__name__".into(), name.into()));
            }
            let mut i = bi + 1;
            loop {
                let r = &line[i..];
                let skip = r.len() - r.trim_start().len();
                i += skip;
                let c = line[i..].chars().next()?;
                if c == '}' {
                    rest_start = i + 1;
                    break;
                }
                if c == ',' {
                    i += 1;
                    continue;
                }
                let (lname, after) = if c == '"' || c == '\'' || c == '`' {
                    read_quoted(line, i)?
                } else {
                    let end = line[i..]
                        .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == ':'))
                        .map_or(line.len(), |k| i + k);
                    (line[i..end].to_string(), end)
                };
                i = after;
                let r = &line[i..];
                i += r.len() - r.trim_start().len();
                if !line[i..].starts_with('=') {
                    return None;
                }
                i += 1;
                let r = &line[i..];
                i += r.len() - r.trim_start().len();
                let (val, after) = read_quoted(line, i)?;
                i = after;
                pairs.push((lname, val));
            }
        }
        _ => {
            pairs.push(("__name__".into(), line[..ws].into()));
            rest_start = ws;
        }
    }
    Some((Labels::from_pairs(pairs), line[rest_start..].trim()))
}

/// Expands a value sequence (`1 2+3x2 _ stale _x3`) into one entry per step.
pub fn parse_values(s: &str) -> Option<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for item in s.split_whitespace() {
        if item == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = item.strip_prefix("_x") {
            let n: usize = n.parse().ok()?;
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        if item == "stale" {
            out.push(Some(f64::from_bits(STALE_BITS)));
            continue;
        }
        let (base, times) = match item.rfind('x') {
            Some(xi)
                if item[xi + 1..].bytes().all(|c| c.is_ascii_digit()) && xi + 1 < item.len() =>
            {
                (&item[..xi], Some(item[xi + 1..].parse::<usize>().ok()?))
            }
            _ => (item, None),
        };
        // Split `a+b` / `a-b` at an operator that is not a leading sign or an exponent sign.
        let bytes = base.as_bytes();
        let mut split = None;
        for k in 1..bytes.len() {
            if (bytes[k] == b'+' || bytes[k] == b'-') && !matches!(bytes[k - 1], b'e' | b'E') {
                split = Some(k);
                break;
            }
        }
        match (split, times) {
            (Some(k), Some(n)) => {
                let mut a = parse_float(&base[..k])?;
                let b = parse_float(&base[k..])?;
                out.push(Some(a));
                for _ in 0..n {
                    a += b;
                    out.push(Some(a));
                }
            }
            (None, Some(n)) => {
                let a = parse_float(base)?;
                out.extend(std::iter::repeat_n(Some(a), n + 1));
            }
            (None, None) => out.push(Some(parse_float(base)?)),
            (Some(_), None) => return None,
        }
    }
    Some(out)
}

fn parse_time(s: &str) -> Option<i64> {
    parse_duration(s).or_else(|| s.parse::<i64>().ok().map(|x| x * 1000))
}

/// Parses a whole script.
pub fn parse_script(text: &str) -> Vec<Cmd> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(str::trim)
        .map(|l| if l.starts_with('#') { "" } else { l })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        let word0 = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut j = i + 1;
        while word0 != "clear" && j < lines.len() && !lines[j].is_empty() {
            j += 1;
        }
        let body = &lines[i + 1..j];
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let cmd = if word == "clear" {
            Cmd::Clear
        } else if word == "load" {
            parse_load(l, body).unwrap_or_else(|| Cmd::Unsupported {
                line: start + 1,
                evals: 0,
                why: "load not understood".into(),
            })
        } else if word.starts_with("eval") {
            parse_eval(l, body, start + 1).unwrap_or_else(|why| Cmd::Unsupported {
                line: start + 1,
                evals: 1,
                why,
            })
        } else {
            Cmd::Unsupported {
                line: start + 1,
                evals: 0,
                why: format!("unknown command {word}"),
            }
        };
        cmds.push(cmd);
        i = j;
    }
    cmds
}

fn parse_load(l: &str, body: &[&str]) -> Option<Cmd> {
    let step = parse_duration(l.split_whitespace().nth(1)?)?;
    let mut series = Vec::new();
    for line in body {
        if line.contains("{{") || line.contains("@st") {
            return None;
        }
        let (labels, rest) = parse_series(line)?;
        let vals = parse_values(rest)?;
        let samples = vals
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k as i64 * step, v)))
            .collect();
        series.push((labels, samples));
    }
    Some(Cmd::Load(series))
}

fn parse_eval(l: &str, body: &[&str], line: usize) -> Result<Cmd, String> {
    let mut words = l.splitn(2, char::is_whitespace);
    let head = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("").trim();
    let (mut fail, mut ordered) = match head {
        "eval" | "eval_warn" | "eval_info" => (false, false),
        "eval_fail" => (true, false),
        "eval_ordered" => (false, true),
        other => return Err(format!("unknown eval form {other}")),
    };
    let toks: Vec<&str> = rest.split_whitespace().collect();
    let (kind, expr) = match toks.first() {
        Some(&"instant") => {
            if toks.get(1) != Some(&"at") {
                return Err("instant eval without `at`".into());
            }
            let t = toks.get(2).and_then(|t| parse_time(t)).ok_or("bad time")?;
            (EvalKind::Instant { at_ms: t }, after_tokens(rest, 3))
        }
        Some(&"range") => {
            if toks.get(1) != Some(&"from")
                || toks.get(3) != Some(&"to")
                || toks.get(5) != Some(&"step")
            {
                return Err("bad range eval".into());
            }
            let p = |k: usize| {
                toks.get(k)
                    .and_then(|t| parse_time(t))
                    .ok_or("bad range time")
            };
            (
                EvalKind::Range {
                    start: p(2)?,
                    end: p(4)?,
                    step: p(6)?,
                },
                after_tokens(rest, 7),
            )
        }
        _ => return Err("eval without instant/range".into()),
    };
    let mut series = Vec::new();
    let mut scalar = None;
    for b in body {
        if let Some(e) = b.strip_prefix("expect") {
            let e = e.trim();
            if e.starts_with("fail") {
                fail = true;
            } else if e.starts_with("ordered") {
                ordered = true;
            } else if e.starts_with("no_warn") || e.starts_with("no_info") {
            } else {
                return Err(format!("unsupported expectation `expect {e}`"));
            }
            continue;
        }
        if b.starts_with("expected_fail_message") || b.starts_with("expected_fail_regexp") {
            continue;
        }
        if b.contains("{{") {
            return Err("native histogram expectation".into());
        }
        if let Some(v) = parse_number(b) {
            scalar = Some(v);
            continue;
        }
        let (labels, vals) = parse_series(b).ok_or(format!("bad expectation `{b}`"))?;
        let vals = parse_values(vals).ok_or(format!("bad values `{b}`"))?;
        series.push((labels, vals));
    }
    let expect = match scalar {
        Some(v) if series.is_empty() => Expect::Scalar(v),
        Some(_) => return Err("scalar mixed with series".into()),
        None => Expect::Series(series),
    };
    Ok(Cmd::Eval {
        kind,
        expr: expr.to_string(),
        fail,
        ordered,
        expect,
        line,
    })
}

/// The text after the first `n` whitespace-separated tokens.
fn after_tokens(s: &str, n: usize) -> &str {
    let mut rest = s.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}
