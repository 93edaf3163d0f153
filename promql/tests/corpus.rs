//! The PromQL conformance runner: every eval of Prometheus 2.42's test scripts
//! (`testdata/v2.42`), checked like Prometheus' own runner does: the instant result, the same
//! expression as a range query around the instant, and the `@`-pinned rewrite at other times.
//! The Prometheus 3 corpus (`testdata/head`) is run too and its pass rate printed, not required.

mod script;

use promql::engine::parse;
use promql::{Engine, EngineOptions, MemoryQueryable, ParsedExpr, Value};
use promql_parser::parser::{AtModifier, Expr};
use script::{parse_script, Cmd, EvalKind, Expect};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage::labels::Labels;

/// Evals of the 2.42 corpus that are allowed to fail: (file, line of the eval, reason).
const SKIPS: &[(&str, usize, &str)] = &[];

/// Functions whose result depends on the evaluation time even with pinned inputs.
const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

fn engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 10_000,
        timeout: Duration::from_secs(100),
    })
}

/// Prometheus' test comparison: NaN equals NaN, otherwise a relative tolerance of 1e-6.
fn almost_equal(a: f64, b: f64) -> bool {
    const EPS: f64 = 1e-6;
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < min_normal {
        return diff < EPS * min_normal;
    }
    diff / (a.abs() + b.abs()) < EPS
}

fn compare_vector(samples: &[(Labels, f64)], expect: &Expect, ordered: bool) -> Result<(), String> {
    let exp = match expect {
        Expect::Series(s) => s,
        Expect::Scalar(v) => {
            return Err(format!(
                "expected scalar {v}, got a vector of {}",
                samples.len()
            ))
        }
    };
    let mut seen = vec![false; exp.len()];
    for (pos, (l, v)) in samples.iter().enumerate() {
        let Some(k) = exp.iter().position(|(el, _)| el == l) else {
            return Err(format!("unexpected metric {l} in result (value {v})"));
        };
        if ordered && k != pos {
            return Err(format!(
                "expected metric {l} at position {} but was at {}",
                k + 1,
                pos + 1
            ));
        }
        let want = exp[k].1.first().copied().flatten().unwrap_or(f64::NAN);
        if !almost_equal(want, *v) {
            return Err(format!("expected {want} for {l} but got {v}"));
        }
        seen[k] = true;
    }
    for (k, s) in seen.iter().enumerate() {
        if !s {
            return Err(format!(
                "expected metric {} with {:?} not found",
                exp[k].0, exp[k].1
            ));
        }
    }
    Ok(())
}

fn compare_instant(v: &Value, expect: &Expect, ordered: bool) -> Result<(), String> {
    match v {
        Value::Matrix(_) => Err("received range result on instant evaluation".into()),
        Value::String { .. } => Err("received string result".into()),
        Value::Scalar { v, .. } => match expect {
            Expect::Scalar(want) if almost_equal(*want, *v) => Ok(()),
            Expect::Scalar(want) => Err(format!("expected scalar {want} but got {v}")),
            Expect::Series(_) => Err(format!("expected a vector, got scalar {v}")),
        },
        Value::Vector(s) => {
            let samples: Vec<(Labels, f64)> = s.iter().map(|x| (x.metric.clone(), x.v)).collect();
            compare_vector(&samples, expect, ordered)
        }
    }
}

/// The engine takes a shared parsed tree; the corpus rewrites trees, so it wraps copies.
fn shared(expr: &Expr) -> Arc<ParsedExpr> {
    Arc::new(ParsedExpr::new(expr.clone()))
}

