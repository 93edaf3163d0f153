//! How deep a query may nest, and handling of expression trees of that depth without
//! overflowing a thread's stack.
//!
//! Parsing (promql-parser), type checks, evaluation, and even dropping an `Expr` recurse once
//! per nesting level. Three measures together make every depth safe:
//! - [`check_text`] bounds the depth from the raw text before anything recursive runs, and
//!   refuses queries beyond [`MAX_DEPTH`] with a parse error (HTTP 400 `bad_data`), as well
//!   as queries with more than [`MAX_OPERATORS`] operators, whose parse time would outlive
//!   `--query.timeout` (the parser is quadratic in a chain's length and cannot be stopped);
//! - recursive passes over deeper trees run on a thread whose stack fits [`MAX_DEPTH`]
//!   ([`crate::stack`]);
//! - [`ParsedExpr`] takes its tree apart without recursion when dropped, and [`any_node`]
//!   visits a tree without recursion, so callers on small stacks stay safe.
//!
//! Prometheus 2.42 has no limit, but answered 10,000 nested parentheses (1.9 s) and
//! `abs(` x 10,000 (13 s) on the project machine, and answered neither 100,000 nested
//! parentheses nor 10,000 terms of `1+1+...` within 20 s (its parser and checks are quadratic
//! in chain length, as promql-parser's are). [`MAX_DEPTH`] keeps the depths it answers;
//! [`MAX_OPERATORS`] keeps chains far longer than hand-written or generated queries use.

use crate::error::QueryError;
use crate::parse_error::ParseError;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, NumberLiteral};
use std::ops::Deref;

/// Most nesting levels a query may have, counting each level of parentheses (calls and
/// aggregations included) or brackets, and each operator. Its tree is at most one deeper.
pub const MAX_DEPTH: usize = 10_000;

/// Most operators (binary, unary, comparison and set operators) a query may have.
///
/// promql-parser type-checks each new operator node by walking the operands below it, so its
/// time grows with the square of an operator chain's length, and it cannot be interrupted:
/// a release parse of `1+1+...` took about 2 s at 10,000 terms on the project machine. At
/// this bound the worst chain parses in well under a second (BENCHMARKS.md, "Parse time of
/// the largest accepted queries"), so `--query.timeout` stops every query within a second.
pub const MAX_OPERATORS: usize = 2_500;

/// Queries whose bound is at most this are handled on the caller's stack.
pub(crate) const SHALLOW: usize = 128;

/// Words that are binary operators (PromQL keywords are case-insensitive).
const WORD_OPS: [&str; 4] = ["and", "or", "unless", "atan2"];

/// What a scan of a query's text found, all upper bounds of the parsed tree's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Shape {
    /// Deepest nesting of parentheses.
    deepest: usize,
    /// Operator tokens outside label matchers (a number's exponent sign counts too).
    ops: usize,
    /// Range and subquery brackets.
    brackets: usize,
}

impl Shape {
    /// Nesting levels: parentheses plus every operator and bracket.
    fn levels(&self) -> usize {
        self.deepest + self.ops + self.brackets
    }
}

/// Which bound a query's text crossed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossed {
    /// More than [`MAX_DEPTH`] levels.
    Depth,
    /// More than [`MAX_OPERATORS`] operators.
    Operators,
}

/// Scans `query`'s text for its nesting levels and operators (see [`Shape`]). With limits,
/// stops at the first byte where a bound exceeds its limit and returns it with its position.
fn scan(query: &str, max_levels: usize, max_ops: usize) -> Result<Shape, (Crossed, usize)> {
    let b = query.as_bytes();
    let mut s = Shape::default();
    let (mut depth, mut in_braces) = (0usize, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        i += 1;
        match c {
            b'"' | b'\'' | b'`' => {
                // Strings: skip to the closing quote (backslash escapes except in backticks).
                while i < b.len() && b[i] != c {
                    i += if c != b'`' && b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => in_braces = true,
            b'}' => in_braces = false,
            b'(' => {
                depth += 1;
                s.deepest = s.deepest.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            // A range or subquery bracket follows its operand rather than enclosing it, so
            // each one is counted like an operator.
            b'[' => s.brackets += 1,
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' | b'=' | b'!' if !in_braces => {
                // Two-character operators (`==`, `!=`, `<=`, `>=`) count once.
                if matches!(c, b'=' | b'<' | b'>' | b'!') && b.get(i) == Some(&b'=') {
                    i += 1;
                }
                s.ops += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b':')) {
                    i += 1;
                }
                let word = &query[start..i];
                if !in_braces && WORD_OPS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
                    s.ops += 1;
                }
            }
            _ => {}
        }
        if s.levels() > max_levels {
            return Err((Crossed::Depth, start));
        }
        if s.ops > max_ops {
            return Err((Crossed::Operators, start));
        }
    }
    Ok(s)
}

