//! `label_replace` and `label_join` on one series' labels, with Prometheus 2.42's errors.
//!
//! The regex is fully anchored (`^(?:re)$`) and compiled by the `regex` crate, whose syntax is
//! RE2's. Known differences from Go's `regexp`: `\d`, `\w`, `\s` and `\b` are Unicode-aware
//! here and ASCII-only in Go, and `\Q...\E` is not supported here.

use regex::Regex;
use storage::labels::{Label, Labels};

/// True for a Prometheus 2.42 label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A compiled `label_replace(v, dst, replacement, src, regex)`, to apply to many series.
#[derive(Debug, Clone)]
pub struct LabelReplace {
    dst: String,
    replacement: String,
    src: String,
    regex: Regex,
}

impl LabelReplace {
    /// Compiles the regex; errors with Prometheus' texts for a bad regex (checked first) or
    /// a bad destination label name.
    pub fn new(dst: &str, replacement: &str, src: &str, regex: &str) -> Result<Self, String> {
        let compiled = Regex::new(&format!("^(?:{regex})$"))
            .map_err(|_| format!("invalid regular expression in label_replace(): {regex}"))?;
        if !is_valid_label_name(dst) {
            return Err(format!(
                "invalid destination label name in label_replace(): {dst}"
            ));
        }
        Ok(LabelReplace {
            dst: dst.to_string(),
            replacement: replacement.to_string(),
            src: src.to_string(),
            regex: compiled,
        })
    }

    /// The labels after replacement. A missing source label matches as the empty string; no
    /// match leaves the labels unchanged; an empty expansion removes `dst`.
    pub fn apply(&self, labels: &Labels) -> Labels {
        let src_value = labels.get(&self.src).unwrap_or("");
        let Some(caps) = self.regex.captures(src_value) else {
            return labels.clone();
        };
        let value = expand(&self.regex, &caps, &self.replacement);
        with_label(labels, &self.dst, &value)
    }
}

