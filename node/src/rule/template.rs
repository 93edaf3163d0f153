//! The subset of Go's text/template that Prometheus' alert templates use: text, `{{ }}`
//! actions with trim markers and comments, pipelines, variables (`:=`, `=`), `.Field` and
//! `$var.field` chains, `if`/`else if`/`else`, `range`, `with`, parenthesised pipelines and
//! literals. Functions live in `funcs`. Written here because no maintained Rust crate
//! executes Go templates with Prometheus' `missingkey=zero` and function set.

use super::funcs::{self, Value};
use std::collections::BTreeMap;

/// A template parse or execution error, worded as Go's (`template: NAME:LINE: ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template: {name}:{line}: {message}")]
pub struct TemplateError {
    /// The template's name.
    pub name: String,
    /// 1-based line of the action.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(usize, Pipeline),
    If(usize, Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range(usize, Pipeline, Vec<Node>, Vec<Node>),
    With(usize, Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone, Default)]
struct Pipeline {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Box<Pipeline>, Vec<String>),
}

/// Nesting bound for control structures and parentheses.
const MAX_DEPTH: usize = 100;

impl Template {
    /// Parses `text` as template `name`.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let mut p = Parser {
            name: name.to_string(),
            items: lex(name, text)?,
            pos: 0,
            depth: 0,
            vars: vec!["$".to_string()],
        };
        let (nodes, end) = p.list()?;
        if let Some((line, word)) = end {
            return Err(p.err(line, format!("unexpected {{{{{word}}}}}")));
        }
        Ok(Template {
            name: name.to_string(),
            nodes,
        })
    }

    /// Executes the template with `dot` as `.` and the Prometheus functions in `env`.
    pub fn execute(&self, dot: &Value, env: &funcs::Env<'_>) -> Result<String, TemplateError> {
        let mut ex = Exec {
            name: &self.name,
            env,
            vars: vec![("$".to_string(), dot.clone())],
            out: String::new(),
            steps: 0,
        };
        ex.run(&self.nodes, dot)?;
        Ok(ex.out)
    }
}

// ---- lexing -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    /// The tokens of one action, with its line.
    Action(usize, Vec<ATok>),
}

#[derive(Debug, Clone, PartialEq)]
enum ATok {
    Ident(String),
    Field(String),
    Var(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

fn lex(name: &str, text: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let err = |line, message: String| TemplateError {
        name: name.to_string(),
        line,
        message,
    };
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        let mut inner_start = open + 2;
        if rest[inner_start..].starts_with("- ")
            || rest[inner_start..].starts_with("-\t")
            || rest[inner_start..].starts_with("-\n")
        {
            before = before.trim_end();
            inner_start += 1;
        }
        if !before.is_empty() {
            out.push(Tok::Text(before.to_string()));
        }
        line += rest[..open].matches('\n').count();
        let body = &rest[inner_start..];
        let (toks, consumed, trim_after) = lex_action(body).map_err(|m| err(line, m))?;
        let action_line = line;
        line += body[..consumed].matches('\n').count();
        rest = &body[consumed..];
        if trim_after {
            let trimmed = rest.trim_start();
            line += rest[..rest.len() - trimmed.len()].matches('\n').count();
            rest = trimmed;
        }
        if let Some(toks) = toks {
            out.push(Tok::Action(action_line, toks));
        }
    }
    if !rest.is_empty() {
        out.push(Tok::Text(rest.to_string()));
    }
    Ok(out)
}

/// Lexes one action's body up to and including `}}`; `None` tokens for a comment.
#[allow(clippy::type_complexity)]
fn lex_action(s: &str) -> Result<(Option<Vec<ATok>>, usize, bool), String> {
    let trimmed = s.trim_start();
    if let Some(c) = trimmed.strip_prefix("/*") {
        let end = c.find("*/").ok_or("unclosed comment")?;
        let after = &c[end + 2..];
        let skip = s.len() - after.len();
        for (close, trim) in [(" -}}", true), ("}}", false)] {
            if after.starts_with(close) {
                return Ok((None, skip + close.len(), trim));
            }
        }
        return Err("comment ends before closing delimiter".into());
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut toks = Vec::new();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    loop {
        let Some(&c) = b.get(i) else {
            return Err("unclosed action".into());
        };
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                if s[i..].trim_start().starts_with("-}}") {
                    let at = i + (s[i..].len() - s[i..].trim_start().len());
                    return Ok((Some(toks), at + 3, true));
                }
                i += 1;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Ok((Some(toks), i + 2, false)),
            b'(' => (toks.push(ATok::LParen), i += 1).1,
            b')' => (toks.push(ATok::RParen), i += 1).1,
            b'|' => (toks.push(ATok::Pipe), i += 1).1,
            b',' => (toks.push(ATok::Comma), i += 1).1,
            b':' if b.get(i + 1) == Some(&b'=') => (toks.push(ATok::Declare), i += 2).1,
            b'=' => (toks.push(ATok::Assign), i += 1).1,
            b'"' => {
                let (v, n) = lex_quoted(&s[i..])?;
                toks.push(ATok::Str(v));
                i += n;
            }
            b'`' => {
                let end = s[i + 1..]
                    .find('`')
                    .ok_or("unterminated raw quoted string")?;
                toks.push(ATok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'.' | b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let word = s[start + 1..i].to_string();
                if c == b'$' {
                    toks.push(ATok::Var(word));
                } else {
                    toks.push(ATok::Field(word));
                }
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' => {
                let start = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'_' | b'+' | b'-'))
                {
                    if matches!(b[i], b'+' | b'-') && !matches!(b[i - 1], b'e' | b'E') {
                        break;
                    }
                    i += 1;
                }
                let text = &s[start..i];
                let n = text
                    .parse::<f64>()
                    .ok()
                    .or_else(|| super::yaml::parse_int(text).map(|n| n as f64))
                    .ok_or_else(|| format!("bad number syntax: {:?}", text))?;
                toks.push(ATok::Num(n));
            }
            c if is_ident(c) => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                toks.push(ATok::Ident(s[start..i].to_string()));
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} in command"));
            }
        }
    }
}

