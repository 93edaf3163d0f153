//! The label-matcher regex check of Prometheus 2.42: Go's `regexp/syntax` errors for the
//! anchored pattern `^(?:<value>)$`, with Go's texts and the fragment Go quotes.
//!
//! Covered: unbalanced parentheses, unclosed classes, repetition without argument, nested
//! repetition, bad repeat counts, reversed class ranges, unknown POSIX and Unicode classes,
//! invalid escapes and unsupported `(?` groups. Rarer errors (nesting depth, program size)
//! are not detected here; such patterns count as valid.

/// Ok(whether the anchored regex matches the empty string), or Prometheus' error message.
pub fn check(value: &str) -> Result<bool, String> {
    let wrapped = format!("^(?:{value})$");
    if let Some((code, fragment)) = go_error(&wrapped) {
        return Err(format!("error parsing regexp: {code}: `{fragment}`"));
    }
    Ok(regex::Regex::new(&wrapped).is_ok_and(|re| re.is_match("")))
}

type GoError = (&'static str, String);

/// What the parser stack holds, as far as repetition cares.
#[derive(Clone, Copy, PartialEq)]
enum Top {
    Nothing,
    Operand,
}

fn go_error(s: &str) -> Option<GoError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut opens = 0usize;
    let mut top = Top::Nothing;
    let mut last_repeat: Option<usize> = None;
    while i < b.len() {
        let mut repeat_start = None;
        match b[i] {
            b'(' => {
                if b.get(i + 1) == Some(&b'?') {
                    i = match perl_group(s, i) {
                        Ok(v) => v,
                        Err(e) => return e,
                    };
                    if s[..i].ends_with(')') {
                        // A flag-only group like (?i) changes flags and is not an operand.
                        top = Top::Nothing;
                        last_repeat = None;
                        continue;
                    }
                } else {
                    i += 1;
                }
                opens += 1;
                top = Top::Nothing;
            }
            b'|' => {
                top = Top::Nothing;
                i += 1;
            }
            b')' => {
                if opens == 0 {
                    return Some(("unexpected )", s.to_string()));
                }
                opens -= 1;
                top = Top::Operand;
                i += 1;
            }
            b'*' | b'+' | b'?' | b'{' => {
                let after = if b[i] == b'{' {
                    match repeat_count(s, i) {
                        Some(Ok(end)) => end,
                        Some(Err(e)) => return Some(e),
                        None => {
                            // Not a repeat: a literal brace.
                            top = Top::Operand;
                            i += 1;
                            last_repeat = None;
                            continue;
                        }
                    }
                } else {
                    i + 1
                };
                let after = if b.get(after) == Some(&b'?') {
                    after + 1
                } else {
                    after
                };
                if let Some(prev) = last_repeat {
                    return Some((
                        "invalid nested repetition operator",
                        s[prev..after].to_string(),
                    ));
                }
                if top != Top::Operand {
                    return Some((
                        "missing argument to repetition operator",
                        s[i..after].to_string(),
                    ));
                }
                repeat_start = Some(i);
                i = after;
            }
            b'[' => {
                i = match class(s, i) {
                    Ok(v) => v,
                    Err(e) => return e,
                };
                top = Top::Operand;
            }
            b'\\' => {
                i = match escape(s, i, false) {
                    Ok(v) => v.1,
                    Err(e) => return e,
                };
                top = Top::Operand;
            }
            b'^' | b'$' => {
                top = Top::Operand;
                i += 1;
            }
            _ => {
                top = Top::Operand;
                i += s[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
        last_repeat = repeat_start;
    }
    if opens > 0 {
        return Some(("missing closing )", s.to_string()));
    }
    None
}

/// A `(?` group at `i`: returns where parsing continues, or Go's error.
fn perl_group(s: &str, i: usize) -> Result<usize, Option<GoError>> {
    let rest = &s[i + 2..];
    if let Some(name_rest) = rest.strip_prefix("P<") {
        return match name_rest.find('>') {
            Some(end) if is_group_name(&name_rest[..end]) => Ok(i + 4 + end + 1),
            Some(end) => Err(Some((
                "invalid named capture",
                s[i..i + 4 + end + 1].to_string(),
            ))),
            None => Err(Some(("invalid named capture", s[i..].to_string()))),
        };
    }
    let mut j = i + 2;
    for c in rest.chars() {
        j += c.len_utf8();
        match c {
            'i' | 'm' | 's' | 'U' | '-' => {}
            ':' | ')' => return Ok(j),
            _ => break,
        }
    }
    Err(Some((
        "invalid or unsupported Perl syntax",
        s[i..j].to_string(),
    )))
}

fn is_group_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c == '_' || c.is_alphanumeric())
}

/// `{n}`, `{n,}` or `{n,m}` at `i`: None when it is not a repeat (a literal `{`).
fn repeat_count(s: &str, i: usize) -> Option<Result<usize, GoError>> {
    let end = i + s[i..].find('}')?;
    let inner = &s[i + 1..end];
    let (min, max) = match inner.split_once(',') {
        Some((a, "")) => (a, None),
        Some((a, b)) => (a, Some(b)),
        None => (inner, Some(inner)),
    };
    let num = |t: &str| {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse::<u64>().unwrap_or(u64::MAX))
    };
    let min = num(min)?;
    let max = match max {
        Some(m) => Some(num(m)?),
        None => None,
    };
    if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
        return Some(Err(("invalid repeat count", s[i..=end].to_string())));
    }
    Some(Ok(end + 1))
}

