//! A lexer that tokenises like Prometheus 2.42's (`promql/parser/lex.go`): the same token
//! kinds, the same error texts and the same error positions (the start of the item being
//! scanned), so that "unexpected ..." messages name the token Prometheus would name.

use super::goquote::{quote_rune, unicode_form};

/// Binary operators and `@` (Prometheus counts `@` among its operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eqlc,
    Neq,
    Lss,
    Lte,
    Gtr,
    Gte,
    EqlRegex,
    NeqRegex,
    And,
    Or,
    Unless,
    Atan2,
    At,
}

impl Op {
    /// Go's ItemType string (`"and"` whatever the case it was written in).
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Mod => "%",
            Op::Pow => "^",
            Op::Eqlc => "==",
            Op::Neq => "!=",
            Op::Lss => "<",
            Op::Lte => "<=",
            Op::Gtr => ">",
            Op::Gte => ">=",
            Op::EqlRegex => "=~",
            Op::NeqRegex => "!~",
            Op::And => "and",
            Op::Or => "or",
            Op::Unless => "unless",
            Op::Atan2 => "atan2",
            Op::At => "@",
        }
    }

    /// Binding power of a binary operator (higher binds tighter), `None` for `=~ !~ @`.
    pub fn precedence(self) -> Option<u8> {
        Some(match self {
            Op::Or => 1,
            Op::And | Op::Unless => 2,
            Op::Eqlc | Op::Neq | Op::Lss | Op::Lte | Op::Gtr | Op::Gte => 3,
            Op::Add | Op::Sub => 4,
            Op::Mul | Op::Div | Op::Mod | Op::Atan2 => 5,
            Op::Pow => 6,
            Op::EqlRegex | Op::NeqRegex | Op::At => return None,
        })
    }

    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Op::Eqlc | Op::Neq | Op::Lss | Op::Lte | Op::Gtr | Op::Gte
        )
    }

    /// `and`, `or`, `unless`.
    pub fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggr {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
}

/// Keywords of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kw {
    Offset,
    By,
    Without,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Bool,
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Eof,
    Error,
    Comment,
    Ident,
    MetricIdent,
    Number,
    Str,
    Duration,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Eql,
    Colon,
    Op(Op),
    Aggr(Aggr),
    Kw(Kw),
    Start,
    End,
}

/// A token: its kind, its byte offset and its text (the message, for `Kind::Error`).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: Kind,
    pub pos: usize,
    pub val: String,
}

impl Token {
    /// Go's `Item.desc()`: how "unexpected ..." names this token.
    pub fn desc(&self) -> String {
        use super::goquote::{quote, quote_item};
        match self.kind {
            Kind::Eof => "end of input".into(),
            Kind::Error => self.val.clone(),
            Kind::Comment => format!("comment {}", quote_item(&self.val)),
            Kind::Ident => format!("identifier {}", quote(&self.val)),
            Kind::MetricIdent => format!("metric identifier {}", quote(&self.val)),
            Kind::Number => format!("number {}", quote_item(&self.val)),
            Kind::Str => format!("string {}", quote_item(&self.val)),
            Kind::Duration => format!("duration {}", quote_item(&self.val)),
            // 2.42 leaves AT out of its table of token names.
            Kind::Op(Op::At) => format!("\"<Item 57385>\" <op:{}>", self.val),
            Kind::Op(_) => format!("<op:{}>", self.val),
            Kind::Aggr(_) => format!("<aggr:{}>", self.val),
            Kind::Kw(_) => format!("<{}>", self.val),
            _ => quote(&self.val),
        }
    }
}

