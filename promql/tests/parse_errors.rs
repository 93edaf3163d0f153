//! Malformed PromQL gets Prometheus 2.42's error text, position included: every row of
//! `golden/parse_errors.tsv` (recorded from Prometheus 2.42 by `golden/gen_parse_errors.py`)
//! must be rejected by the parser with exactly Prometheus' message, except the rows listed in
//! `KNOWN_DIFFERENCES` with the reason. Also: no input makes the error path panic.

use promql::engine::parse;
use promql::QueryError;
use proptest::prelude::*;

/// Rows Strata does not answer with Prometheus' text, each with the reason. All are queries
/// that promql-parser 0.11 (which follows Prometheus 3) accepts and 2.42 rejects: Strata runs
/// them instead of failing, because promql-parser decides what is valid.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "foo offset 5",
        "promql-parser takes a bare number as seconds (Prometheus 3)",
    ),
    (
        "foo[5]",
        "promql-parser takes a bare number as seconds (Prometheus 3)",
    ),
    (
        "foo[5m:1]",
        "promql-parser takes a bare number as seconds (Prometheus 3)",
    ),
    ("start()", "promql-parser accepts start() outside @"),
    (
        "+foo[5m]",
        "promql-parser drops unary plus before type checks",
    ),
    ("foo @ 1e19", "promql-parser does not bound @ timestamps"),
    (
        "sum by (\"a\") (foo)",
        "quoted label names are Prometheus 3 syntax",
    ),
    (
        "foo + on(\"a\") bar",
        "quoted label names are Prometheus 3 syntax",
    ),
    (
        "sort_by_label(foo)",
        "function added after 2.42; promql-parser knows it",
    ),
    (
        "mad_over_time(foo[5m])",
        "function added after 2.42; promql-parser knows it",
    ),
    (
        "foo{a!~\"a**\"}",
        "Rust's regex accepts what Go's RE2 rejects",
    ),
    (
        "foo{a=~\"(?<name>x)\"}",
        "Rust's regex accepts what Go's RE2 rejects",
    ),
    (
        "foo{a=~\"a{1001}\"}",
        "Rust's regex accepts what Go's RE2 rejects",
    ),
    (
        "foo{a=~\"[[:foo:]]\"}",
        "Rust's regex accepts what Go's RE2 rejects",
    ),
    (
        "foo{a=~\"a++\"}",
        "Rust's regex accepts what Go's RE2 rejects",
    ),
];

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

fn golden() -> Vec<(String, String)> {
    read_tsv(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/parse_errors.tsv"
    ))
}

fn read_tsv(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("golden file is readable");
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (q, e) = l.split_once('\t').expect("query<TAB>error");
            (unescape(q), unescape(e))
        })
        .collect()
}

#[test]
fn malformed_queries_get_prometheus_error_texts() {
    let rows = golden();
    assert!(rows.len() >= 150, "corpus too small: {}", rows.len());
    let (mut same, mut accepted, mut differ) = (0, Vec::new(), Vec::new());
    for (query, want) in &rows {
        match parse(query) {
            Ok(_) => accepted.push(query.clone()),
            Err(QueryError::Parse(got)) if &got == want => same += 1,
            Err(e) => differ.push(format!("{query:?}\n   want {want}\n   got  {e}")),
        }
    }
    println!("{same} of {} identical to Prometheus 2.42", rows.len());
    let known = |q: &String| KNOWN_DIFFERENCES.iter().any(|(k, _)| k == q);
    let unexplained_accepts: Vec<_> = accepted.iter().filter(|q| !known(q)).collect();
    let unexplained: Vec<_> = differ
        .iter()
        .filter(|d| {
            !KNOWN_DIFFERENCES
                .iter()
                .any(|(k, _)| d.starts_with(&format!("{k:?}\n")))
        })
        .collect();
    for d in &unexplained {
        println!("DIFF {d}");
    }
    for q in &unexplained_accepts {
        println!("ACCEPTED {q:?}");
    }
    // The recogniser alone (what Strata would say if it rejected these like 2.42).
    let explained = rows
        .iter()
        .filter(|(q, want)| {
            accepted.contains(q)
                && promql::parse_error::explain(q)
                    .map(|e| e.render(q))
                    .as_ref()
                    == Some(want)
        })
        .count();
    println!(
        "{} accepted by promql-parser (listed: {}); the 2.42 recogniser words {explained} of them like Prometheus",
        accepted.len(),
        accepted.len() - unexplained_accepts.len()
    );
    assert!(
        unexplained.is_empty() && unexplained_accepts.is_empty(),
        "{} differences and {} accepted queries not listed in KNOWN_DIFFERENCES",
        unexplained.len(),
        unexplained_accepts.len()
    );
}

/// Exploration aid: `PARSE_ERRORS_TSV=FILE cargo nextest run -p promql --test parse_errors
/// --run-ignored only` reports how many rows of another recorded file (same format, e.g.
/// random mutations sent to Prometheus 2.42) the recogniser words identically.
#[test]
#[ignore = "needs PARSE_ERRORS_TSV"]
fn report_agreement_on_another_recording() {
    let Ok(path) = std::env::var("PARSE_ERRORS_TSV") else {
        return;
    };
    let rows = read_tsv(&path);
    let mut same = 0;
    for (query, want) in &rows {
        let got = promql::parse_error::explain(query).map(|e| e.render(query));
        if got.as_ref() == Some(want) {
            same += 1;
        } else {
            println!("DIFF {query:?}\n   want {want}\n   got  {got:?}");
        }
    }
    println!("{same} of {} identical", rows.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_error_path(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let query = String::from_utf8_lossy(&bytes);
        let _ = promql::parse_error::explain(&query);
        let _ = promql::parse_error::message_for_rejected(&query, "x");
    }

    #[test]
    fn promql_like_text_never_panics(query in "[a-z_:{}()\\[\\]=~!\"'`,.0-9 +*/^%@<>#\\\\-]{0,40}") {
        let _ = promql::parse_error::explain(&query);
        if let Err(QueryError::Parse(msg)) = parse(&query) {
            prop_assert!(msg.contains("parse error: "), "{msg}");
        }
    }
}