/// A `\` escape at `i` (inside a class when `in_class`): returns (rune if a single char, end).
fn escape(s: &str, i: usize, in_class: bool) -> Result<(Option<char>, usize), Option<GoError>> {
    let mut chars = s[i + 1..].chars();
    let Some(c) = chars.next() else {
        return Err(Some((
            "trailing backslash at end of expression",
            String::new(),
        )));
    };
    let next = i + 1 + c.len_utf8();
    let invalid = |end: usize| Err(Some(("invalid escape sequence", s[i..end].to_string())));
    match c {
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((Some(c), next)),
        'A' | 'z' | 'b' | 'B' if !in_class => Ok((None, next)),
        'Q' if !in_class => Ok((
            None,
            s[next..].find("\\E").map_or(s.len(), |e| next + e + 2),
        )),
        'd' | 'D' | 's' | 'S' | 'w' | 'W' => Ok((None, next)),
        'p' | 'P' => {
            let (name, end) = if s[next..].starts_with('{') {
                match s[next..].find('}') {
                    Some(e) => (&s[next + 1..next + e], next + e + 1),
                    None => return invalid(s.len()),
                }
            } else {
                let n = s[next..].chars().next().map_or(0, char::len_utf8);
                (&s[next..next + n], next + n)
            };
            let name = name.strip_prefix('^').unwrap_or(name);
            if name != "Any" && regex::Regex::new(&format!("\\p{{{name}}}")).is_err() {
                return Err(Some((
                    "invalid character class range",
                    s[i..end].to_string(),
                )));
            }
            Ok((None, end))
        }
        '1'..='7' if !matches!(chars.next(), Some('0'..='7')) => invalid(next),
        '0'..='7' => {
            let digits = s[i + 1..]
                .bytes()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .count();
            let end = i + 1 + digits;
            Ok((
                u32::from_str_radix(&s[i + 1..end], 8)
                    .ok()
                    .and_then(char::from_u32),
                end,
            ))
        }
        'x' => {
            if s[next..].starts_with('{') {
                let Some(e) = s[next..].find('}') else {
                    return invalid(s.len());
                };
                let hex = &s[next + 1..next + e];
                match u32::from_str_radix(hex, 16).ok().filter(|v| *v <= 0x10FFFF) {
                    Some(v) if !hex.is_empty() => Ok((char::from_u32(v), next + e + 1)),
                    _ => invalid(next + e + 1),
                }
            } else {
                let hex = s
                    .get(next..next + 2)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                match hex {
                    Some(h) => Ok((
                        u32::from_str_radix(h, 16).ok().and_then(char::from_u32),
                        next + 2,
                    )),
                    None => invalid((next + 1).min(s.len())),
                }
            }
        }
        'a' => Ok((Some('\x07'), next)),
        'f' => Ok((Some('\x0c'), next)),
        'n' => Ok((Some('\n'), next)),
        'r' => Ok((Some('\r'), next)),
        't' => Ok((Some('\t'), next)),
        'v' => Ok((Some('\x0b'), next)),
        _ => invalid(next),
    }
}

const POSIX: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A class `[...]` at `i`: returns its end.
fn class(s: &str, i: usize) -> Result<usize, Option<GoError>> {
    let missing = || Some(("missing closing ]", s[i..].to_string()));
    let mut j = i + 1;
    if s[j..].starts_with('^') {
        j += 1;
    }
    let mut first = true;
    loop {
        let rest = &s[j..];
        if rest.is_empty() {
            return Err(missing());
        }
        if rest.starts_with(']') && !first {
            return Ok(j + 1);
        }
        first = false;
        if let Some(named) = rest.strip_prefix("[:") {
            if let Some(e) = named.find(":]") {
                let name = &named[..e];
                let bare = name.strip_prefix('^').unwrap_or(name);
                if !POSIX.contains(&bare) {
                    return Err(Some((
                        "invalid character class range",
                        rest[..e + 4].to_string(),
                    )));
                }
                j += e + 4;
                continue;
            }
        }
        let start = j;
        let (lo, after) = class_char(s, j).map_err(|e| e.or_else(missing))?;
        j = after;
        if s[j..].starts_with('-') && !s[j + 1..].starts_with(']') && j + 1 < s.len() {
            let (hi, after) = class_char(s, j + 1).map_err(|e| e.or_else(missing))?;
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if hi < lo {
                    return Err(Some((
                        "invalid character class range",
                        s[start..after].to_string(),
                    )));
                }
            }
            j = after;
        }
    }
}

/// One class character at `j`: (its rune if a single rune, end).
fn class_char(s: &str, j: usize) -> Result<(Option<char>, usize), Option<GoError>> {
    match s[j..].chars().next() {
        None => Err(None),
        Some('\\') => escape(s, j, true),
        Some(c) => Ok((Some(c), j + c.len_utf8())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &str) -> String {
        check(v).err().unwrap_or_default()
    }

    #[test]
    fn go_regexp_errors() {
        assert_eq!(e("("), "error parsing regexp: missing closing ): `^(?:()$`");
        assert_eq!(e(")"), "error parsing regexp: unexpected ): `^(?:))$`");
        assert_eq!(e("[a"), "error parsing regexp: missing closing ]: `[a)$`");
        assert_eq!(
            e("*"),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert_eq!(
            e("a**"),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
        assert_eq!(
            e("a{2,1}"),
            "error parsing regexp: invalid repeat count: `{2,1}`"
        );
        assert_eq!(
            e("[b-a]"),
            "error parsing regexp: invalid character class range: `b-a`"
        );
        assert_eq!(
            e("(?<n>x)"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?<`"
        );
        assert_eq!(
            e("\\8"),
            "error parsing regexp: invalid escape sequence: `\\8`"
        );
        assert_eq!(check(".*"), Ok(true));
        assert_eq!(check("a+"), Ok(false));
        assert_eq!(check("(?i)a|"), Ok(true));
    }
}