fn keyword(word: &str) -> Option<Kind> {
    Some(match word.to_ascii_lowercase().as_str() {
        "and" => Kind::Op(Op::And),
        "or" => Kind::Op(Op::Or),
        "unless" => Kind::Op(Op::Unless),
        "atan2" => Kind::Op(Op::Atan2),
        "sum" => Kind::Aggr(Aggr::Sum),
        "avg" => Kind::Aggr(Aggr::Avg),
        "count" => Kind::Aggr(Aggr::Count),
        "min" => Kind::Aggr(Aggr::Min),
        "max" => Kind::Aggr(Aggr::Max),
        "group" => Kind::Aggr(Aggr::Group),
        "stddev" => Kind::Aggr(Aggr::Stddev),
        "stdvar" => Kind::Aggr(Aggr::Stdvar),
        "topk" => Kind::Aggr(Aggr::Topk),
        "bottomk" => Kind::Aggr(Aggr::Bottomk),
        "count_values" => Kind::Aggr(Aggr::CountValues),
        "quantile" => Kind::Aggr(Aggr::Quantile),
        "offset" => Kind::Kw(Kw::Offset),
        "by" => Kind::Kw(Kw::By),
        "without" => Kind::Kw(Kw::Without),
        "on" => Kind::Kw(Kw::On),
        "ignoring" => Kind::Kw(Kw::Ignoring),
        "group_left" => Kind::Kw(Kw::GroupLeft),
        "group_right" => Kind::Kw(Kw::GroupRight),
        "bool" => Kind::Kw(Kw::Bool),
        "start" => Kind::Start,
        "end" => Kind::End,
        "inf" | "nan" => Kind::Number,
        _ => return None,
    })
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: Option<char>) -> bool {
    matches!(c, Some(c) if is_alpha(c) || c.is_ascii_digit())
}

fn is_space(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t' | '\n' | '\r'))
}

/// The scanner's state between tokens.
pub struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: i32,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    /// The next token must be a duration (just after `[`).
    want_duration: bool,
    done: bool,
}

type Lexed = Result<Kind, String>;

