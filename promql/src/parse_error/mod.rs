//! Prometheus 2.42's parse error messages, position included, for queries `promql-parser`
//! rejects.
//!
//! promql-parser 0.11 reports only "invalid promql query" (or a lexer message without a
//! position). To answer like Prometheus (`1:5: parse error: unexpected identifier "bar"`), a
//! rejected query is parsed again by a recogniser of the 2.42 grammar that stops at the first
//! error and words it the way 2.42 does: a lexer with 2.42's tokens and texts, a
//! recursive-descent parser mirroring the yacc grammar's error productions, and 2.42's type
//! checks. promql-parser stays the judge of what is valid; this module only explains.
//! `tests/parse_errors.rs` compares it with errors recorded from Prometheus 2.42.

mod ast;
mod check;
mod functions;
mod goquote;
mod lexer;
mod literals;
mod parser;
mod regex;

use std::fmt;

/// A parse error as Prometheus 2.42 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the query of what the error points at.
    pub pos: usize,
    /// The message after `parse error: `.
    pub message: String,
}

impl ParseError {
    /// 1-based line and column (in bytes, like Go) of `pos` in `query`.
    pub fn line_col(&self, query: &str) -> (usize, usize) {
        let before = query.get(..self.pos.min(query.len())).unwrap_or(query);
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => self.pos - nl,
            None => self.pos + 1,
        };
        (line, col)
    }

    /// Prometheus' text: `<line>:<col>: parse error: <message>`.
    pub fn render(&self, query: &str) -> String {
        let (line, col) = self.line_col(query);
        format!("{line}:{col}: parse error: {}", self.message)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parse error at byte {}: {}", self.pos, self.message)
    }
}

/// The error Prometheus 2.42 reports for `query`, or `None` when the 2.42 grammar and type
/// checks find nothing wrong with it.
pub fn explain(query: &str) -> Option<ParseError> {
    match parser::parse(query) {
        // Too deep to explain without risking the stack: say nothing rather than guess.
        Err(e) if e.pos == parser::TOO_DEEP => None,
        Err(e) => Some(e),
        Ok(expr) => check::check(&expr).err(),
    }
}

/// Prometheus' full text (`1:3: parse error: ...`) for a query promql-parser rejected with
/// `fallback`; when the 2.42 recogniser finds no error, promql-parser's own message is kept,
/// without a position (there is none to give).
pub fn message_for_rejected(query: &str, fallback: &str) -> String {
    match explain(query) {
        Some(e) => e.render(query),
        None => format!("parse error: {fallback}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_line_and_byte_column() {
        let e = explain("foo\n  bar").expect("an error");
        assert_eq!(
            e.render("foo\n  bar"),
            "2:3: parse error: unexpected identifier \"bar\""
        );
        let q = "é + \"a\"";
        assert_eq!(explain(q).map(|e| e.line_col(q)), Some((1, 1)));
    }

    #[test]
    fn deep_nesting_is_not_explained_and_does_not_overflow() {
        let q = format!("{}1", "(".repeat(100_000));
        assert_eq!(explain(&q), None);
        let q = format!("{}1", "-".repeat(100_000));
        assert_eq!(explain(&q), None);
        let q = format!("1{}", "+1".repeat(100_000));
        assert_eq!(explain(&q), None);
        assert!(explain("((1)").is_some());
    }

    #[test]
    fn valid_queries_have_nothing_to_explain() {
        for q in [
            "sum by (a) (rate(foo{b=~\"x.*\"}[5m] offset 1m))",
            "foo @ start()",
            "and",
            "1 > bool 2",
            "label_join(foo, \"a\", \",\", \"b\", \"c\")",
            "foo * on(a) group_left(b) bar",
            "-1 ^ -2",
        ] {
            assert_eq!(explain(q), None, "{q}");
        }
    }
}
