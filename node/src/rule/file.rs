//! Rule files in Prometheus' format (plus Thanos' `partial_response_strategy` per group):
//! decoding with yaml.v3's strictness and messages, and rulefmt's validation, so a file gets
//! the verdict and messages promtool gives it.

use super::template;
use super::yaml::{self, Kind, Node};
use std::collections::BTreeMap;
use std::time::Duration;

/// A rule file's groups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleGroups {
    /// The groups in file order.
    pub groups: Vec<RuleGroup>,
}

/// What a query failure does to a group's evaluation (Thanos; Prometheus has only `abort`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PartialResponse {
    /// A failing store fails the evaluation.
    #[default]
    Abort,
    /// A failing store becomes a warning; the evaluation uses what answered.
    Warn,
}

/// A group of rules evaluated in order at one interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleGroup {
    /// The group's name, unique in its file.
    pub name: String,
    /// The group's own evaluation interval (None: the global one).
    pub interval: Option<Duration>,
    /// Most series a rule may produce (0: no limit).
    pub limit: i64,
    /// Thanos' per-group partial response strategy.
    pub partial_response: PartialResponse,
    /// The rules in evaluation order.
    pub rules: Vec<Rule>,
    /// Position of the group's node, for messages.
    pub(super) pos: (usize, usize),
}

/// One recording or alerting rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rule {
    /// Output metric name of a recording rule ("" for an alert).
    pub record: String,
    /// Alert name of an alerting rule ("" for a recording rule).
    pub alert: String,
    /// The PromQL expression.
    pub expr: String,
    /// How long an alert stays pending before it fires.
    pub for_: Duration,
    /// How long an alert keeps firing after its condition cleared.
    pub keep_firing_for: Duration,
    /// Labels added to (or overriding) the output.
    pub labels: BTreeMap<String, String>,
    /// Alert annotations (templates).
    pub annotations: BTreeMap<String, String>,
    pub(super) record_pos: (usize, usize),
    pub(super) alert_pos: (usize, usize),
    pub(super) expr_pos: (usize, usize),
}

impl Rule {
    /// The alert name or the recorded metric name.
    pub fn name(&self) -> &str {
        if self.alert.is_empty() {
            &self.record
        } else {
            &self.alert
        }
    }
}

/// Go's `%q` of a string (no truncation: promtool prints names whole).
pub fn go_q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads and parses a rule file; errors are prefixed with the file name as promtool does.
pub fn parse_file(path: &str) -> Result<RuleGroups, Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| vec![format!("{path}: {}", io_message(&e))])?;
    parse(&bytes).map_err(|errs| errs.into_iter().map(|e| format!("{path}: {e}")).collect())
}

/// Go's wording of the common open errors.
fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "open: no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "open: permission denied".into(),
        _ if e.raw_os_error() == Some(21) => "read: is a directory".into(),
        _ => e.to_string(),
    }
}

/// Parses and validates rule-file content; every problem found is returned.
pub fn parse(content: &[u8]) -> Result<RuleGroups, Vec<String>> {
    let text = std::str::from_utf8(content)
        .map_err(|_| vec!["yaml: invalid leading UTF-8 octet".to_string()])?;
    let root = match yaml::parse(text) {
        Ok(root) => root,
        // rulefmt decodes twice (typed and as nodes) and reports both failures.
        Err(e) => return Err(vec![e.to_string(), e.to_string()]),
    };
    let mut decoder = Decoder::default();
    let groups = root.as_ref().map(|r| decoder.groups(r)).unwrap_or_default();
    // yaml.v3 stops at an unmarshaler's error (a bad duration), dropping type errors so far.
    if let Some(e) = decoder.fatal.into_iter().next() {
        return Err(vec![e]);
    }
    if !decoder.errors.is_empty() {
        let mut errs = vec![format!(
            "yaml: unmarshal errors:\n  {}",
            decoder.errors.join("\n  ")
        )];
        if let Some(e) = decoder.node_pass_error {
            errs.push(e);
        }
        return Err(errs);
    }
    let errs = validate(&groups);
    if errs.is_empty() {
        Ok(groups)
    } else {
        Err(errs)
    }
}