/// The nesting levels of `query` (see [`check_text`]); its tree is at most one deeper.
pub fn text_bound(query: &str) -> usize {
    scan(query, usize::MAX, usize::MAX).map_or(usize::MAX, |s| s.levels())
}

/// Refuses a query that may nest deeper than [`MAX_DEPTH`] or has more than
/// [`MAX_OPERATORS`] operators, before the parser or any recursive pass sees it; returns its
/// depth bound otherwise.
pub fn check_text(query: &str) -> Result<usize, QueryError> {
    let (crossed, pos) = match scan(query, MAX_DEPTH, MAX_OPERATORS) {
        Ok(s) => return Ok(s.levels()),
        Err(e) => e,
    };
    let message = match crossed {
        Crossed::Depth => format!(
            "query nests too deeply: more than {MAX_DEPTH} levels of parentheses, \
             operators and subqueries"
        ),
        Crossed::Operators => format!(
            "query has too many operators: more than {MAX_OPERATORS} binary, unary, \
             comparison and set operators"
        ),
    };
    Err(QueryError::Parse(ParseError { pos, message }.render(query)))
}

/// A parsed expression that is taken apart without recursion when dropped, so that a tree of
/// any depth can be dropped on any thread. Reads as an [`Expr`].
#[derive(Debug)]
pub struct ParsedExpr(Expr);

impl ParsedExpr {
    /// Wraps a parsed tree.
    pub fn new(expr: Expr) -> Self {
        ParsedExpr(expr)
    }
}

impl Deref for ParsedExpr {
    type Target = Expr;
    fn deref(&self) -> &Expr {
        &self.0
    }
}

impl Drop for ParsedExpr {
    fn drop(&mut self) {
        dismantle(std::mem::replace(&mut self.0, leaf()));
    }
}

fn leaf() -> Expr {
    Expr::NumberLiteral(NumberLiteral { val: 0.0 })
}

/// Moves a child out of its box, leaving a leaf behind, so its parent drops shallowly.
fn take(e: &mut Expr) -> Expr {
    std::mem::replace(e, leaf())
}