impl<'a> Lexer<'a> {
    /// A lexer over `input`.
    pub fn new(input: &'a str) -> Self {
        Lexer {
            input,
            pos: 0,
            start: 0,
            paren_depth: 0,
            brace_open: false,
            bracket_open: false,
            got_colon: false,
            want_duration: false,
            done: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.input.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn skip_spaces(&mut self) {
        while is_space(self.peek()) {
            self.next();
        }
        self.start = self.pos;
    }

    /// The next token; after an error or the end, `Eof` forever.
    pub fn next_token(&mut self) -> Token {
        if self.done {
            return Token {
                kind: Kind::Eof,
                pos: self.input.len(),
                val: String::new(),
            };
        }
        let result = loop {
            self.start = self.pos;
            if let Some(r) = self.scan() {
                break r;
            }
        };
        match result {
            Ok(kind) => {
                if kind == Kind::Eof {
                    self.done = true;
                }
                let val = self
                    .input
                    .get(self.start..self.pos)
                    .unwrap_or("")
                    .to_string();
                Token {
                    kind,
                    pos: self.start,
                    val,
                }
            }
            Err(msg) => {
                self.done = true;
                Token {
                    kind: Kind::Error,
                    pos: self.start,
                    val: msg,
                }
            }
        }
    }

    /// Scans one item; `None` when it only skipped whitespace.
    fn scan(&mut self) -> Option<Lexed> {
        if self.want_duration {
            self.want_duration = false;
            return Some(self.duration());
        }
        if self.brace_open {
            return self.inside_braces();
        }
        if self.input[self.pos..].starts_with('#') {
            return Some(Ok(self.comment()));
        }
        let Some(r) = self.next() else {
            return Some(if self.paren_depth != 0 {
                Err("unclosed left parenthesis".into())
            } else if self.bracket_open {
                Err("unclosed left bracket".into())
            } else {
                Ok(Kind::Eof)
            });
        };
        Some(match r {
            ',' => Ok(Kind::Comma),
            c if is_space(Some(c)) => {
                self.skip_spaces();
                return None;
            }
            '*' => Ok(Kind::Op(Op::Mul)),
            '/' => Ok(Kind::Op(Op::Div)),
            '%' => Ok(Kind::Op(Op::Mod)),
            '+' => Ok(Kind::Op(Op::Add)),
            '-' => Ok(Kind::Op(Op::Sub)),
            '^' => Ok(Kind::Op(Op::Pow)),
            '=' => match self.peek() {
                Some('=') => {
                    self.next();
                    Ok(Kind::Op(Op::Eqlc))
                }
                Some('~') => Err("unexpected character after '=': '~'".into()),
                _ => Ok(Kind::Eql),
            },
            '!' => match self.next() {
                Some('=') => Ok(Kind::Op(Op::Neq)),
                t => Err(format!("unexpected character after '!': {}", quote_rune(t))),
            },
            '<' | '>' => {
                let eq = self.accept("=");
                Ok(Kind::Op(match (r, eq) {
                    ('<', true) => Op::Lte,
                    ('<', false) => Op::Lss,
                    (_, true) => Op::Gte,
                    _ => Op::Gtr,
                }))
            }
            c if c.is_ascii_digit() || (c == '.' && matches!(self.peek(), Some('0'..='9'))) => {
                self.pos = self.start;
                self.number_or_duration()
            }
            '"' | '\'' => self.string(r),
            '`' => self.raw_string(),
            c if is_alpha(c) || c == ':' => {
                if !self.bracket_open {
                    self.pos = self.start;
                    Ok(self.keyword_or_identifier())
                } else if self.got_colon {
                    Err(format!("unexpected colon {}", quote_rune(Some(c))))
                } else {
                    self.got_colon = true;
                    Ok(Kind::Colon)
                }
            }
            '(' => {
                self.paren_depth += 1;
                Ok(Kind::LParen)
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // Prometheus emits the ")" first, so the error starts after it.
                    self.start = self.pos;
                    Err("unexpected right parenthesis ')'".into())
                } else {
                    Ok(Kind::RParen)
                }
            }
            '{' => {
                self.brace_open = true;
                Ok(Kind::LBrace)
            }
            '[' => {
                if self.bracket_open {
                    Err("unexpected left bracket '['".into())
                } else {
                    self.got_colon = false;
                    self.bracket_open = true;
                    self.want_duration = true;
                    Ok(Kind::LBracket)
                }
            }
            ']' => {
                if !self.bracket_open {
                    Err("unexpected right bracket ']'".into())
                } else {
                    self.bracket_open = false;
                    Ok(Kind::RBracket)
                }
            }
            '@' => Ok(Kind::Op(Op::At)),
            c => Err(format!("unexpected character: {}", quote_rune(Some(c)))),
        })
    }

    fn comment(&mut self) -> Kind {
        while !matches!(self.peek(), None | Some('\n') | Some('\r')) {
            self.next();
        }
        Kind::Comment
    }

    fn inside_braces(&mut self) -> Option<Lexed> {
        if self.input[self.pos..].starts_with('#') {
            return Some(Ok(self.comment()));
        }
        let Some(r) = self.next() else {
            return Some(Err("unexpected end of input inside braces".into()));
        };
        Some(match r {
            c if is_space(Some(c)) => {
                self.skip_spaces();
                return None;
            }
            c if is_alpha(c) => {
                while is_alnum(self.peek()) {
                    self.next();
                }
                Ok(Kind::Ident)
            }
            ',' => Ok(Kind::Comma),
            '"' | '\'' => self.string(r),
            '`' => self.raw_string(),
            '=' => {
                if self.accept("~") {
                    Ok(Kind::Op(Op::EqlRegex))
                } else {
                    Ok(Kind::Eql)
                }
            }
            '!' => match self.next() {
                Some('~') => Ok(Kind::Op(Op::NeqRegex)),
                Some('=') => Ok(Kind::Op(Op::Neq)),
                t => Err(format!(
                    "unexpected character after '!' inside braces: {}",
                    quote_rune(t)
                )),
            },
            '{' => Err("unexpected left brace '{'".into()),
            '}' => {
                self.brace_open = false;
                Ok(Kind::RBrace)
            }
            c => Err(format!(
                "unexpected character inside braces: {}",
                quote_rune(Some(c))
            )),
        })
    }

    fn keyword_or_identifier(&mut self) -> Kind {
        while matches!(self.peek(), Some(c) if is_alpha(c) || c.is_ascii_digit() || c == ':') {
            self.next();
        }
        let word = &self.input[self.start..self.pos];
        match keyword(word) {
            Some(k) => k,
            None if word.contains(':') => Kind::MetricIdent,
            None => Kind::Ident,
        }
    }

    /// Go's `scanNumber`: true when what was read is a complete number.
    fn scan_number(&mut self) -> bool {
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            digits = "0123456789abcdefABCDEF";
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789");
        }
        !is_alnum(self.peek())
    }