/// A Go interpreted string literal starting at `s[0] == '"'`: its value and byte length.
fn lex_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((out, at + 1)),
            '\n' => break,
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                _ => return Err("invalid syntax".into()),
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

// ---- parsing ------------------------------------------------------------------------------

struct Parser {
    name: String,
    items: Vec<Tok>,
    pos: usize,
    depth: usize,
    /// Variables in scope: Go rejects a reference to an undeclared one at parse time.
    vars: Vec<String>,
}

impl Parser {
    fn err(&self, line: usize, message: String) -> TemplateError {
        TemplateError {
            name: self.name.clone(),
            line,
            message,
        }
    }

    /// Nodes up to an `end`/`else` action (returned with its line and word) or the input's end.
    #[allow(clippy::type_complexity)]
    fn list(&mut self) -> Result<(Vec<Node>, Option<(usize, String)>), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(tok) = self.items.get(self.pos).cloned() {
            self.pos += 1;
            let (line, toks) = match tok {
                Tok::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Tok::Action(line, toks) => (line, toks),
            };
            match toks.first() {
                Some(ATok::Ident(w)) if w == "end" => {
                    return Ok((nodes, Some((line, "end".into()))))
                }
                Some(ATok::Ident(w)) if w == "else" => {
                    self.pos -= 1;
                    return Ok((nodes, Some((line, "else".into()))));
                }
                Some(ATok::Ident(w)) if matches!(w.as_str(), "if" | "range" | "with") => {
                    let w = w.clone();
                    nodes.push(self.control(&w, line, &toks[1..])?);
                }
                Some(ATok::Ident(w))
                    if matches!(
                        w.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(self.err(line, format!("{w} is not supported in alert templates")));
                }
                _ => nodes.push(Node::Action(line, self.pipeline(line, &toks, true)?)),
            }
        }
        Ok((nodes, None))
    }

    fn control(&mut self, word: &str, line: usize, toks: &[ATok]) -> Result<Node, TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(line, "max nesting depth exceeded".into()));
        }
        let scope = self.vars.len();
        let pipe = self.pipeline(line, toks, word == "range")?;
        if pipe.cmds.is_empty() {
            return Err(self.err(line, format!("missing value for {word}")));
        }
        let mut branches = vec![(pipe, Vec::new())];
        let mut otherwise = Vec::new();
        loop {
            let (body, end) = self.list()?;
            let Some((_, end)) = end else {
                return Err(self.err(line, "unexpected EOF".into()));
            };
            if end == "end" {
                if let Some(b) = branches.last_mut() {
                    b.1 = body;
                }
                break;
            }
            // `else`, possibly `else if ...`.
            let Some(Tok::Action(eline, etoks)) = self.items.get(self.pos).cloned() else {
                return Err(self.err(line, "unexpected EOF".into()));
            };
            self.pos += 1;
            if let Some(last) = branches.last_mut() {
                last.1 = body;
            }
            if word == "if" && matches!(etoks.get(1), Some(ATok::Ident(w)) if w == "if") {
                let p = self.pipeline(eline, &etoks[2..], false)?;
                branches.push((p, Vec::new()));
                continue;
            }
            if etoks.len() > 1 {
                return Err(self.err(eline, "unexpected tokens after else".into()));
            }
            let (body, end) = self.list()?;
            if end.as_ref().map(|e| e.1.as_str()) != Some("end") {
                return Err(self.err(eline, "expected end; found else".into()));
            }
            otherwise = body;
            break;
        }
        self.depth -= 1;
        self.vars.truncate(scope);
        Ok(match word {
            "if" => Node::If(line, branches, otherwise),
            _ => {
                let (pipe, body) = branches.swap_remove(0);
                if word == "range" {
                    Node::Range(line, pipe, body, otherwise)
                } else {
                    Node::With(line, pipe, body, otherwise)
                }
            }
        })
    }

    fn pipeline(
        &mut self,
        line: usize,
        toks: &[ATok],
        decl_ok: bool,
    ) -> Result<Pipeline, TemplateError> {
        let mut p = Pipeline::default();
        let mut rest = toks;
        // `$x :=`, `$x =`, `$k, $v :=`.
        let decl_end = rest
            .iter()
            .position(|t| matches!(t, ATok::Declare | ATok::Assign));
        if let Some(end) = decl_end {
            let vars: Vec<_> = rest[..end]
                .iter()
                .filter(|t| !matches!(t, ATok::Comma))
                .collect();
            let all_vars = !vars.is_empty() && vars.iter().all(|t| matches!(t, ATok::Var(_)));
            if all_vars && (vars.len() == 1 || decl_ok) && vars.len() <= 2 {
                p.decl = vars
                    .iter()
                    .filter_map(|t| match t {
                        ATok::Var(v) => Some(format!("${v}")),
                        _ => None,
                    })
                    .collect();
                p.assign = matches!(rest[end], ATok::Assign);
                if !p.assign {
                    self.vars.extend(p.decl.iter().cloned());
                }
                rest = &rest[end + 1..];
            }
        }
        let (cmds, used) = self.commands(line, rest, 0)?;
        if used != rest.len() {
            return Err(self.err(line, "unexpected \")\" in operand".into()));
        }
        if cmds.is_empty() && !p.decl.is_empty() {
            return Err(self.err(line, "missing value for command".into()));
        }
        p.cmds = cmds;
        Ok(p)
    }

    /// Commands separated by `|`, up to an unmatched `)` or the end; returns tokens used.
    #[allow(clippy::type_complexity)]
    fn commands(
        &mut self,
        line: usize,
        toks: &[ATok],
        depth: usize,
    ) -> Result<(Vec<Vec<Arg>>, usize), TemplateError> {
        if depth > MAX_DEPTH {
            return Err(self.err(line, "max nesting depth exceeded".into()));
        }
        let mut cmds = vec![Vec::new()];
        let mut i = 0;
        while i < toks.len() {
            let cur = cmds
                .last_mut()
                .ok_or_else(|| self.err(line, "empty pipeline".into()))?;
            match &toks[i] {
                ATok::RParen => break,
                ATok::Pipe => {
                    if cur.is_empty() {
                        return Err(self.err(line, "missing command".into()));
                    }
                    cmds.push(Vec::new());
                }
                ATok::LParen => {
                    let (sub, used) = self.commands(line, &toks[i + 1..], depth + 1)?;
                    i += used + 1;
                    if toks.get(i) != Some(&ATok::RParen) {
                        return Err(self.err(line, "unclosed left paren".into()));
                    }
                    let mut fields = Vec::new();
                    while let Some(ATok::Field(f)) = toks.get(i + 1) {
                        fields.push(f.clone());
                        i += 1;
                    }
                    let pipe = Pipeline {
                        cmds: sub,
                        ..Pipeline::default()
                    };
                    cur.push(Arg::Sub(Box::new(pipe), fields));
                }
                ATok::Field(f) => {
                    let mut fields = if f.is_empty() {
                        vec![]
                    } else {
                        vec![f.clone()]
                    };
                    while let Some(ATok::Field(f)) = toks.get(i + 1) {
                        fields.push(f.clone());
                        i += 1;
                    }
                    cur.push(Arg::Field(fields));
                }
                ATok::Var(v) => {
                    let name = format!("${v}");
                    if !self.vars.contains(&name) {
                        return Err(self.err(line, format!("undefined variable {name:?}")));
                    }
                    let mut fields = Vec::new();
                    while let Some(ATok::Field(f)) = toks.get(i + 1) {
                        fields.push(f.clone());
                        i += 1;
                    }
                    cur.push(Arg::Var(name, fields));
                }
                ATok::Str(s) => cur.push(Arg::Lit(Value::Str(s.clone()))),
                ATok::Num(n) => cur.push(Arg::Lit(Value::Num(*n))),
                ATok::Ident(w) => cur.push(match w.as_str() {
                    "true" => Arg::Lit(Value::Bool(true)),
                    "false" => Arg::Lit(Value::Bool(false)),
                    "nil" => Arg::Lit(Value::Nil),
                    name if funcs::exists(name) => Arg::Func(name.to_string()),
                    name => return Err(self.err(line, format!("function {name:?} not defined"))),
                }),
                ATok::Declare | ATok::Assign | ATok::Comma => {
                    return Err(self.err(line, "unexpected token in command".into()))
                }
            }
            i += 1;
        }
        if cmds.last().is_some_and(|c| c.is_empty()) {
            if cmds.len() > 1 {
                return Err(self.err(line, "missing command".into()));
            }
            cmds.pop();
        }
        Ok((cmds, i))
    }
}