/// Drops `root` with an explicit stack instead of recursion.
pub fn dismantle(root: Expr) {
    let mut todo = vec![root];
    while let Some(mut e) = todo.pop() {
        match &mut e {
            Expr::Paren(p) => todo.push(take(&mut p.expr)),
            Expr::Unary(u) => todo.push(take(&mut u.expr)),
            Expr::Subquery(s) => todo.push(take(&mut s.expr)),
            Expr::Binary(b) => {
                todo.push(take(&mut b.lhs));
                todo.push(take(&mut b.rhs));
            }
            Expr::Aggregate(a) => {
                todo.push(take(&mut a.expr));
                if let Some(p) = &mut a.param {
                    todo.push(take(p));
                }
            }
            Expr::Call(c) => todo.extend(c.args.args.iter_mut().map(|a| take(a))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
}

/// The direct children of `e`, in evaluation order.
pub fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Paren(p) => vec![&*p.expr],
        Expr::Unary(u) => vec![&*u.expr],
        Expr::Subquery(s) => vec![&*s.expr],
        Expr::Binary(b) => vec![&*b.lhs, &*b.rhs],
        Expr::Aggregate(a) => a.param.iter().map(|p| &**p).chain([&*a.expr]).collect(),
        Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => Vec::new(),
    }
}

/// Whether any node of `root` satisfies `pred`, visited without recursion.
pub fn any_node(root: &Expr, mut pred: impl FnMut(&Expr) -> bool) -> bool {
    let mut todo = vec![root];
    while let Some(e) = todo.pop() {
        if pred(e) {
            return true;
        }
        todo.extend(children(e));
    }
    false
}

/// The type of `root`'s value, as `Expr::value_type` gives it, without recursion.
pub fn value_type(root: &Expr) -> ValueType {
    let mut e = root;
    loop {
        match e {
            Expr::Paren(p) => e = &p.expr,
            Expr::Unary(u) => e = &u.expr,
            // A binary expression is a scalar when every operand below it is one.
            Expr::Binary(_) => {
                let mut todo = vec![e];
                while let Some(x) = todo.pop() {
                    match x {
                        Expr::Paren(_) | Expr::Unary(_) | Expr::Binary(_) => {
                            todo.extend(children(x))
                        }
                        leaf if value_type(leaf) != ValueType::Scalar => return ValueType::Vector,
                        _ => {}
                    }
                }
                return ValueType::Scalar;
            }
            other => return other.value_type(),
        }
    }
}

/// The depth of `root` (a leaf has depth 1), measured without recursion.
pub fn depth(root: &Expr) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(root, 1usize)];
    while let Some((e, d)) = todo.pop() {
        deepest = deepest.max(d);
        todo.extend(children(e).into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_bound_is_never_below_the_tree_depth() {
        for q in [
            "up",
            "(up)",
            "((up))",
            "1 + 2 * 3",
            "-(-1)",
            "sum by (a) (rate(foo{a=\"(\", b!=\"x\"}[5m]))",
            "foo or bar and on(x) baz",
            "max_over_time((a - b)[5m:1m]) >= bool 2",
            "1 atan2 vector(1) atan2 on() vector(2)",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\") # ((((",
        ] {
            let expr = promql_parser::parser::parse(q).expect(q);
            assert!(text_bound(q) + 1 >= depth(&expr), "{q}");
        }
    }

    #[test]
    fn label_matchers_and_strings_do_not_count() {
        assert_eq!(text_bound("up{a=\"+-*/\", b!~\"((\", c=~'x'}"), 0);
        assert_eq!(text_bound("up + up"), 1);
        assert_eq!(text_bound("up OR up"), 1);
        assert_eq!(text_bound("sum(up)"), 1);
        assert_eq!(text_bound("a >= b != c"), 2);
    }

    #[test]
    fn too_deep_text_is_a_parse_error_at_the_point_it_crosses_the_limit() {
        let q = format!("{}up", "(".repeat(MAX_DEPTH + 1));
        let col = MAX_DEPTH + 1;
        assert_eq!(
            check_text(&q),
            Err(QueryError::Parse(format!(
                "1:{col}: parse error: query nests too deeply: more than {MAX_DEPTH} levels of parentheses, operators and subqueries"
            )))
        );
        assert_eq!(
            check_text(&format!("{}up", "(".repeat(MAX_DEPTH))),
            Ok(MAX_DEPTH)
        );
    }

    #[test]
    fn more_operators_than_the_limit_is_a_parse_error_at_the_first_one_over() {
        let at_limit = vec!["1"; MAX_OPERATORS + 1].join("+");
        assert_eq!(check_text(&at_limit), Ok(MAX_OPERATORS));
        let over = vec!["up"; MAX_OPERATORS + 2].join(" or ");
        // Term k (0-based) starts at byte 6k; the operator after term k at byte 6k + 3.
        let col = 6 * MAX_OPERATORS + 3 + 1;
        assert_eq!(
            check_text(&over),
            Err(QueryError::Parse(format!(
                "1:{col}: parse error: query has too many operators: more than {MAX_OPERATORS} \
                 binary, unary, comparison and set operators"
            )))
        );
        // Unary operators and comparisons count; label matchers and strings do not.
        assert!(check_text(&format!("{}1", "-".repeat(MAX_OPERATORS + 1))).is_err());
        assert!(check_text(&vec!["a"; MAX_OPERATORS + 2].join(" >= ")).is_err());
        let matchers = format!("up{{a!=\"{}\"}}", "+".repeat(3 * MAX_OPERATORS));
        assert_eq!(check_text(&matchers), Ok(0));
    }

    #[test]
    fn nesting_to_the_depth_limit_is_not_bounded_by_the_operator_limit() {
        let parens = format!("{}up{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(check_text(&parens), Ok(MAX_DEPTH));
        let calls = format!("{}up{}", "abs(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(check_text(&calls), Ok(MAX_DEPTH));
    }

    #[test]
    fn a_deep_tree_is_dropped_and_walked_on_a_small_stack() {
        let q = format!("{}up{}", "abs(".repeat(5000), ")".repeat(5000));
        let parsed = crate::stack::run_blocking(|| {
            promql_parser::parser::parse(&q)
                .map(ParsedExpr::new)
                .map_err(QueryError::Parse)
        })
        .expect("parses");
        let run = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let found = any_node(&parsed, |e| matches!(e, Expr::VectorSelector(_)));
                let d = depth(&parsed);
                drop(parsed);
                (found, d)
            })
            .expect("thread starts");
        assert_eq!(run.join().expect("no overflow"), (true, 5001));
    }
}
