//! A recursive-descent recogniser of Prometheus 2.42's PromQL grammar that stops at the first
//! error and words it like 2.42's yacc parser does: the error productions of
//! `generated_parser.y` become "in <context>, expected <what>" messages, any other syntax
//! error becomes "unexpected <token>" (plus " in aggregation" while an aggregation's
//! parameters are open, where yacc's error recovery lands), and the semantic checks run at
//! the moment yacc would reduce the rule, so their order relative to lexer errors matches.

use super::ast::{LabelMatcher, Matching, Node};
use super::lexer::{Aggr, Kind, Kw, Lexer, Op, Token};
use super::{functions, literals, regex, ParseError};

type PResult<T> = Result<T, ParseError>;

/// Parses `input`, returning its tree or the first error Prometheus would report.
pub fn parse(input: &str) -> PResult<Node> {
    let mut p = Parser {
        lex: Lexer::new(input),
        peeked: None,
        aggregation_depth: 0,
        depth: 0,
        operators: 0,
    };
    if p.peek()?.kind == Kind::Eof {
        return Err(ParseError {
            pos: 0,
            message: "no expression found in input".into(),
        });
    }
    let expr = p.expr(0)?;
    let tok = p.peek()?;
    if tok.kind != Kind::Eof {
        return Err(p.unexpected(&tok, None));
    }
    Ok(expr)
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Token>,
    /// How many aggregations' `aggregate_op` states are on yacc's stack.
    aggregation_depth: usize,
    /// Nesting of `expr` calls, bounded so that no input can overflow the stack.
    depth: usize,
    /// Binary operators seen, bounded because left-associative chains nest the tree too.
    operators: usize,
}

/// Deeper nesting is not explained (see [`TOO_DEEP`]).
const MAX_DEPTH: usize = 200;

/// More binary operators are not explained either.
const MAX_OPERATORS: usize = 1000;

/// The position of the error returned for input nested deeper than [`MAX_DEPTH`].
pub const TOO_DEEP: usize = usize::MAX;

fn err<T>(pos: usize, message: impl Into<String>) -> PResult<T> {
    Err(ParseError {
        pos,
        message: message.into(),
    })
}

/// Tokens that may start an expression (what may follow `group_left` without labels).
fn starts_expr(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Number
            | Kind::Str
            | Kind::Ident
            | Kind::MetricIdent
            | Kind::LBrace
            | Kind::LParen
            | Kind::Op(Op::Add | Op::Sub | Op::And | Op::Or | Op::Unless)
            | Kind::Aggr(_)
            | Kind::Kw(Kw::By | Kw::Without | Kw::Offset)
            | Kind::Start
            | Kind::End
    )
}

/// Words the grammar's `metric_identifier` accepts as metric names.
fn is_metric_word(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Ident
            | Kind::MetricIdent
            | Kind::Aggr(_)
            | Kind::Kw(Kw::By | Kw::Without | Kw::Offset)
            | Kind::Op(Op::And | Op::Or | Op::Unless)
            | Kind::Start
            | Kind::End
    )
}

/// Words the grammar's `maybe_label` accepts in grouping labels.
fn is_label_word(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Ident
            | Kind::MetricIdent
            | Kind::Aggr(_)
            | Kind::Kw(_)
            | Kind::Op(Op::And | Op::Or | Op::Unless | Op::Atan2)
            | Kind::Start
            | Kind::End
    )
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

