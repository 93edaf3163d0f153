//! Go's `%q` (strconv.Quote / QuoteRune) and `%#U` formatting, which Prometheus' messages use.

/// Whether Go's `strconv.IsPrint` would call `c` printable (close enough: Unicode controls,
/// separators other than the ASCII space, and private or unassigned planes are not).
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

fn escape_into(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `fmt.Sprintf("%q", s)`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape_into(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%.10q...", s)` when `s` is longer than 10 bytes, else `%q`: how Prometheus
/// shows the text of numbers, strings and durations in "unexpected" messages.
pub fn quote_item(s: &str) -> String {
    if s.len() > 10 {
        let cut: String = s.chars().take(10).collect();
        format!("{}...", quote(&cut))
    } else {
        quote(s)
    }
}

/// `fmt.Sprintf("%q", r)` for a rune; `None` is Go's `eof` (-1), printed as U+FFFD.
pub fn quote_rune(r: Option<char>) -> String {
    let c = r.unwrap_or('\u{FFFD}');
    let mut out = String::from("'");
    escape_into(&mut out, c, '\'');
    out.push('\'');
    out
}

/// `fmt.Sprintf("%#U", r)`: `U+0071 'q'`, without the quoted form for unprintable runes.
pub fn unicode_form(r: Option<char>) -> String {
    match r {
        None => "U+FFFFFFFFFFFFFFFF".to_string(),
        Some(c) if is_print(c) => format!("U+{:04X} '{c}'", c as u32),
        Some(c) => format!("U+{:04X}", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\x01é""#);
        assert_eq!(quote_rune(Some('\'')), r"'\''");
        assert_eq!(quote_rune(None), "'\u{FFFD}'");
        assert_eq!(quote_item("12345678901"), r#""1234567890"..."#);
        assert_eq!(unicode_form(Some('q')), "U+0071 'q'");
        assert_eq!(unicode_form(Some('\n')), "U+000A");
    }
}