async fn check_instant(
    eng: &Engine,
    store: &MemoryQueryable,
    expr: &Expr,
    t: i64,
    expect: &Expect,
    fail: bool,
    ordered: bool,
) -> Result<(), String> {
    let res = eng
        .instant_query_expr(store, shared(expr), t, eng.control())
        .await;
    let value = match (res, fail) {
        (Err(_), true) => return Ok(()),
        (Err(e), false) => return Err(format!("error: {e}")),
        (Ok(_), true) => return Err("expected an error, got none".into()),
        (Ok(r), false) => r.value,
    };
    compare_instant(&value, expect, ordered)?;
    let rr = eng
        .range_query_expr(
            store,
            shared(expr),
            t - 60_000,
            t + 60_000,
            60_000,
            eng.control(),
        )
        .await
        .map_err(|e| format!("range mode: error: {e}"))?;
    if ordered {
        return Ok(());
    }
    let Value::Matrix(m) = rr.value else {
        return Err("range mode: not a matrix".into());
    };
    let at_t: Vec<(Labels, f64)> = m
        .iter()
        .filter_map(|s| {
            s.points
                .iter()
                .find(|p| p.0 == t)
                .map(|p| (s.metric.clone(), p.1))
        })
        .collect();
    let r = if matches!(value, Value::Scalar { .. }) {
        match at_t.first() {
            Some((_, v)) => compare_instant(&Value::Scalar { t, v: *v }, expect, false),
            None => Err("no point at t".into()),
        }
    } else {
        compare_vector(&at_t, expect, false)
    };
    r.map_err(|e| format!("range mode: {e}"))
}

fn at_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Pins every selector and subquery outside subqueries to `@ ts`, like Prometheus' runner;
/// returns false when the expression calls a function that depends on the evaluation time.
fn pin_at(e: &mut Expr, ts: i64) -> bool {
    let pin = |at: &mut Option<AtModifier>| {
        if !matches!(at, Some(AtModifier::At(_))) {
            *at = Some(AtModifier::At(at_time(ts)));
        }
    };
    match e {
        Expr::VectorSelector(vs) => pin(&mut vs.at),
        Expr::MatrixSelector(ms) => pin(&mut ms.vs.at),
        Expr::Subquery(sq) => pin(&mut sq.at),
        Expr::Paren(p) => return pin_at(&mut p.expr, ts),
        Expr::Unary(u) => return pin_at(&mut u.expr, ts),
        Expr::Binary(b) => {
            let l = pin_at(&mut b.lhs, ts);
            return pin_at(&mut b.rhs, ts) && l;
        }
        Expr::Aggregate(a) => {
            let p = a.param.as_mut().is_none_or(|p| pin_at(p, ts));
            return pin_at(&mut a.expr, ts) && p;
        }
        Expr::Call(c) => {
            let mut ok = !AT_UNSAFE.contains(&c.func.name);
            for a in c.args.args.iter_mut() {
                ok &= pin_at(a, ts);
            }
            return ok;
        }
        _ => {}
    }
    true
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    not_run: usize,
    failures: Vec<String>,
}

async fn run_eval(
    eng: &Engine,
    store: &MemoryQueryable,
    kind: &EvalKind,
    expr_s: &str,
    fail: bool,
    ordered: bool,
    expect: &Expect,
) -> Result<(), String> {
    let expr = parse(expr_s).map_err(|e| format!("parse: {e}"))?;
    match *kind {
        EvalKind::Instant { at_ms } => {
            check_instant(eng, store, &expr, at_ms, expect, fail, ordered).await?;
            let mut pinned = expr.clone();
            if pin_at(&mut pinned, at_ms) {
                let times: Vec<i64> = if at_ms == 0 {
                    vec![-1000, 0, 1000]
                } else {
                    vec![-10 * at_ms, 0, at_ms / 5, at_ms, 10 * at_ms]
                };
                for et in times {
                    check_instant(eng, store, &pinned, et, expect, fail, ordered)
                        .await
                        .map_err(|e| format!("@ rewrite {pinned} at {et}ms: {e}"))?;
                }
            }
            Ok(())
        }
        EvalKind::Range { start, end, step } => {
            let res = eng
                .range_query_expr(store, shared(&expr), start, end, step, eng.control())
                .await;
            let m = match (res, fail) {
                (Err(_), true) => return Ok(()),
                (Err(e), false) => return Err(format!("error: {e}")),
                (Ok(_), true) => return Err("expected an error, got none".into()),
                (Ok(r), false) => r.value,
            };
            let Value::Matrix(m) = m else {
                return Err("not a matrix".into());
            };
            let Expect::Series(exp) = expect else {
                return Err("scalar expectation for a range eval".into());
            };
            for s in &m {
                let Some((_, vals)) = exp.iter().find(|(l, _)| *l == s.metric) else {
                    return Err(format!("unexpected series {}", s.metric));
                };
                let want: Vec<(i64, f64)> = vals
                    .iter()
                    .enumerate()
                    .filter_map(|(k, v)| v.map(|v| (start + k as i64 * step, v)))
                    .collect();
                let same = want.len() == s.points.len()
                    && want
                        .iter()
                        .zip(&s.points)
                        .all(|(a, b)| a.0 == b.0 && almost_equal(a.1, b.1));
                if !same {
                    return Err(format!(
                        "series {}: expected {want:?}, got {:?}",
                        s.metric, s.points
                    ));
                }
            }
            for (l, vals) in exp {
                if vals.iter().any(Option::is_some) && !m.iter().any(|s| s.metric == *l) {
                    return Err(format!("expected series {l} not found"));
                }
            }
            Ok(())
        }
    }
}

