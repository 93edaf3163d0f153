//! `label_replace` and `label_join` on one label set.

use regex::Regex;
use storage::labels::Labels;

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn with_label(labels: &Labels, dst: &str, value: &str) -> Labels {
    Labels::from_pairs(
        labels
            .iter()
            .filter(|l| l.name != dst)
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .chain((!value.is_empty()).then_some((dst, value))),
    )
}

/// `label_replace`: if `regex` (fully anchored) matches the value of `src`, sets `dst` to the
/// expanded `replacement` (an empty result deletes `dst`); otherwise returns the labels as-is.
pub fn label_replace(
    labels: &Labels,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<Labels, String> {
    let re = Regex::new(&format!("^(?:{regex})$"))
        .map_err(|_| format!("invalid regular expression in label_replace(): {regex}"))?;
    if !valid_label_name(dst) {
        return Err(format!(
            "invalid destination label name in label_replace(): {dst}"
        ));
    }
    let src_val = labels.get(src).unwrap_or("");
    match re.captures(src_val) {
        None => Ok(labels.clone()),
        Some(caps) => {
            let mut out = String::new();
            caps.expand(replacement, &mut out);
            Ok(with_label(labels, dst, &out))
        }
    }
}

/// `label_join`: sets `dst` to the values of `srcs` joined by `sep` (empty deletes `dst`).
pub fn label_join(labels: &Labels, dst: &str, sep: &str, srcs: &[&str]) -> Result<Labels, String> {
    if !valid_label_name(dst) {
        return Err(format!(
            "invalid destination label name in label_join(): {dst}"
        ));
    }
    for s in srcs {
        if !valid_label_name(s) {
            return Err(format!("invalid source label name in label_join(): {s}"));
        }
    }
    let joined: Vec<&str> = srcs.iter().map(|s| labels.get(s).unwrap_or("")).collect();
    Ok(with_label(labels, dst, &joined.join(sep)))
}