    /// Go's `acceptRemainingDuration`.
    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            self.accept_run("0123456789");
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        let c = self.next();
        let ok = !is_alnum(c);
        if ok {
            self.backup(c);
        }
        ok
    }

    fn number_or_duration(&mut self) -> Lexed {
        if self.scan_number() {
            return Ok(Kind::Number);
        }
        if self.accept_remaining_duration() {
            return Ok(Kind::Duration);
        }
        Err(format!(
            "bad number or duration syntax: {}",
            super::goquote::quote(&self.input[self.start..self.pos])
        ))
    }

    fn duration(&mut self) -> Lexed {
        self.skip_spaces();
        if self.scan_number() {
            return Err("missing unit character in duration".into());
        }
        if !self.accept_remaining_duration() {
            return Err(format!(
                "bad duration syntax: {}",
                super::goquote::quote(&self.input[self.start..self.pos])
            ));
        }
        Ok(Kind::Duration)
    }

    fn string(&mut self, quote: char) -> Lexed {
        loop {
            match self.next() {
                Some('\\') => self.escape(quote)?,
                Some('\u{FFFD}') => return Err("invalid UTF-8 rune".into()),
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote => return Ok(Kind::Str),
                Some(_) => {}
            }
        }
    }

    fn raw_string(&mut self) -> Lexed {
        loop {
            match self.next() {
                Some('\u{FFFD}') => return Err("invalid UTF-8 rune".into()),
                None => return Err("unterminated raw string".into()),
                Some('`') => return Ok(Kind::Str),
                Some(_) => {}
            }
        }
    }

    /// Go's `lexEscape`, after the backslash.
    fn escape(&mut self, quote: char) -> Result<(), String> {
        let mut ch = self.next();
        let (mut n, base, max) = match ch {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => return Ok(()),
            Some(c) if c == quote => return Ok(()),
            Some('0'..='7') => (3, 8, 255),
            Some('x') => {
                ch = self.next();
                (2, 16, 255)
            }
            Some('u') => {
                ch = self.next();
                (4, 16, 0x10FFFF)
            }
            Some('U') => {
                ch = self.next();
                (8, 16, 0x10FFFF)
            }
            None => return Err("escape sequence not terminated".into()),
            Some(c) => return Err(format!("unknown escape sequence {}", unicode_form(Some(c)))),
        };
        let mut x: u32 = 0;
        while n > 0 {
            let d = ch.and_then(|c| c.to_digit(16)).unwrap_or(16);
            if d >= base {
                return Err(match ch {
                    None => "escape sequence not terminated".into(),
                    c => format!("illegal character {} in escape sequence", unicode_form(c)),
                });
            }
            x = x.saturating_mul(base).saturating_add(d);
            n -= 1;
            if n > 0 {
                ch = self.next();
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return Err("escape sequence is an invalid Unicode code point".into());
        }
        Ok(())
    }
}