/// yaml.v3 shows at most 7 bytes of a longer scalar in type errors.
fn shorten(value: &str) -> String {
    if value.len() > 10 {
        let mut cut = 7;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &value[..cut])
    } else {
        value.to_string()
    }
}

/// yaml.v3-style strict decoding: collects "line N: ..." type errors, stops at custom
/// unmarshaler errors (durations), as yaml.v3 does.
#[derive(Default)]
struct Decoder {
    errors: Vec<String>,
    fatal: Vec<String>,
    /// The error rulefmt's second, untyped pass (`groups: []yaml.Node`) reports.
    node_pass_error: Option<String>,
}

impl Decoder {
    fn type_error(&mut self, n: &Node, into: &str) {
        let tag = n.tag();
        let msg = match &n.kind {
            Kind::Scalar { value, .. } => {
                format!(
                    "line {}: cannot unmarshal {tag} `{}` into {into}",
                    n.line,
                    shorten(value)
                )
            }
            _ => format!("line {}: cannot unmarshal {tag} into {into}", n.line),
        };
        self.errors.push(msg);
    }

    /// A mapping's entries with yaml.v3's duplicate-key and unknown-field checks.
    fn fields<'n>(&mut self, n: &'n Node, ty: &str, known: &[&str]) -> Vec<(&'n str, &'n Node)> {
        let Kind::Map(entries) = &n.kind else {
            return Vec::new();
        };
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = k.value();
            if let Some(first) = seen.get(key) {
                self.errors.push(format!(
                    "line {}: mapping key {} already defined at line {first}",
                    k.line,
                    go_q(key)
                ));
                continue;
            }
            seen.insert(key, k.line);
            if !known.contains(&key) {
                self.errors.push(format!(
                    "line {}: field {key} not found in type {ty}",
                    k.line
                ));
                continue;
            }
            out.push((key, v));
        }
        out
    }

    fn groups(&mut self, root: &Node) -> RuleGroups {
        if root.is_null() {
            return RuleGroups::default();
        }
        if !matches!(root.kind, Kind::Map(_)) {
            self.type_error(root, "rulefmt.RuleGroups");
            let into = "rulefmt.ruleGroups";
            self.node_pass_error = Some(format!(
                "yaml: unmarshal errors:\n  {}",
                match &root.kind {
                    Kind::Scalar { value, .. } => format!(
                        "line {}: cannot unmarshal {} `{}` into {into}",
                        root.line,
                        root.tag(),
                        shorten(value)
                    ),
                    _ => format!(
                        "line {}: cannot unmarshal {} into {into}",
                        root.line,
                        root.tag()
                    ),
                }
            ));
            return RuleGroups::default();
        }
        let mut out = RuleGroups::default();
        for (_, v) in self.fields(root, "rulefmt.RuleGroups", &["groups"]) {
            match &v.kind {
                Kind::Seq(items) => {
                    out.groups = items.iter().filter_map(|g| self.group(g)).collect();
                }
                _ if v.is_null() => {}
                _ => {
                    self.type_error(v, "[]rulefmt.RuleGroup");
                    self.node_pass_error = Some(format!(
                        "yaml: unmarshal errors:\n  line {}: cannot unmarshal {}{} into []yaml.Node",
                        v.line,
                        v.tag(),
                        match &v.kind {
                            Kind::Scalar { value, .. } => format!(" `{}`", shorten(value)),
                            _ => String::new(),
                        }
                    ));
                }
            }
        }
        out
    }

    fn group(&mut self, n: &Node) -> Option<RuleGroup> {
        let mut g = RuleGroup {
            pos: (n.line, n.column),
            ..RuleGroup::default()
        };
        if n.is_null() {
            return Some(g);
        }
        if !matches!(n.kind, Kind::Map(_)) {
            self.type_error(n, "rulefmt.RuleGroup");
            return Some(g);
        }
        let known = [
            "name",
            "interval",
            "limit",
            "rules",
            "partial_response_strategy",
        ];
        for (key, v) in self.fields(n, "rulefmt.RuleGroup", &known) {
            match key {
                "name" => g.name = self.string(v),
                "interval" => g.interval = self.duration(v).filter(|d| !d.is_zero()),
                "limit" => g.limit = self.int(v),
                "partial_response_strategy" => {
                    g.partial_response = match self.string(v).to_ascii_lowercase().as_str() {
                        "warn" => PartialResponse::Warn,
                        "abort" | "" => PartialResponse::Abort,
                        other => {
                            self.fatal.push(format!(
                                "line {}: unknown partial_response_strategy {}, want warn or abort",
                                v.line,
                                go_q(other)
                            ));
                            PartialResponse::Abort
                        }
                    }
                }
                _ => match &v.kind {
                    Kind::Seq(items) => g.rules = items.iter().map(|r| self.rule(r)).collect(),
                    _ if v.is_null() => {}
                    _ => self.type_error(v, "[]rulefmt.RuleNode"),
                },
            }
        }
        Some(g)
    }

    fn rule(&mut self, n: &Node) -> Rule {
        let mut r = Rule::default();
        if n.is_null() {
            return r;
        }
        if !matches!(n.kind, Kind::Map(_)) {
            self.type_error(n, "rulefmt.RuleNode");
            return r;
        }
        let known = [
            "record",
            "alert",
            "expr",
            "for",
            "keep_firing_for",
            "labels",
            "annotations",
        ];
        let pos = |v: &Node| (v.line, v.column);
        for (key, v) in self.fields(n, "rulefmt.RuleNode", &known) {
            match key {
                "record" => (r.record, r.record_pos) = (v.value().to_string(), pos(v)),
                "alert" => (r.alert, r.alert_pos) = (v.value().to_string(), pos(v)),
                "expr" => (r.expr, r.expr_pos) = (v.value().to_string(), pos(v)),
                "for" => r.for_ = self.duration(v).unwrap_or_default(),
                "keep_firing_for" => r.keep_firing_for = self.duration(v).unwrap_or_default(),
                "labels" => r.labels = self.string_map(v),
                _ => r.annotations = self.string_map(v),
            }
        }
        r
    }

    fn string(&mut self, v: &Node) -> String {
        match &v.kind {
            Kind::Scalar { value, .. } if !v.is_null() => value.clone(),
            Kind::Scalar { .. } => String::new(),
            _ => {
                self.type_error(v, "string");
                String::new()
            }
        }
    }

    fn int(&mut self, v: &Node) -> i64 {
        if v.is_null() {
            return 0;
        }
        match yaml::parse_int(v.value()) {
            Some(n) if v.tag() == "!!int" => n,
            _ => {
                self.type_error(v, "int");
                0
            }
        }
    }

    /// `model.Duration`'s UnmarshalYAML: a string, then Prometheus' duration syntax.
    fn duration(&mut self, v: &Node) -> Option<Duration> {
        if v.is_null() {
            return None;
        }
        let s = self.string(v);
        if !matches!(v.kind, Kind::Scalar { .. }) {
            return None;
        }
        match crate::http::params::parse_prometheus_duration(&s).map(u64::try_from) {
            Some(Ok(ms)) => Some(Duration::from_millis(ms)),
            _ => {
                let msg = if s.is_empty() {
                    "empty duration string".to_string()
                } else {
                    format!("not a valid duration string: {}", go_q(&s))
                };
                self.fatal.push(msg);
                None
            }
        }
    }

    fn string_map(&mut self, v: &Node) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match &v.kind {
            Kind::Map(entries) => {
                let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
                for (k, val) in entries {
                    if let Some(first) = seen.get(k.value()) {
                        self.errors.push(format!(
                            "line {}: mapping key {} already defined at line {first}",
                            k.line,
                            go_q(k.value())
                        ));
                        continue;
                    }
                    seen.insert(k.value(), k.line);
                    let key = self.string(k);
                    let value = self.string(val);
                    out.insert(key, value);
                }
            }
            _ if v.is_null() => {}
            _ => self.type_error(v, "map[string]string"),
        }
        out
    }
}