async fn run_file(
    eng: &Engine,
    path: &Path,
    name: &str,
    tally: &mut Tally,
    skipped: &mut Vec<String>,
    skips: bool,
) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut store = MemoryQueryable::new();
    for cmd in parse_script(&text) {
        match cmd {
            Cmd::Clear => store.clear(),
            Cmd::Load(series) => {
                for (l, s) in series {
                    store.append(l, &s);
                }
            }
            Cmd::Unsupported { evals, .. } => tally.not_run += evals,
            Cmd::Eval {
                kind,
                expr,
                fail,
                ordered,
                expect,
                line,
            } => {
                let r = run_eval(eng, &store, &kind, &expr, fail, ordered, &expect).await;
                match r {
                    Ok(()) => tally.passed += 1,
                    Err(e) => {
                        let at = match kind {
                            EvalKind::Instant { at_ms } => format!("{at_ms}ms"),
                            EvalKind::Range { start, end, step } => {
                                format!("{start}..{end} step {step}")
                            }
                        };
                        let msg = format!("{name}:{line}: `{expr}` at {at}: {e}");
                        if skips && SKIPS.iter().any(|(f, l, _)| *f == name && *l == line) {
                            skipped.push(msg);
                        } else {
                            tally.failed += 1;
                            tally.failures.push(msg);
                        }
                    }
                }
            }
        }
    }
}

fn test_files(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    files
}

async fn run_corpus(dir: &str, skips: bool) -> (Tally, Vec<String>) {
    let eng = engine();
    let mut total = Tally::default();
    let mut skipped = Vec::new();
    for path in test_files(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut t = Tally::default();
        run_file(&eng, &path, &name, &mut t, &mut skipped, skips).await;
        println!(
            "{dir}/{name}: {} passed, {} failed{}",
            t.passed,
            t.failed,
            if t.not_run > 0 {
                format!(", {} not run", t.not_run)
            } else {
                String::new()
            }
        );
        total.passed += t.passed;
        total.failed += t.failed;
        total.not_run += t.not_run;
        total.failures.extend(t.failures);
    }
    (total, skipped)
}

#[tokio::test(flavor = "current_thread")]
async fn prometheus_2_42_corpus_passes() {
    let (t, skipped) = run_corpus("testdata/v2.42", true).await;
    for f in &t.failures {
        println!("FAIL {f}");
    }
    for s in &skipped {
        println!("SKIP {s}");
    }
    for (f, l, why) in SKIPS {
        println!("skip table: {f}:{l}: {why}");
    }
    println!(
        "{} passed, {} failed, {} skipped",
        t.passed,
        t.failed,
        skipped.len()
    );
    assert_eq!(
        t.passed + t.failed + skipped.len(),
        566,
        "the 2.42 corpus has 566 evals"
    );
    assert_eq!(t.failed, 0, "evals failed that are not in the skip table");
}

#[tokio::test(flavor = "current_thread")]
async fn prometheus_head_corpus_pass_rate() {
    let (t, _) = run_corpus("testdata/head", false).await;
    if std::env::var_os("SHOW_HEAD_FAILURES").is_some() {
        for f in &t.failures {
            println!("FAIL {f}");
        }
    }
    let run = t.passed + t.failed;
    println!(
        "head corpus: {} passed, {} failed, {} not run ({:.1}% of run evals pass)",
        t.passed,
        t.failed,
        t.not_run,
        100.0 * t.passed as f64 / run.max(1) as f64
    );
}