// ---- execution ----------------------------------------------------------------------------

/// Bound on executed nodes, so a huge `range` cannot run away.
const MAX_STEPS: usize = 1_000_000;

struct Exec<'a> {
    name: &'a str,
    env: &'a funcs::Env<'a>,
    vars: Vec<(String, Value)>,
    out: String,
    steps: usize,
}

impl Exec<'_> {
    fn err(&self, line: usize, message: String) -> TemplateError {
        TemplateError {
            name: self.name.to_string(),
            line,
            message,
        }
    }

    fn run(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(self.err(0, "template executes too many steps".into()));
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(line, p) => {
                    let v = self.pipeline(*line, p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.to_go_string());
                    }
                }
                Node::If(line, branches, otherwise) => {
                    let mark = self.vars.len();
                    let mut done = false;
                    for (p, body) in branches {
                        if self.pipeline(*line, p, dot)?.truthy() {
                            self.run(body, dot)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.run(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(line, p, body, otherwise) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(*line, p, dot)?;
                    if v.truthy() {
                        self.run(body, &v)?;
                    } else {
                        self.run(otherwise, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(line, p, body, otherwise) => {
                    self.range(*line, p, body, otherwise, dot)?
                }
            }
        }
        Ok(())
    }

    fn range(
        &mut self,
        line: usize,
        p: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
    ) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let decl = p.decl.clone();
        let mut bare = p.clone();
        bare.decl.clear();
        let v = self.pipeline(line, &bare, dot)?;
        let items: Vec<(Value, Value)> = match v {
            Value::Map(m) => m
                .into_iter()
                .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                .collect(),
            Value::List(l) => l
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Num(i as f64), v))
                .collect(),
            Value::Nil => Vec::new(),
            other => {
                return Err(self.err(
                    line,
                    format!("range can't iterate over {}", other.to_go_string()),
                ))
            }
        };
        if items.is_empty() {
            self.run(otherwise, dot)?;
        }
        for (k, item) in items {
            match decl.as_slice() {
                [v] => self.vars.push((v.clone(), item.clone())),
                [kn, vn] => {
                    self.vars.push((kn.clone(), k));
                    self.vars.push((vn.clone(), item.clone()));
                }
                _ => {}
            }
            self.run(body, &item)?;
            self.vars.truncate(mark);
        }
        Ok(())
    }

    fn pipeline(&mut self, line: usize, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(line, cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        if let Some(name) = p.decl.first() {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(self.err(line, format!("undefined variable: {name}"))),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        line: usize,
        cmd: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Some(first) = cmd.first() else {
            return Err(self.err(line, "empty command".into()));
        };
        if let Arg::Func(name) = first {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(self.arg(line, a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return funcs::call(name, args, self.env).map_err(|m| {
                self.err(
                    line,
                    format!(
                        "executing {:?} at <{name}>: error calling {name}: {m}",
                        self.name
                    ),
                )
            });
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(self.err(line, "can't give argument to non-function".into()));
        }
        self.arg(line, first, dot)
    }

    fn arg(&mut self, line: usize, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        Ok(match a {
            Arg::Lit(v) => v.clone(),
            Arg::Field(fields) => fields.iter().fold(dot.clone(), |v, f| v.field(f)),
            Arg::Var(name, fields) => {
                let base = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| self.err(line, format!("undefined variable: {name}")))?;
                fields.iter().fold(base, |v, f| v.field(f))
            }
            Arg::Sub(p, fields) => {
                let v = self.pipeline(line, p, dot)?;
                fields.iter().fold(v, |v, f| v.field(f))
            }
            Arg::Func(name) => funcs::call(name, Vec::new(), self.env)
                .map_err(|m| self.err(line, format!("error calling {name}: {m}")))?,
        })
    }
}

/// The data Prometheus gives alert templates: `.Labels`, `.ExternalLabels`, `.ExternalURL`,
/// `.Value`.
pub fn alert_data(
    labels: &BTreeMap<String, String>,
    external: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Labels".to_string(), Value::Map(labels.clone()));
    m.insert("ExternalLabels".to_string(), Value::Map(external.clone()));
    m.insert(
        "ExternalURL".to_string(),
        Value::Str(external_url.to_string()),
    );
    m.insert("Value".to_string(), Value::Num(value));
    Value::Struct(m)
}

/// Prometheus' variable definitions prepended to every alert label and annotation template.
pub const ALERT_DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str, labels: &[(&str, &str)], value: f64) -> Result<String, TemplateError> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let data = alert_data(&labels, &BTreeMap::new(), "http://x", value);
        let env = funcs::Env::default();
        Template::parse("__alert_A", &format!("{ALERT_DEFS}{text}"))?.execute(&data, &env)
    }

    #[test]
    fn expands_labels_value_and_functions() {
        let got = expand(
            "{{ $labels.job }} at {{ $value | humanize }} ({{ printf \"%.2f\" $value }})",
            &[("job", "api")],
            1234.5,
        );
        assert_eq!(got.expect("valid"), "api at 1.234k (1234.50)");
        assert_eq!(
            expand("{{ .Labels.missing }}|", &[], 0.0).expect("valid"),
            "|"
        );
        assert_eq!(expand("{{ $value }}", &[], 1e6).expect("valid"), "1e+06");
        assert_eq!(expand("{{ $value }}", &[], 0.25).expect("valid"), "0.25");
    }

    #[test]
    fn control_structures_and_trim_markers() {
        let t =
            "{{ if gt $value 10.0 -}} high {{- else if gt $value 5.0 }}mid{{ else }}low{{ end }}";
        assert_eq!(expand(t, &[], 11.0).expect("valid"), "high");
        assert_eq!(expand(t, &[], 6.0).expect("valid"), "mid");
        assert_eq!(expand(t, &[], 1.0).expect("valid"), "low");
        let r = "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}";
        assert_eq!(
            expand(r, &[("a", "1"), ("b", "2")], 0.0).expect("valid"),
            "a=1;b=2;"
        );
        assert_eq!(
            expand(
                "{{ with $labels.a }}<{{ . }}>{{ end }}{{/* c */}}",
                &[("a", "x")],
                0.0
            )
            .expect("valid"),
            "<x>"
        );
    }

    #[test]
    fn parse_errors_name_the_template_and_line() {
        let e = Template::parse("__alert_A", "x\n{{ nosuch 1 }}").expect_err("unknown function");
        assert_eq!(
            e.to_string(),
            "template: __alert_A:2: function \"nosuch\" not defined"
        );
        assert!(Template::parse("t", "{{ if 1 }}").is_err());
        assert!(Template::parse("t", "{{ end }}").is_err());
        assert!(Template::parse("t", "{{ .a ").is_err());
        assert!(Template::parse("t", "{{ \"abc }}").is_err());
    }
}
