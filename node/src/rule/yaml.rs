//! A YAML document as a tree whose nodes know their line and column, so rule-file errors can
//! name positions the way Go's yaml.v3 (and so promtool) does.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Nesting bound: deeper documents are refused instead of recursing without limit.
const MAX_DEPTH: usize = 256;
/// Alias expansion bound (a "billion laughs" document is refused, not expanded).
const MAX_NODES: usize = 1_000_000;

/// One YAML node with its 1-based position (0:0 for a node that is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: Kind,
    /// 1-based line of the node's first character.
    pub line: usize,
    /// 1-based column of the node's first character.
    pub column: usize,
}

/// The three shapes of YAML nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar: its text and whether it was quoted or a block (always a string then).
    Scalar {
        /// The text.
        value: String,
        /// Quoted or a block scalar.
        quoted: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// yaml.v3's short tag of the node: `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`,
    /// `!!seq` or `!!map`.
    pub fn tag(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "!!seq",
            Kind::Map(_) => "!!map",
            Kind::Scalar { quoted: true, .. } => "!!str",
            Kind::Scalar { value, .. } => resolve_plain(value),
        }
    }

    /// Whether the node is a plain null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        self.tag() == "!!null"
    }

    /// The scalar's text, or "" for collections (yaml.v3's `Node.Value`).
    pub fn value(&self) -> &str {
        match &self.kind {
            Kind::Scalar { value, .. } => value,
            _ => "",
        }
    }
}

/// yaml.v3's resolution of a plain scalar's tag (YAML 1.2 core schema plus yaml.v3's extras).
fn resolve_plain(v: &str) -> &'static str {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return "!!null",
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return "!!bool",
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return "!!float",
        _ => {}
    }
    if parse_int(v).is_some() {
        return "!!int";
    }
    let looks_numeric = v
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'));
    if looks_numeric && v.bytes().any(|b| b.is_ascii_digit()) && v.parse::<f64>().is_ok() {
        return "!!float";
    }
    "!!str"
}

/// yaml.v3's integer forms: decimal with sign, `0x`, `0o`, `0b`, underscores allowed.
pub fn parse_int(v: &str) -> Option<i64> {
    let (neg, rest) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let cleaned: String = rest.chars().filter(|c| *c != '_').collect();
    let (radix, digits) = if let Some(d) = cleaned.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = cleaned.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = cleaned.strip_prefix("0b") {
        (2, d)
    } else {
        (10, cleaned.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// A YAML syntax error with its 1-based line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("yaml: line {line}: {message}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What the parser found wrong.
    pub message: String,
}

/// Parses the first document of `text`; `None` for an empty stream.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        line: e.marker().line(),
        message: e.info().to_string(),
    })?;
    if let Some(message) = builder.error {
        return Err(SyntaxError {
            line: builder.error_line,
            message,
        });
    }
    Ok(builder.root)
}

/// Builds the tree from parser events; anchors are kept so aliases expand to copies.
#[derive(Default)]
struct Builder {
    stack: Vec<(Node, Option<Node>, usize)>,
    anchors: std::collections::HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
    error: Option<String>,
    error_line: usize,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some((parent, pending_key, _)) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        match &mut parent.kind {
            Kind::Seq(items) => items.push(node),
            Kind::Map(entries) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => *pending_key = Some(node),
            },
            Kind::Scalar { .. } => {}
        }
    }

    fn fail(&mut self, line: usize, message: &str) {
        if self.error.is_none() {
            self.error = Some(message.to_string());
            self.error_line = line;
        }
    }
}

fn count_nodes(n: &Node) -> usize {
    match &n.kind {
        Kind::Scalar { .. } => 1,
        Kind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() || (self.root.is_some() && self.stack.is_empty()) {
            return;
        }
        let at = |kind| Node {
            kind,
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(value, style, anchor, _) => {
                self.nodes += 1;
                let quoted = style != TScalarStyle::Plain;
                self.push_value(at(Kind::Scalar { value, quoted }), anchor);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.stack.len() >= MAX_DEPTH {
                    return self.fail(mark.line(), "exceeded max depth");
                }
                let kind = match ev {
                    Event::SequenceStart(..) => Kind::Seq(Vec::new()),
                    _ => Kind::Map(Vec::new()),
                };
                self.stack.push((at(kind), None, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, _, anchor)) = self.stack.pop() {
                    // The parser marks a block mapping where its first ':' is; yaml.v3
                    // places a mapping at its first key.
                    if let Kind::Map(entries) = &node.kind {
                        if let Some((k, _)) = entries.first() {
                            (node.line, node.column) = (k.line, k.column);
                        }
                    }
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    self.nodes += count_nodes(&node);
                    if self.nodes > MAX_NODES {
                        return self.fail(mark.line(), "document contains excessive aliasing");
                    }
                    node.line = mark.line();
                    node.column = mark.col() + 1;
                    self.push_value(node, 0);
                }
                None => self.fail(mark.line(), "unknown anchor referenced"),
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let root = parse("groups:\n  - name: a\n    rules: []\n")
            .expect("valid yaml")
            .expect("a document");
        let Kind::Map(entries) = &root.kind else {
            panic!("root is a map: {root:?}")
        };
        let Kind::Seq(groups) = &entries[0].1.kind else {
            panic!("groups is a seq")
        };
        assert_eq!((groups[0].line, groups[0].column), (2, 5));
        let Kind::Map(g) = &groups[0].kind else {
            panic!("group is a map")
        };
        assert_eq!((g[0].1.line, g[0].1.column, g[0].1.value()), (2, 11, "a"));
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_v3() {
        assert_eq!(resolve_plain("12"), "!!int");
        assert_eq!(resolve_plain("0x1f"), "!!int");
        assert_eq!(resolve_plain("1.5"), "!!float");
        assert_eq!(resolve_plain("~"), "!!null");
        assert_eq!(resolve_plain("true"), "!!bool");
        assert_eq!(resolve_plain("5m"), "!!str");
        assert_eq!(resolve_plain("1e"), "!!str");
    }

    #[test]
    fn aliases_expand_and_syntax_errors_name_the_line() {
        let root = parse("a: &x [1, 2]\nb: *x\n").expect("valid").expect("doc");
        let Kind::Map(e) = &root.kind else { panic!() };
        assert_eq!(e[0].1.kind, e[1].1.kind);
        let err = parse("a: b\n  c: d: e\n").expect_err("bad yaml");
        assert_eq!(err.line, 2, "{err}");
        assert!(parse("").expect("empty is fine").is_none());
    }

    #[test]
    fn exponential_aliasing_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&doc).expect_err("too many nodes");
        assert!(err.message.contains("aliasing"), "{err}");
    }
}