/// `label_replace` for one series (compiles the regex each call; use [`LabelReplace`] for
/// many).
pub fn label_replace(
    labels: &Labels,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<Labels, String> {
    Ok(LabelReplace::new(dst, replacement, src, regex)?.apply(labels))
}

/// `label_join`: sets `dst` to the values of `srcs` (missing ones as empty strings) joined by
/// `sep`; an empty result removes `dst`. Source names are validated before the destination,
/// as in 2.42.
pub fn label_join(labels: &Labels, dst: &str, sep: &str, srcs: &[&str]) -> Result<Labels, String> {
    if let Some(bad) = srcs.iter().find(|s| !is_valid_label_name(s)) {
        return Err(format!("invalid source label name in label_join(): {bad}"));
    }
    if !is_valid_label_name(dst) {
        return Err(format!(
            "invalid destination label name in label_join(): {dst}"
        ));
    }
    let joined = srcs
        .iter()
        .map(|s| labels.get(s).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(sep);
    Ok(with_label(labels, dst, &joined))
}

/// `labels` with `name` set to `value`, or removed when `value` is empty.
fn with_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut out: Vec<Label> = Vec::with_capacity(labels.len() + 1);
    let mut placed = value.is_empty();
    for l in labels.iter() {
        if !placed && l.name.as_str() > name {
            out.push(Label::new(name, value));
            placed = true;
        }
        if l.name != name {
            out.push(l.clone());
        } else if !value.is_empty() {
            out.push(Label::new(name, value));
            placed = true;
        }
    }
    if !placed {
        out.push(Label::new(name, value));
    }
    Labels::from_sorted(out)
}

/// Go's `Regexp.Expand`: `$$` is a `$`; `$name` takes the longest run of letters, digits and
/// `_` (so `$1x` means group `1x`); `${name}` delimits it; a number names a group by index,
/// anything else by name; an unknown or unmatched group expands to nothing; a `$` not followed
/// by a valid reference stays literal.
pub fn expand(regex: &Regex, caps: &regex::Captures<'_>, template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = extract_reference(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match group_number(name) {
            Some(i) => caps.get(i),
            None => regex
                .capture_names()
                .enumerate()
                .filter(|(_, n)| *n == Some(name))
                .find_map(|(i, _)| caps.get(i)),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// Splits a reference (`name` or `{name}`) off the text after a `$`.
fn extract_reference(s: &str) -> Option<(&str, &str)> {
    let (body, braced) = match s.strip_prefix('{') {
        Some(b) => (b, true),
        None => (s, false),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_numeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = &body[end..];
    if braced {
        return rest.strip_prefix('}').map(|r| (name, r));
    }
    Some((name, rest))
}

/// Go's group-number rule: ASCII digits, no leading zero, below 1e8.
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse::<usize>().ok().filter(|&n| n < 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn metric(src: &str) -> Labels {
        lbls(&[
            ("__name__", "testmetric"),
            ("src", src),
            ("dst", "original-destination-value"),
        ])
    }

    fn replace(l: &Labels, dst: &str, repl: &str, src: &str, re: &str) -> Labels {
        label_replace(l, dst, repl, src, re).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn full_string_match_replaces() {
        let out = replace(
            &metric("source-value-10"),
            "dst",
            "destination-value-$1",
            "src",
            "source-value-(.*)",
        );
        assert_eq!(out.get("dst"), Some("destination-value-10"));
    }

    #[test]
    fn substring_match_does_not_replace() {
        let m = metric("source-value-10");
        assert_eq!(
            replace(&m, "dst", "destination-value-$1", "src", "value-(.*)"),
            m
        );
    }

    #[test]
    fn multiple_groups_and_missing_source() {
        let m = metric("source-value-10");
        let out = replace(&m, "dst", "$1-value-$2", "src", "(.*)-value-(.*)");
        assert_eq!(out.get("dst"), Some("source-value-10"));
        // Missing source with a regex that needs text: unchanged.
        assert_eq!(
            replace(
                &m,
                "dst",
                "value-$1",
                "nonexistent-src",
                "source-value-(.*)"
            ),
            m
        );
        // Missing source matched by (.*): overwritten with the empty group.
        let out = replace(&m, "dst", "value-$1", "nonexistent-src", "(.*)");
        assert_eq!(out.get("dst"), Some("value-"));
    }

    #[test]
    fn empty_result_removes_destination() {
        let out = replace(&metric("x"), "dst", "", "dst", ".*");
        assert_eq!(out, lbls(&[("__name__", "testmetric"), ("src", "x")]));
    }

    #[test]
    fn new_destination_is_inserted_in_order() {
        let out = replace(&metric("a"), "aaa", "$1", "src", "(.*)");
        assert_eq!(
            out.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["__name__", "aaa", "dst", "src"]
        );
        let out = replace(&metric("a"), "zzz", "$1", "src", "(.*)");
        assert_eq!(out.get("zzz"), Some("a"));
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn errors_use_prometheus_wording() {
        let m = metric("a");
        assert_eq!(
            label_replace(&m, "dst", "value-$1", "src", "(.*")
                .err()
                .as_deref(),
            Some("invalid regular expression in label_replace(): (.*")
        );
        assert_eq!(
            label_replace(&m, "invalid-label-name", "", "src", "(.*)")
                .err()
                .as_deref(),
            Some("invalid destination label name in label_replace(): invalid-label-name")
        );
        // The regex is checked first.
        assert!(label_replace(&m, "bad-dst", "", "src", "(")
            .is_err_and(|e| e.starts_with("invalid regular expression")));
    }

    #[test]
    fn expansion_follows_go_rules() {
        let m = lbls(&[("src", "ab")]);
        let cases = [
            ("$1x", ""), // group "1x" does not exist
            ("${1}x", "ax"),
            ("$$1", "$1"),
            ("$", "$"),
            ("a$-", "a$-"),
            ("${1", "${1"),
            ("${}", "${}"),
            ("$first$2", "ab"),
            ("${first}-${2}", "a-b"),
            ("$01", ""), // leading zero: a name, not group 1
            ("$3", ""),  // out of range
            ("$0", "ab"),
        ];
        for (template, want) in cases {
            let out = replace(&m, "dst", template, "src", "(?P<first>a)(b)");
            assert_eq!(out.get("dst").unwrap_or(""), want, "template {template:?}");
        }
    }

    #[test]
    fn label_join_cases_from_functions_test() {
        let m = lbls(&[("src", "a"), ("src1", "b"), ("src2", "c"), ("dst", "orig")]);
        let j = |dst: &str, sep: &str, srcs: &[&str]| {
            label_join(&m, dst, sep, srcs).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(
            j("dst", "-", &["src", "src1", "src2"]).get("dst"),
            Some("a-b-c")
        );
        assert_eq!(
            j("dst", "-", &["src", "src3", "src1"]).get("dst"),
            Some("a--b")
        );
        assert_eq!(j("dst", "", &["emptysrc", "emptysrc1"]).get("dst"), None);
        assert_eq!(j("dst", ", ", &[]).get("dst"), None);
        assert_eq!(j("new", ", ", &["src", "src1"]).get("new"), Some("a, b"));
    }

    #[test]
    fn label_join_validates_sources_then_destination() {
        let m = lbls(&[("a", "1")]);
        assert_eq!(
            label_join(&m, "bad-dst", "", &["ok", "bad-src"])
                .err()
                .as_deref(),
            Some("invalid source label name in label_join(): bad-src")
        );
        assert_eq!(
            label_join(&m, "bad-dst", "", &["ok"]).err().as_deref(),
            Some("invalid destination label name in label_join(): bad-dst")
        );
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("_a1"));
        assert!(is_valid_label_name("__name__"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name("ä"));
    }
}
