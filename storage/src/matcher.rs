//! Label matchers (`=`, `!=`, `=~`, `!~`) with fully anchored regular expressions.
//!
//! Regular expressions follow Prometheus: the pattern is anchored at both ends (`a=~"b"` does
//! not match `"abc"`), compiled as `^(?:pattern)$`. The `regex` crate's syntax is close to Go's
//! RE2; one difference is that `\d`, `\w` and `\s` are Unicode-aware here and ASCII-only in Go.

use regex::Regex;
use std::fmt;

/// How a matcher compares a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// `name="value"`
    Equal,
    /// `name!="value"`
    NotEqual,
    /// `name=~"regex"`
    Regex,
    /// `name!~"regex"`
    NotRegex,
}

impl MatchKind {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Equal => "=",
            MatchKind::NotEqual => "!=",
            MatchKind::Regex => "=~",
            MatchKind::NotRegex => "!~",
        }
    }

    /// True for `!=` and `!~`.
    pub fn is_negative(self) -> bool {
        matches!(self, MatchKind::NotEqual | MatchKind::NotRegex)
    }

    /// The opposite operator (`=` <-> `!=`, `=~` <-> `!~`).
    pub fn inverse(self) -> MatchKind {
        match self {
            MatchKind::Equal => MatchKind::NotEqual,
            MatchKind::NotEqual => MatchKind::Equal,
            MatchKind::Regex => MatchKind::NotRegex,
            MatchKind::NotRegex => MatchKind::Regex,
        }
    }
}

/// A matcher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// The regular expression does not compile.
    #[error("invalid regular expression {regex:?} for label {name:?}: {reason}")]
    BadRegex {
        /// Label name the matcher applies to.
        name: String,
        /// The pattern as given.
        regex: String,
        /// Why it does not compile.
        reason: String,
    },
}

/// One label matcher, such as `job=~"api|web"`.
///
/// Fields are private so the compiled regex always agrees with `value` and `kind`.
#[derive(Clone, Debug)]
pub struct Matcher {
    name: String,
    value: String,
    kind: MatchKind,
    re: Option<Regex>,
}

impl Matcher {
    /// A matcher of any kind; fails only for a regex that does not compile.
    pub fn new(
        kind: MatchKind,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match kind {
            MatchKind::Equal | MatchKind::NotEqual => None,
            MatchKind::Regex | MatchKind::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$")).map_err(|e| MatcherError::BadRegex {
                    name: name.clone(),
                    regex: value.clone(),
                    reason: e.to_string(),
                })?,
            ),
        };
        Ok(Matcher {
            name,
            value,
            kind,
            re,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            kind: MatchKind::Equal,
            re: None,
        }
    }

    /// `name!="value"`.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            kind: MatchKind::NotEqual,
            re: None,
        }
    }

    /// `name=~"regex"`.
    pub fn regex(name: impl Into<String>, re: impl Into<String>) -> Result<Self, MatcherError> {
        Matcher::new(MatchKind::Regex, name, re)
    }

    /// `name!~"regex"`.
    pub fn not_regex(name: impl Into<String>, re: impl Into<String>) -> Result<Self, MatcherError> {
        Matcher::new(MatchKind::NotRegex, name, re)
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value or the regex as given (without the anchors).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The operator.
    pub fn kind(&self) -> MatchKind {
        self.kind
    }

    /// True when `value` satisfies the matcher; a missing label is matched as `""`.
    pub fn matches(&self, value: &str) -> bool {
        match (self.kind, &self.re) {
            (MatchKind::Equal, _) => value == self.value,
            (MatchKind::NotEqual, _) => value != self.value,
            (MatchKind::Regex, Some(re)) => re.is_match(value),
            (MatchKind::NotRegex, Some(re)) => !re.is_match(value),
            // Constructors always compile a regex for the regex kinds.
            (MatchKind::Regex | MatchKind::NotRegex, None) => false,
        }
    }

    /// The matcher selecting exactly the values this one rejects.
    pub fn inverse(&self) -> Matcher {
        Matcher {
            name: self.name.clone(),
            value: self.value.clone(),
            kind: self.kind.inverse(),
            re: self.re.clone(),
        }
    }

    /// For a positive regex that is a plain alternation of literals (`a|b|c`), the literals:
    /// their postings can be looked up directly instead of testing every value of the label.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        if self.kind != MatchKind::Regex {
            return None;
        }
        const META: &str = "\\.+*?()|[]{}^$";
        let parts: Vec<String> = self.value.split('|').map(str::to_owned).collect();
        let literal = |p: &String| !p.chars().any(|c| META.contains(c));
        parts.iter().all(literal).then_some(parts)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    /// Prints `name="value"` with the operator, as PromQL writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.kind.as_str(), self.value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn regex_is_anchored_at_both_ends() {
        let m = Matcher::regex("a", "b").unwrap();
        assert!(m.matches("b"));
        assert!(!m.matches("abc"));
        assert!(!m.matches("ab"));
        assert!(!m.matches("bc"));
        // The anchors wrap the whole alternation, not only its first and last branch.
        let m = Matcher::regex("a", "x|y").unwrap();
        assert!(m.matches("x") && m.matches("y"));
        assert!(!m.matches("xz") && !m.matches("zy"));
    }

    #[test]
    fn negative_matchers_invert() {
        let m = Matcher::not_regex("a", "b.*").unwrap();
        assert!(!m.matches("bcd"));
        assert!(m.matches("abc"));
        assert!(m.matches(""));
        let m = Matcher::not_equal("a", "x");
        assert!(m.matches("") && !m.matches("x"));
        assert!(m.inverse().matches("x"));
    }

    #[test]
    fn empty_value_semantics() {
        assert!(Matcher::equal("a", "").matches(""));
        assert!(Matcher::regex("a", ".*").unwrap().matches(""));
        assert!(!Matcher::regex("a", ".+").unwrap().matches(""));
    }

    #[test]
    fn bad_regex_is_an_error_naming_it() {
        let e = Matcher::regex("job", "a(b").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"a(b\""), "{msg}");
        assert!(msg.contains("job"), "{msg}");
    }

    #[test]
    fn set_matches_only_for_literal_alternations() {
        let m = Matcher::regex("i", "a|b-1|c_d").unwrap();
        assert_eq!(
            m.set_matches(),
            Some(vec!["a".into(), "b-1".into(), "c_d".into()])
        );
        assert_eq!(Matcher::regex("i", "a.*|b").unwrap().set_matches(), None);
        assert_eq!(Matcher::equal("i", "a").set_matches(), None);
    }

    #[test]
    fn displays_like_promql() {
        assert_eq!(
            Matcher::regex("job", "a|b").unwrap().to_string(),
            r#"job=~"a|b""#
        );
        assert_eq!(Matcher::not_equal("x", "y").to_string(), r#"x!="y""#);
    }
}
