//! Deep queries: answered up to `MAX_DEPTH` levels and refused beyond it with a parse error,
//! never a stack overflow. Every call runs on a thread with a small, fixed stack, so that a
//! recursive pass left on the caller's stack fails these tests (the process aborts) instead
//! of passing on a large default stack.

use promql::depth::{MAX_DEPTH, MAX_OPERATORS};
use promql::engine::parse;
use promql::{Engine, MemoryQueryable, QueryError, Value};
use storage::labels::Labels;

/// The caller's stack: far below what any recursion over thousands of levels needs.
const SMALL_STACK: usize = 256 * 1024;

fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(f)
        .expect("thread starts")
        .join()
        .expect("no panic")
}

fn store() -> MemoryQueryable {
    let mut q = MemoryQueryable::new();
    q.append(
        Labels::from_pairs([("__name__", "up".to_string()), ("job", "a".to_string())]),
        &[(0, 1.0), (60_000, 1.0)],
    );
    q
}

/// Runs an instant query at 60 s on a small-stack thread with its own runtime.
fn instant(query: String) -> Result<Value, QueryError> {
    on_small_stack(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            Engine::default()
                .instant_query(&store(), &query, 60_000)
                .await
                .map(|r| r.value)
        })
    })
}

fn nest(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

fn one_sample(v: Result<Value, QueryError>) -> f64 {
    match v {
        Ok(Value::Vector(s)) if s.len() == 1 => s[0].v,
        Ok(Value::Scalar { v, .. }) => v,
        other => panic!("expected one sample, got {other:?}"),
    }
}

#[test]
fn ten_thousand_nested_parentheses_are_answered() {
    assert_eq!(one_sample(instant(nest("(", "up", ")", MAX_DEPTH))), 1.0);
}

#[test]
fn deeply_nested_calls_and_aggregations_are_answered() {
    assert_eq!(one_sample(instant(nest("abs(", "up", ")", 2_000))), 1.0);
    assert_eq!(one_sample(instant(nest("sum(", "up", ")", 2_000))), 1.0);
    assert_eq!(one_sample(instant(nest("-(", "up", ")", 2_000))), 1.0);
    let sub = nest("max_over_time((", "up", ")[1m:30s])", 300);
    assert_eq!(one_sample(instant(sub)), 1.0);
}

#[test]
fn operator_chains_up_to_the_operator_limit_are_answered() {
    let q = vec!["1"; MAX_OPERATORS + 1].join("+");
    assert_eq!(one_sample(instant(q)), (MAX_OPERATORS + 1) as f64);
    let q = vec!["up"; MAX_OPERATORS + 1].join(" or ");
    assert_eq!(one_sample(instant(q)), 1.0);
    let q = vec!["up"; MAX_OPERATORS + 1].join(" * ");
    assert_eq!(one_sample(instant(q)), 1.0);
    // An even number of minus signs.
    let q = format!("{}1", "-".repeat(MAX_OPERATORS));
    assert_eq!(one_sample(instant(q)), 1.0);
}

fn expect_parse_error(q: String, part: &str) {
    match instant(q) {
        Err(QueryError::Parse(m)) => assert!(m.contains(part), "{m}"),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn deeper_than_the_limit_is_a_bad_data_parse_error() {
    for q in [
        nest("(", "up", ")", MAX_DEPTH + 1),
        nest("abs(", "up", ")", 100_000),
    ] {
        expect_parse_error(
            q,
            "parse error: query nests too deeply: more than 10000 levels",
        );
    }
}

#[test]
fn more_operators_than_the_limit_is_a_bad_data_parse_error() {
    let part = format!("parse error: query has too many operators: more than {MAX_OPERATORS}");
    for q in [
        vec!["1"; MAX_OPERATORS + 2].join("+"),
        vec!["up"; 50_000].join(" or "),
        vec!["1"; 1_000_000].join("+"),
        format!("{}1", "-".repeat(MAX_OPERATORS + 1)),
        nest("(", "up + up", ")", MAX_OPERATORS + 1).replace(")", ") + up"),
    ] {
        expect_parse_error(q, &part);
    }
}

#[test]
fn parse_and_drop_of_a_deep_tree_are_safe_on_a_small_stack() {
    let (vector, depth) = on_small_stack(|| {
        let e = parse(&nest("(", "up", ")", MAX_DEPTH)).expect("parses");
        let e2 = parse(&vec!["up"; 2_000].join(" or ")).expect("parses");
        let is_vector =
            promql::depth::value_type(&e2) == promql_parser::parser::value::ValueType::Vector;
        (is_vector, promql::depth::depth(&e))
    });
    assert!(vector);
    assert_eq!(depth, MAX_DEPTH + 1);
}

#[test]
fn unbalanced_deep_input_is_a_parse_error_not_a_crash() {
    for q in [
        "(".repeat(9_000),
        format!("{}up", "sum(".repeat(5_000)),
        format!("up{}", ")".repeat(9_000)),
        format!("{}up", "-".repeat(9_000)) + "+",
    ] {
        assert!(
            matches!(instant(q.clone()), Err(QueryError::Parse(_))),
            "{}",
            &q[..20]
        );
    }
}