impl Parser<'_> {
    /// The next token, comments skipped; a lexer error is the error.
    fn peek(&mut self) -> PResult<Token> {
        if let Some(t) = &self.peeked {
            return Ok(t.clone());
        }
        let tok = loop {
            let t = self.lex.next_token();
            if t.kind != Kind::Comment {
                break t;
            }
        };
        if tok.kind == Kind::Error {
            return err(tok.pos, tok.val);
        }
        self.peeked = Some(tok.clone());
        Ok(tok)
    }

    fn bump(&mut self) -> PResult<Token> {
        let t = self.peek()?;
        self.peeked = None;
        Ok(t)
    }

    /// yacc's fallback: "unexpected <token>", or the error production of a context.
    fn unexpected(&self, tok: &Token, context: Option<(&str, &str)>) -> ParseError {
        let mut message = format!("unexpected {}", tok.desc());
        match context {
            Some((ctx, expected)) => {
                message.push_str(" in ");
                message.push_str(ctx);
                if !expected.is_empty() {
                    message.push_str(", expected ");
                    message.push_str(expected);
                }
            }
            None if self.aggregation_depth > 0 => message.push_str(" in aggregation"),
            None => {}
        }
        ParseError {
            pos: tok.pos,
            message,
        }
    }

    fn fail<T>(&self, tok: &Token) -> PResult<T> {
        Err(self.unexpected(tok, None))
    }

    fn expect(&mut self, kind: Kind) -> PResult<Token> {
        let tok = self.bump()?;
        if tok.kind != kind {
            return self.fail(&tok);
        }
        Ok(tok)
    }

    /// Binary expressions whose operators bind at least as tightly as `min_prec`.
    fn expr(&mut self, min_prec: u8) -> PResult<Node> {
        if self.depth >= MAX_DEPTH {
            return err(TOO_DEEP, "expression nests too deeply");
        }
        self.depth += 1;
        let result = self.expr_inner(min_prec);
        self.depth -= 1;
        result
    }

    fn expr_inner(&mut self, min_prec: u8) -> PResult<Node> {
        let mut lhs = self.unary()?;
        loop {
            let tok = self.peek()?;
            let Kind::Op(op) = tok.kind else { break };
            let Some(prec) = op.precedence() else { break };
            if prec < min_prec {
                break;
            }
            self.operators += 1;
            if self.operators > MAX_OPERATORS {
                return err(TOO_DEEP, "too many operators");
            }
            self.bump()?;
            let (bool, matching) = self.bin_modifier()?;
            let rhs = self.expr(if op == Op::Pow { prec } else { prec + 1 })?;
            lhs = Node::Binary {
                op,
                op_pos: tok.pos,
                bool,
                matching,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult<Node> {
        let tok = self.peek()?;
        if let Kind::Op(Op::Add | Op::Sub) = tok.kind {
            self.bump()?;
            // `unary_op expr %prec MUL`: only `^` and the postfix forms bind tighter.
            let expr = self.expr(6)?;
            return Ok(match expr {
                Node::Number { .. } => Node::Number { pos: tok.pos },
                e => Node::Unary {
                    pos: tok.pos,
                    expr: Box::new(e),
                },
            });
        }
        let primary = self.primary()?;
        self.postfix(primary)
    }

    fn primary(&mut self) -> PResult<Node> {
        let tok = self.bump()?;
        match tok.kind {
            Kind::Number => {
                literals::number(&tok.val).map_err(|m| ParseError {
                    pos: tok.pos,
                    message: m,
                })?;
                Ok(Node::Number { pos: tok.pos })
            }
            Kind::Str => Ok(Node::Str { pos: tok.pos }),
            Kind::LParen => {
                let expr = self.expr(0)?;
                self.expect(Kind::RParen)?;
                Ok(Node::Paren {
                    pos: tok.pos,
                    expr: Box::new(expr),
                })
            }
            Kind::LBrace => {
                let matchers = self.label_matchers()?;
                Ok(Node::Vector {
                    pos: tok.pos,
                    name: None,
                    matchers,
                    offset: false,
                    at: false,
                })
            }
            Kind::Ident if self.peek()?.kind == Kind::LParen => self.call(tok),
            Kind::Aggr(op)
                if matches!(
                    self.peek()?.kind,
                    Kind::LParen | Kind::Kw(Kw::By | Kw::Without)
                ) =>
            {
                self.aggregation(tok, op)
            }
            k if is_metric_word(k) => {
                let matchers = if self.peek()?.kind == Kind::LBrace {
                    self.bump()?;
                    self.label_matchers()?
                } else {
                    Vec::new()
                };
                Ok(Node::Vector {
                    pos: tok.pos,
                    name: Some(tok.val),
                    matchers,
                    offset: false,
                    at: false,
                })
            }
            _ => self.fail(&tok),
        }
    }

    /// The `{...}` after the opening brace.
    fn label_matchers(&mut self) -> PResult<Vec<LabelMatcher>> {
        let mut out = Vec::new();
        loop {
            let tok = self.bump()?;
            match tok.kind {
                Kind::RBrace => return Ok(out),
                Kind::Ident => out.push(self.label_matcher(tok)?),
                _ => {
                    return Err(
                        self.unexpected(&tok, Some(("label matching", "identifier or \"}\"")))
                    )
                }
            }
            let tok = self.bump()?;
            match tok.kind {
                Kind::RBrace => return Ok(out),
                Kind::Comma => {}
                _ => return Err(self.unexpected(&tok, Some(("label matching", "\",\" or \"}\"")))),
            }
        }
    }

    fn label_matcher(&mut self, name: Token) -> PResult<LabelMatcher> {
        let tok = self.bump()?;
        let op = match tok.kind {
            Kind::Eql => Op::Eqlc,
            Kind::Op(op @ (Op::Neq | Op::EqlRegex | Op::NeqRegex)) => op,
            _ => {
                return Err(
                    self.unexpected(&tok, Some(("label matching", "label matching operator")))
                )
            }
        };
        let value = self.bump()?;
        if value.kind != Kind::Str {
            return Err(self.unexpected(&value, Some(("label matching", "string"))));
        }
        let text = unquote(&value.val);
        let mut regex_matches_empty = false;
        if matches!(op, Op::EqlRegex | Op::NeqRegex) {
            regex_matches_empty = regex::check(&text).map_err(|message| ParseError {
                pos: name.pos,
                message,
            })?;
        }
        Ok(LabelMatcher {
            name: name.val,
            op,
            value: text,
            regex_matches_empty,
        })
    }

    fn call(&mut self, name: Token) -> PResult<Node> {
        let args = self.call_body()?;
        match functions::lookup(&name.val) {
            Some(func) => Ok(Node::Call {
                pos: name.pos,
                func,
                args,
            }),
            None => err(
                name.pos,
                format!(
                    "unknown function with name {}",
                    super::goquote::quote(&name.val)
                ),
            ),
        }
    }

    /// `( args )`, the opening parenthesis not yet read.
    fn call_body(&mut self) -> PResult<Vec<Node>> {
        self.expect(Kind::LParen)?;
        let mut args = Vec::new();
        if self.peek()?.kind == Kind::RParen {
            self.bump()?;
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            let tok = self.bump()?;
            match tok.kind {
                Kind::RParen => return Ok(args),
                // yacc reduces `args ,` (its default) on any token that cannot start an
                // argument, so the comma is blamed, not that token.
                Kind::Comma if !starts_expr(self.peek()?.kind) => {
                    return err(tok.pos, "trailing commas not allowed in function call args")
                }
                Kind::Comma => {}
                _ => return self.fail(&tok),
            }
        }
    }

    fn aggregation(&mut self, op_tok: Token, op: Aggr) -> PResult<Node> {
        self.aggregation_depth += 1;
        let result = self.aggregation_inner(&op_tok, op);
        self.aggregation_depth -= 1;
        let args = result?;
        let pos = op_tok.pos;
        if args.is_empty() {
            return err(pos, "no arguments for aggregate expression provided");
        }
        let with_param = matches!(
            op,
            Aggr::Topk | Aggr::Bottomk | Aggr::CountValues | Aggr::Quantile
        );
        let want = if with_param { 2 } else { 1 };
        if args.len() != want {
            return err(
                pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            );
        }
        let mut args = args.into_iter();
        let param = if with_param {
            args.next().map(Box::new)
        } else {
            None
        };
        let expr = args.next().map(Box::new).ok_or(ParseError {
            pos,
            message: String::new(),
        })?;
        Ok(Node::Aggregate {
            pos,
            op,
            param,
            expr,
        })
    }

    fn aggregation_inner(&mut self, op_tok: &Token, _op: Aggr) -> PResult<Vec<Node>> {
        let _ = op_tok;
        if let Kind::Kw(Kw::By | Kw::Without) = self.peek()?.kind {
            self.bump()?;
            self.grouping_labels()?;
            let tok = self.peek()?;
            if tok.kind != Kind::LParen {
                return self.fail(&tok);
            }
            return self.call_body();
        }
        let args = self.call_body()?;
        // yacc needs the next token to choose between the two aggregation rules, so a lexer
        // error there comes before the arguments' checks.
        if let Kind::Kw(Kw::By | Kw::Without) = self.peek()?.kind {
            self.bump()?;
            self.grouping_labels()?;
        }
        Ok(args)
    }

    /// `( label, ... )` after `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    fn grouping_labels(&mut self) -> PResult<Vec<String>> {
        const CTX: &str = "grouping opts";
        let tok = self.bump()?;
        if tok.kind != Kind::LParen {
            return Err(self.unexpected(&tok, Some((CTX, "\"(\""))));
        }
        let mut labels = Vec::new();
        loop {
            let tok = self.bump()?;
            if tok.kind == Kind::RParen {
                return Ok(labels);
            }
            if !is_label_word(tok.kind) || !is_label_name(&tok.val) {
                return Err(self.unexpected(&tok, Some((CTX, "label"))));
            }
            labels.push(tok.val);
            let tok = self.bump()?;
            match tok.kind {
                Kind::RParen => return Ok(labels),
                Kind::Comma => {}
                _ => return Err(self.unexpected(&tok, Some((CTX, "\",\" or \")\"")))),
            }
        }
    }

    fn bin_modifier(&mut self) -> PResult<(bool, Matching)> {
        let mut matching = Matching {
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
            group: false,
        };
        let bool = self.peek()?.kind == Kind::Kw(Kw::Bool);
        if bool {
            self.bump()?;
        }
        let kind = self.peek()?.kind;
        if let Kind::Kw(kw @ (Kw::On | Kw::Ignoring)) = kind {
            self.bump()?;
            matching.on = kw == Kw::On;
            matching.labels = self.grouping_labels()?;
            if let Kind::Kw(Kw::GroupLeft | Kw::GroupRight) = self.peek()?.kind {
                self.bump()?;
                matching.group = true;
                let next = self.peek()?;
                if next.kind == Kind::LParen || !starts_expr(next.kind) {
                    matching.include = self.grouping_labels()?;
                }
            }
        }
        Ok((bool, matching))
    }

    /// Range and subquery brackets, `offset` and `@` after an expression.
    fn postfix(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            let tok = self.peek()?;
            node = match tok.kind {
                Kind::LBracket => {
                    self.bump()?;
                    self.brackets(node, tok.pos)?
                }
                Kind::Kw(Kw::Offset) => {
                    self.bump()?;
                    self.offset(node)?
                }
                Kind::Op(Op::At) => {
                    self.bump()?;
                    self.at(node)?
                }
                _ => return Ok(node),
            };
        }
    }

    fn duration(&mut self, tok: &Token) -> PResult<()> {
        literals::duration(&tok.val)
            .map(|_| ())
            .map_err(|message| ParseError {
                pos: tok.pos,
                message,
            })
    }

    fn brackets(&mut self, node: Node, open: usize) -> PResult<Node> {
        let range = self.bump()?;
        if range.kind != Kind::Duration {
            return Err(self.unexpected(&range, Some(("subquery selector", "duration"))));
        }
        self.duration(&range)?;
        let tok = self.bump()?;
        match tok.kind {
            Kind::RBracket => {
                let problem = match &node {
                    Node::Vector { offset: true, .. } => {
                        Some("no offset modifiers allowed before range")
                    }
                    Node::Vector { at: true, .. } => Some("no @ modifiers allowed before range"),
                    Node::Vector { .. } => None,
                    _ => Some("ranges only allowed for vector selectors"),
                };
                if let Some(message) = problem {
                    return err(open, message);
                }
                Ok(Node::Matrix {
                    pos: node.pos(),
                    vector: Box::new(node),
                })
            }
            Kind::Colon => {
                let tok = self.bump()?;
                match tok.kind {
                    Kind::RBracket => {}
                    Kind::Duration => {
                        self.duration(&tok)?;
                        let close = self.bump()?;
                        if close.kind != Kind::RBracket {
                            return Err(
                                self.unexpected(&close, Some(("subquery selector", "\"]\"")))
                            );
                        }
                    }
                    _ => {
                        return Err(
                            self.unexpected(&tok, Some(("subquery selector", "duration or \"]\"")))
                        )
                    }
                }
                Ok(Node::Subquery {
                    pos: node.pos(),
                    expr: Box::new(node),
                    offset: false,
                    at: false,
                })
            }
            _ => Err(self.unexpected(&tok, Some(("subquery or range", "\":\" or \"]\"")))),
        }
    }

    fn offset(&mut self, node: Node) -> PResult<Node> {
        const CTX: Option<(&str, &str)> = Some(("offset", "duration"));
        let mut tok = self.bump()?;
        if tok.kind == Kind::Op(Op::Sub) {
            tok = self.bump()?;
        }
        if tok.kind != Kind::Duration {
            return Err(self.unexpected(&tok, CTX));
        }
        self.duration(&tok)?;
        let pos = node.pos();
        let already = match &node {
            Node::Vector { offset, .. } | Node::Subquery { offset, .. } => *offset,
            Node::Matrix { vector, .. } => matches!(**vector, Node::Vector { offset: true, .. }),
            _ => {
                return err(
                    pos,
                    "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                )
            }
        };
        if already {
            return err(pos, "offset may not be set multiple times");
        }
        Ok(set_flag(node, true))
    }

    fn at(&mut self, node: Node) -> PResult<Node> {
        const CTX: Option<(&str, &str)> = Some(("@", "timestamp"));
        let tok = self.bump()?;
        match tok.kind {
            Kind::Number | Kind::Op(Op::Add | Op::Sub) => {
                let num = if tok.kind == Kind::Number {
                    tok.clone()
                } else {
                    self.bump()?
                };
                if num.kind != Kind::Number {
                    return Err(self.unexpected(&num, CTX));
                }
                let mut v = literals::number(&num.val).map_err(|message| ParseError {
                    pos: num.pos,
                    message,
                })?;
                if tok.kind == Kind::Op(Op::Sub) {
                    v = -v;
                }
                if !v.is_finite() || v >= i64::MAX as f64 || v <= i64::MIN as f64 {
                    return err(
                        node.pos(),
                        format!("timestamp out of bounds for @ modifier: {}", go_float_f(v)),
                    );
                }
            }
            Kind::Start | Kind::End => {
                let open = self.bump()?;
                if open.kind != Kind::LParen {
                    return Err(self.unexpected(&open, CTX));
                }
                let close = self.bump()?;
                if close.kind != Kind::RParen {
                    return Err(self.unexpected(&close, CTX));
                }
            }
            _ => return Err(self.unexpected(&tok, CTX)),
        }
        let pos = node.pos();
        let already = match &node {
            Node::Vector { at, .. } | Node::Subquery { at, .. } => *at,
            Node::Matrix { vector, .. } => matches!(**vector, Node::Vector { at: true, .. }),
            _ => {
                return err(
                    pos,
                    "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                )
            }
        };
        if already {
            return err(pos, "@ <timestamp> may not be set multiple times");
        }
        Ok(set_flag(node, false))
    }
}

/// Marks `offset` (or `@` when `offset_flag` is false) as set on a selector or subquery.
fn set_flag(node: Node, offset_flag: bool) -> Node {
    match node {
        Node::Vector {
            pos,
            name,
            matchers,
            offset,
            at,
        } => Node::Vector {
            pos,
            name,
            matchers,
            offset: offset || offset_flag,
            at: at || !offset_flag,
        },
        Node::Subquery {
            pos,
            expr,
            offset,
            at,
        } => Node::Subquery {
            pos,
            expr,
            offset: offset || offset_flag,
            at: at || !offset_flag,
        },
        Node::Matrix { pos, vector } => Node::Matrix {
            pos,
            vector: Box::new(set_flag(*vector, offset_flag)),
        },
        other => other,
    }
}

/// Go's `%f`.
fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}

/// The value of a string token (quotes removed, escapes resolved); the lexer has already
/// rejected bad escapes.
fn unquote(s: &str) -> String {
    let mut chars = s.chars();
    let Some(q) = chars.next() else {
        return String::new();
    };
    let body: String = {
        let mut b: Vec<char> = chars.collect();
        b.pop();
        b.into_iter().collect()
    };
    if q == '`' {
        return body;
    }
    let mut out = String::new();
    let mut it = body.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else { break };
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (n, base) = match e {
            '0'..='7' => (2, 8),
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            other => {
                out.push(other);
                continue;
            }
        };
        let mut x = if base == 8 {
            e.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..n {
            if let Some(d) = it.peek().and_then(|c| c.to_digit(base)) {
                x = x * base + d;
                it.next();
            }
        }
        out.push(char::from_u32(x).unwrap_or('\u{FFFD}'));
    }
    out
}
