//! The parts of a parsed expression that Prometheus 2.42's checks look at.

use super::functions::Function;
use super::lexer::{Aggr, Op};

/// A label matcher as written (value already unquoted).
pub struct LabelMatcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    /// For regex matchers: whether the anchored regex matches the empty string.
    pub regex_matches_empty: bool,
}

impl LabelMatcher {
    /// Whether the matcher accepts the empty string (a series without this label).
    pub fn matches_empty(&self) -> bool {
        match self.op {
            Op::Eqlc => self.value.is_empty(),
            Op::Neq => !self.value.is_empty(),
            Op::EqlRegex => self.regex_matches_empty,
            _ => !self.regex_matches_empty,
        }
    }
}

/// Vector matching of a binary operation.
pub struct Matching {
    pub on: bool,
    pub labels: Vec<String>,
    pub include: Vec<String>,
    pub group: bool,
}

/// An expression; `pos` is where Prometheus says it starts (byte offset).
pub enum Node {
    Number {
        pos: usize,
    },
    Str {
        pos: usize,
    },
    Vector {
        pos: usize,
        name: Option<String>,
        matchers: Vec<LabelMatcher>,
        offset: bool,
        at: bool,
    },
    Matrix {
        pos: usize,
        vector: Box<Node>,
    },
    Subquery {
        pos: usize,
        expr: Box<Node>,
        offset: bool,
        at: bool,
    },
    Call {
        pos: usize,
        func: &'static Function,
        args: Vec<Node>,
    },
    Aggregate {
        pos: usize,
        op: Aggr,
        param: Option<Box<Node>>,
        expr: Box<Node>,
    },
    Binary {
        op: Op,
        op_pos: usize,
        bool: bool,
        matching: Matching,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
    Paren {
        pos: usize,
        expr: Box<Node>,
    },
    Unary {
        pos: usize,
        expr: Box<Node>,
    },
}

impl Node {
    /// The start of the expression.
    pub fn pos(&self) -> usize {
        match self {
            Node::Binary { lhs, .. } => lhs.pos(),
            Node::Number { pos }
            | Node::Str { pos }
            | Node::Vector { pos, .. }
            | Node::Matrix { pos, .. }
            | Node::Subquery { pos, .. }
            | Node::Call { pos, .. }
            | Node::Aggregate { pos, .. }
            | Node::Paren { pos, .. }
            | Node::Unary { pos, .. } => *pos,
        }
    }
}