/// rulefmt's `RuleGroups.Validate`: every semantic problem, with positions where rulefmt
/// gives them.
fn validate(groups: &RuleGroups) -> Vec<String> {
    let mut errs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for g in &groups.groups {
        let (line, col) = g.pos;
        if g.name.is_empty() {
            errs.push(format!("{line}:{col}: Groupname must not be empty"));
        }
        if !names.insert(g.name.as_str()) {
            errs.push(format!(
                "{line}:{col}: groupname: \"{}\" is repeated in the same file",
                g.name
            ));
        }
        for (i, r) in g.rules.iter().enumerate() {
            for (pos, msg) in validate_rule(r) {
                let prefix = match pos {
                    Pos::Two(a, b) => format!("{}:{}: {}:{}: ", a.0, a.1, b.0, b.1),
                    Pos::One(a) => format!("{}:{}: ", a.0, a.1),
                    Pos::None => String::new(),
                };
                errs.push(format!(
                    "{prefix}group {}, rule {}, {}: {msg}",
                    go_q(&g.name),
                    i + 1,
                    go_q(r.name())
                ));
            }
        }
    }
    errs
}

enum Pos {
    None,
    One((usize, usize)),
    Two((usize, usize), (usize, usize)),
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn validate_rule(r: &Rule) -> Vec<(Pos, String)> {
    let mut out = Vec::new();
    if !r.record.is_empty() && !r.alert.is_empty() {
        out.push((
            Pos::Two(r.record_pos, r.alert_pos),
            "only one of 'record' and 'alert' must be set".into(),
        ));
    }
    if r.record.is_empty() && r.alert.is_empty() {
        out.push((
            Pos::One(r.record_pos),
            "one of 'record' or 'alert' must be set".into(),
        ));
    }
    if r.expr.is_empty() {
        out.push((
            Pos::One(r.expr_pos),
            "field 'expr' must be set in rule".into(),
        ));
    } else if let Err(e) = promql::engine::parse(&r.expr) {
        out.push((
            Pos::One(r.expr_pos),
            format!("could not parse expression: {e}"),
        ));
    }
    if !r.record.is_empty() {
        let at = || Pos::One(r.record_pos);
        if !r.annotations.is_empty() {
            out.push((at(), "invalid field 'annotations' in recording rule".into()));
        }
        if !r.for_.is_zero() {
            out.push((at(), "invalid field 'for' in recording rule".into()));
        }
        if !r.keep_firing_for.is_zero() {
            out.push((
                at(),
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
        if !is_valid_metric_name(&r.record) {
            out.push((at(), format!("invalid recording rule name: {}", r.record)));
        }
    }
    for (k, v) in &r.labels {
        if !crate::http::params::is_valid_label_name(k) || k == "__name__" {
            out.push((Pos::None, format!("invalid label name: {k}")));
        }
        // Go strings from YAML are always valid UTF-8, as Rust's are: no label value check.
        let _ = v;
    }
    for k in r.annotations.keys() {
        if !crate::http::params::is_valid_label_name(k) {
            out.push((Pos::None, format!("invalid annotation name: {k}")));
        }
    }
    if !r.alert.is_empty() {
        let name = format!("__alert_{}", r.alert);
        for (what, map) in [("label", &r.labels), ("annotation", &r.annotations)] {
            for (k, text) in map {
                let text = format!("{}{text}", template::ALERT_DEFS);
                if let Err(e) = template::Template::parse(&name, &text) {
                    out.push((Pos::None, format!("{what} {}: {e}", go_q(k))));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        parse(text.as_bytes()).expect_err("invalid file")
    }

    #[test]
    fn parses_groups_rules_and_thanos_strategy() {
        let g = parse(
            b"groups:\n- name: g\n  interval: 30s\n  limit: 5\n  partial_response_strategy: warn\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.job }} down'}\n",
        )
        .expect("valid file");
        let group = &g.groups[0];
        assert_eq!(group.interval, Some(Duration::from_secs(30)));
        assert_eq!(group.limit, 5);
        assert_eq!(group.partial_response, PartialResponse::Warn);
        assert_eq!(group.rules[1].for_, Duration::from_secs(300));
        assert_eq!(group.rules[1].labels["severity"], "page");
        assert_eq!(group.rules[0].name(), "job:up:sum");
    }

    #[test]
    fn validation_messages_are_rulefmts() {
        let e = errs(
            "groups:\n- name: g\n  rules:\n  - record: 'bad name'\n    expr: up\n    for: 1m\n",
        );
        assert_eq!(
            e,
            vec![
                "4:13: group \"g\", rule 1, \"bad name\": invalid field 'for' in recording rule",
                "4:13: group \"g\", rule 1, \"bad name\": invalid recording rule name: bad name",
            ]
        );
        let e = errs("groups:\n- name: g\n  rules:\n  - expr: up\n");
        assert_eq!(
            e,
            vec!["0:0: group \"g\", rule 1, \"\": one of 'record' or 'alert' must be set"]
        );
        let e = errs("groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n");
        assert_eq!(
            e,
            vec!["4:3: groupname: \"g\" is repeated in the same file"]
        );
    }

    #[test]
    fn unknown_fields_and_bad_types_are_yaml_v3_unmarshal_errors() {
        let e = errs("groups:\n- name: g\n  rulez: []\n  limit: many\n");
        assert_eq!(
            e,
            vec![
                "yaml: unmarshal errors:\n  line 3: field rulez not found in type rulefmt.RuleGroup\n  line 4: cannot unmarshal !!str `many` into int"
            ]
        );
        let e = errs("groups:\n- name: g\n  interval: soon\n");
        assert_eq!(e, vec!["not a valid duration string: \"soon\""]);
    }

    #[test]
    fn syntax_errors_are_reported_twice_like_rulefmt() {
        let e = errs("groups:\n- name: [\n");
        assert_eq!(e.len(), 2);
        assert!(e[0].starts_with("yaml: line "), "{e:?}");
    }

    proptest::proptest! {
        #[test]
        fn any_yaml_like_text_gets_a_verdict_without_panicking(
            text in "[-a-z :{}\\[\\]'\"|>&*!#\n0-9$.()]{0,200}"
        ) {
            let _ = parse(text.as_bytes());
        }

        #[test]
        fn any_bytes_get_a_verdict_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn templates_in_valid_files_expand_without_panicking() {
        let g = parse(b"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      a: '{{ range $i, $x := .Labels }}{{ $i }}{{ else }}none{{ end }}{{ printf \"%5.1f|%-4s|%x\" $value \"ab\" \"hi\" }}'\n").expect("valid");
        let r = &g.groups[0].rules[0];
        let t = template::Template::parse(
            "t",
            &format!("{}{}", template::ALERT_DEFS, r.annotations["a"]),
        )
        .expect("parses");
        let data = template::alert_data(&BTreeMap::new(), &BTreeMap::new(), "", 2.5);
        let out = t
            .execute(&data, &super::super::funcs::Env::default())
            .expect("executes");
        assert_eq!(out, "none  2.5|ab  |6869");
    }

    #[test]
    fn empty_files_have_no_groups() {
        assert_eq!(parse(b"").expect("empty is valid"), RuleGroups::default());
        assert_eq!(
            parse(b"groups:\n").expect("null groups"),
            RuleGroups::default()
        );
    }
}
