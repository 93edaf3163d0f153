//! The query engine: parses, loads the data every selector needs, evaluates.

use crate::depth::{self, ParsedExpr};
use crate::error::QueryError;
use crate::eval::{load, Evaluator, Grid, Val};
use crate::queryable::Queryable;
use crate::stack;
use crate::value::{Sample, Series, Value};
use promql_parser::label::MatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, Function};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};
use storage::labels::Labels;

/// Most points per series a range query may ask for, like Prometheus' HTTP API.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine limits and defaults, with Prometheus' flag defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `--query.lookback-delta`, ms (5m).
    pub lookback_delta_ms: i64,
    /// `--query.max-samples` (50,000,000).
    pub max_samples: usize,
    /// `--query.timeout` (2m).
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value: for range queries always a matrix sorted by labels.
    pub value: Value,
    /// Warnings to pass to the client (partial data and the like).
    pub warnings: Vec<String>,
}

/// Evaluates PromQL.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
}

/// A flag the caller sets to cancel a running query (e.g. when the HTTP client went away).
pub type CancelFlag = Arc<AtomicBool>;

static REGISTER: Once = Once::new();

/// Parses `query` as Prometheus 2.42 would, `holt_winters` included. Queries nesting deeper
/// than [`crate::depth::MAX_DEPTH`] are refused; deep ones are parsed on a query thread (this
/// blocks the caller until done), so any caller's stack is safe.
pub fn parse(query: &str) -> Result<ParsedExpr, QueryError> {
    if depth::check_text(query)? <= depth::SHALLOW {
        parse_here(query)
    } else {
        stack::run_blocking(|| parse_here(query))
    }
}

/// As [`parse`], off the async runtime: even a shallow query can be megabytes of matchers or
/// a regex to compile. `hold` is kept until the parse ends, also when the caller stopped
/// waiting. The parser cannot be interrupted; its time is bounded by the input bounds instead
/// (at most the depth limit and the 10 MiB form limit; worst cases measured in
/// `examples/parse_worst.rs`, figures in BENCHMARKS.md).
pub async fn parse_async(query: &str, hold: Option<Hold>) -> Result<Arc<ParsedExpr>, QueryError> {
    if query.len() <= INLINE_QUERY_BYTES {
        // A dashboard's query: parsed here, as the hand-off to a blocking thread and back
        // costs more than the parse (the deep ones still go to a query thread in `parse`).
        return parse(query).map(Arc::new);
    }
    let query = query.to_owned();
    tokio::task::spawn_blocking(move || {
        let _hold = hold;
        parse(&query).map(Arc::new)
    })
    .await
    .unwrap_or_else(|e| {
        Err(QueryError::Execution(format!(
            "unexpected error: parsing stopped: {e}"
        )))
    })
}

/// Queries up to this long are parsed on the caller's thread: at most a few dozen matchers,
/// whose regexes compile in well under a millisecond.
const INLINE_QUERY_BYTES: usize = 1024;

/// Most selector matchers, and bytes of regex, of an expression planned on the caller's
/// thread (larger ones are planned on a blocking thread).
const INLINE_PLAN_MATCHERS: usize = 32;
const INLINE_PLAN_REGEX_BYTES: usize = 1024;
const INLINE_PLAN_NODES: usize = 256;

/// Whether planning `e` is cheap enough for an async worker: few matchers and little regex to
/// compile. Stops counting as soon as either bound is crossed, so it costs little on any tree.
fn cheap_to_plan(e: &Expr) -> bool {
    let (mut nodes, mut matchers, mut regex_bytes) = (0usize, 0usize, 0usize);
    !depth::any_node(e, |n| {
        nodes += 1;
        if nodes > INLINE_PLAN_NODES {
            return true;
        }
        let vs = match n {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return false,
        };
        matchers += vs.matchers.matchers.len() + vs.matchers.or_matchers.len() + 1;
        regex_bytes += vs
            .matchers
            .matchers
            .iter()
            .filter(|m| matches!(m.op, MatchOp::Re(_) | MatchOp::NotRe(_)))
            .map(|m| m.value.len())
            .sum::<usize>();
        matchers > INLINE_PLAN_MATCHERS || regex_bytes > INLINE_PLAN_REGEX_BYTES
    })
}

/// Parses on the current thread: its stack must fit the query's depth.
fn parse_here(query: &str) -> Result<ParsedExpr, QueryError> {
    REGISTER.call_once(|| {
        // promql-parser 0.11 knows only Prometheus 3's name for it; 2.42 has holt_winters.
        let hw = Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        );
        if let Err(e) = promql_parser::parser::register_extra_functions(vec![hw]) {
            tracing::warn!(error = %e, "could not register holt_winters");
        }
    });
    // promql-parser panics on a few inputs (a range or step too long for std's Duration, found
    // by fuzzing); Prometheus answers those with a parse error, and so does Strata.
    let parsed =
        std::panic::catch_unwind(|| promql_parser::parser::parse(query)).map_err(|_| {
            QueryError::Parse(crate::parse_error::explain(query).map_or_else(
                || "parse error: a number or duration in the query is out of range".to_string(),
                |e| e.render(query),
            ))
        })?;
    let expr = parsed
        .map(ParsedExpr::new)
        .map_err(|e| QueryError::Parse(crate::parse_error::message_for_rejected(query, &e)))?;
    // promql-parser also accepts some Prometheus 3 syntax (bare-number durations, quoted label
    // names, newer functions) that 2.42 rejects; answer those as 2.42 would.
    if let Some(err) = crate::parse_error::explain(query) {
        return Err(QueryError::Parse(err.render(query)));
    }
    Ok(expr)
}

/// Something kept alive until every thread of a query has ended (e.g. a concurrency permit).
pub type Hold = Arc<dyn std::any::Any + Send + Sync>;

/// What ends a query early: its deadline, and a flag the caller sets to cancel it.
#[derive(Clone)]
pub struct QueryControl {
    /// When the query times out.
    pub deadline: Instant,
    /// Set to cancel the query (e.g. when the HTTP client went away).
    pub cancel: CancelFlag,
    /// Kept until the query's threads have ended, even if the caller stopped waiting earlier,
    /// so that a limit on running queries also counts queries whose caller gave up.
    pub hold: Option<Hold>,
}

impl std::fmt::Debug for QueryControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryControl")
            .field("deadline", &self.deadline)
            .field("cancel", &self.cancel)
            .finish_non_exhaustive()
    }
}

/// Sets the cancel flag when dropped before [`CancelOnDrop::disarm`]: a query whose caller
/// went away (its future dropped mid-way) stops its threads.
struct CancelOnDrop(Option<CancelFlag>);

impl CancelOnDrop {
    fn new(flag: &CancelFlag) -> Self {
        CancelOnDrop(Some(flag.clone()))
    }

    /// The step finished: leave the flag alone.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

impl Engine {
    /// An engine with `options`.
    pub fn new(options: EngineOptions) -> Self {
        Engine { options }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// A control for a query starting now: the engine's timeout, not cancelled.
    pub fn control(&self) -> QueryControl {
        QueryControl {
            deadline: Instant::now() + self.options.timeout,
            cancel: Arc::new(AtomicBool::new(false)),
            hold: None,
        }
    }

    /// Evaluates `query` at instant `time_ms`.
    pub async fn instant_query(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.instant_query_with(queryable, query, time_ms, self.control())
            .await
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    pub async fn range_query(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        self.range_query_with(queryable, query, start_ms, end_ms, step_ms, self.control())
            .await
    }

    /// As [`Engine::instant_query`], ended early by `ctl`.
    pub async fn instant_query_with(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        time_ms: i64,
        ctl: QueryControl,
    ) -> Result<QueryResult, QueryError> {
        let expr = self.parse_with(query, &ctl).await?;
        self.instant_query_expr(queryable, expr, time_ms, ctl).await
    }

    /// As [`Engine::range_query`], ended early by `ctl`.
    pub async fn range_query_with(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        ctl: QueryControl,
    ) -> Result<QueryResult, QueryError> {
        check_range(start_ms, end_ms, step_ms)?;
        let expr = self.parse_with(query, &ctl).await?;
        self.range_query_expr(queryable, expr, start_ms, end_ms, step_ms, ctl)
            .await
    }

    async fn parse_with(
        &self,
        query: &str,
        ctl: &QueryControl,
    ) -> Result<Arc<ParsedExpr>, QueryError> {
        let guard = CancelOnDrop::new(&ctl.cancel);
        let deadline = tokio::time::Instant::from_std(ctl.deadline);
        let r = tokio::time::timeout_at(deadline, parse_async(query, ctl.hold.clone())).await;
        guard.disarm();
        r.map_err(|_| QueryError::Timeout("expression evaluation"))?
    }

    /// Evaluates a parsed expression at `time_ms`, ended early by `ctl`.
    pub async fn instant_query_expr(
        &self,
        queryable: &dyn Queryable,
        expr: Arc<ParsedExpr>,
        time_ms: i64,
        ctl: QueryControl,
    ) -> Result<QueryResult, QueryError> {
        let grid = Grid {
            start: time_ms,
            step: 1,
            n: 1,
        };
        let val = self.run(queryable, expr, grid, ctl).await?;
        let value = match val {
            Val::Scalar(v) => Value::Scalar {
                t: time_ms,
                v: v.first().copied().unwrap_or(f64::NAN),
            },
            Val::Str(s) => Value::String { t: time_ms, s },
            Val::Vector(vs) => Value::Vector(
                vs.into_iter()
                    .filter_map(|s| {
                        s.vals.first().copied().flatten().map(|v| Sample {
                            metric: Arc::unwrap_or_clone(s.labels),
                            t: time_ms,
                            v,
                        })
                    })
                    .collect(),
            ),
            Val::Sparse(vs) => Value::Vector(
                vs.into_iter()
                    .filter_map(|s| {
                        let v = s.points.first().filter(|p| p.0 == 0)?.1;
                        Some(Sample {
                            metric: Arc::unwrap_or_clone(s.labels),
                            t: time_ms,
                            v,
                        })
                    })
                    .collect(),
            ),
            Val::Matrix(m) => Value::Matrix(
                m.into_iter()
                    .map(|(l, points)| Series {
                        metric: Arc::unwrap_or_clone(l),
                        points,
                    })
                    .collect(),
            ),
        };
        Ok(QueryResult {
            value,
            warnings: Vec::new(),
        })
    }

    /// Evaluates a parsed expression as a range query, ended early by `ctl`.
    pub async fn range_query_expr(
        &self,
        queryable: &dyn Queryable,
        expr: Arc<ParsedExpr>,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        ctl: QueryControl,
    ) -> Result<QueryResult, QueryError> {
        check_range(start_ms, end_ms, step_ms)?;
        match depth::value_type(&expr) {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(QueryError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                type_name(other)
            )))
            }
        }
        let grid = Grid {
            start: start_ms,
            step: step_ms,
            n: ((end_ms - start_ms) / step_ms) as usize + 1,
        };
        let val = self.run(queryable, expr, grid, ctl).await?;
        let mut series: Vec<Series> = match val {
            Val::Scalar(v) => vec![Series {
                metric: Labels::empty(),
                points: v
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (grid.t(i), v))
                    .collect(),
            }],
            Val::Vector(vs) => vs
                .into_iter()
                .map(|s| Series {
                    metric: Arc::unwrap_or_clone(s.labels),
                    points: s
                        .vals
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (grid.t(i), v)))
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
            Val::Sparse(vs) => vs
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .map(|s| Series {
                    metric: Arc::unwrap_or_clone(s.labels),
                    points: s.points.iter().map(|&(i, v)| (grid.t(i), v)).collect(),
                })
                .collect(),
            other => {
                return Err(QueryError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                crate::eval::val_type(&other)
            )))
            }
        };
        series.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(QueryResult {
            value: Value::Matrix(series),
            warnings: Vec::new(),
        })
    }

    /// Loads the data `expr` needs (on the runtime), then evaluates it on a query thread, so
    /// that the runtime stays free and the stack fits any depth. Dropping the returned future
    /// cancels the evaluation.
    async fn run(
        &self,
        queryable: &dyn Queryable,
        expr: Arc<ParsedExpr>,
        grid: Grid,
        ctl: QueryControl,
    ) -> Result<Val, QueryError> {
        let guard = CancelOnDrop::new(&ctl.cancel);
        let deadline = tokio::time::Instant::from_std(ctl.deadline);
        let end = grid.end();
        let (lookback, max_samples) = (self.options.lookback_delta_ms, self.options.max_samples);
        let data = tokio::time::timeout_at(deadline, async {
            let plan = if cheap_to_plan(&expr) {
                load::plan(&expr, grid.start, end, lookback)
            } else {
                // Off the runtime: a query may hold thousands of regexes to compile.
                let expr = expr.clone();
                tokio::task::spawn_blocking(move || load::plan(&expr, grid.start, end, lookback))
                    .await
                    .unwrap_or_else(|e| {
                        Err(QueryError::Execution(format!(
                            "unexpected error: planning stopped: {e}"
                        )))
                    })
            }?;
            load::load(queryable, plan, max_samples).await
        })
        .await
        .map_err(|_| QueryError::Timeout("query queue"))??;
        let options = self.options.clone();
        if runs_inline(&expr, &data, &grid) {
            // Small and shallow: evaluated here, as starting a thread costs more than the
            // evaluation, and on a busy machine a new thread waits for a CPU slot of its own.
            let ev = Evaluator {
                data: &data,
                lookback: options.lookback_delta_ms,
                query_start: grid.start,
                query_end: end,
                max_samples: options.max_samples,
                deadline: ctl.deadline,
                cancel: Some(&ctl.cancel),
                held: crate::eval::held::Held::new(options.max_samples),
            };
            let r = ev.eval(&expr, &grid);
            guard.disarm();
            return r;
        }
        let QueryControl {
            deadline: eval_deadline,
            cancel,
            hold,
        } = ctl;
        let eval = stack::run(move || {
            let _hold = hold;
            let ev = Evaluator {
                data: &data,
                lookback: options.lookback_delta_ms,
                query_start: grid.start,
                query_end: end,
                max_samples: options.max_samples,
                deadline: eval_deadline,
                cancel: Some(&cancel),
                held: crate::eval::held::Held::new(options.max_samples),
            };
            ev.eval_result(&expr, &grid)
        });
        let r = tokio::time::timeout_at(deadline, eval).await;
        // On a timeout the guard stays armed: the thread stops at its next check either way.
        if r.is_ok() {
            guard.disarm();
        }
        r.map_err(|_| QueryError::Timeout("expression evaluation"))?
    }
}

/// Deepest expression evaluated on the caller's thread (an async runtime's, with a stack of
/// a few MiB: debug builds need up to about 16 KiB per level).
const INLINE_MAX_DEPTH: usize = 32;

/// Most work (see [`load::Loaded::work`]) evaluated on the caller's thread: well under a
/// millisecond, and below the size at which evaluation splits across cores. In practice
/// instant queries over a few thousand samples.
const INLINE_MAX_WORK: usize = 64 * 1024;

/// Whether `expr` over `data` is small enough to evaluate without a query thread: shallow,
/// no subquery (whose inner steps multiply the work), and little data.
fn runs_inline(expr: &ParsedExpr, data: &load::Loaded, grid: &Grid) -> bool {
    depth::depth(expr) <= INLINE_MAX_DEPTH
        && !depth::any_node(expr, |e| {
            matches!(e, promql_parser::parser::Expr::Subquery(_))
        })
        && data.work(grid.n) <= INLINE_MAX_WORK
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// Prometheus' checks of a range query's parameters, with its error texts.
pub fn check_range(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<(), QueryError> {
    if end_ms < start_ms {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(QueryError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod hostile_input_tests {
    /// Found by the `params` fuzz target: a range of 110 decimal digits overflowed a
    /// `Duration` inside the parser and panicked instead of answering a parse error.
    #[test]
    fn a_range_too_long_for_a_duration_is_a_parse_error_not_a_panic() {
        let q = format!("ch[{}]", "4".repeat(110));
        assert!(super::parse(&q).is_err());
        let q = format!("ch[{}s]", "4".repeat(110));
        assert!(super::parse(&q).is_err());
        let q = format!("ch[5m:{}s]", "4".repeat(30));
        assert!(super::parse(&q).is_err());
    }
}

#[cfg(test)]
mod inline_tests {
    use super::*;
    use crate::memory::MemoryQueryable;

    fn expr(q: &str) -> ParsedExpr {
        parse(q).expect(q)
    }

    fn grid(n: usize) -> Grid {
        Grid {
            start: 0,
            step: 60_000,
            n,
        }
    }

    #[test]
    fn only_queries_with_few_matchers_and_little_regex_are_planned_inline() {
        assert!(cheap_to_plan(&expr(
            r#"sum by (le) (rate(http_request_duration_seconds_bucket{job=~"api|web"}[5m]))"#
        )));
        let many = (0..40)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .join(" + ");
        assert!(!cheap_to_plan(&expr(&many)), "40 selectors");
        let long_regex = format!(r#"up{{job=~"{}"}}"#, "a|".repeat(600) + "b");
        assert!(!cheap_to_plan(&expr(&long_regex)), "1.2 KB of regex");
        let nodes = (0..300).map(|_| "1").collect::<Vec<_>>().join(" + ");
        assert!(!cheap_to_plan(&expr(&nodes)), "300 nodes");
    }

    #[tokio::test]
    async fn short_and_long_queries_parse_alike_and_deep_short_ones_are_refused_or_parsed() {
        let short = "sum(rate(up[5m]))";
        let long = format!("{short}{}", " ".repeat(2 * INLINE_QUERY_BYTES));
        let a = parse_async(short, None).await.expect("short");
        let b = parse_async(&long, None).await.expect("long");
        assert_eq!(format!("{:?}", *a), format!("{:?}", *b));
        let bad = parse_async("sum(", None).await;
        assert!(matches!(bad, Err(QueryError::Parse(_))), "{bad:?}");
        // Short but deep: parsed on a query thread inside `parse`, not on this one's stack.
        let deep = format!("{}1{}", "(".repeat(400), ")".repeat(400));
        assert!(deep.len() <= INLINE_QUERY_BYTES);
        assert!(parse_async(&deep, None).await.is_ok());
    }

    #[test]
    fn only_small_shallow_queries_without_subqueries_run_inline() {
        let none = load::Loaded::default();
        assert!(runs_inline(&expr("sum(rate(up[5m]))"), &none, &grid(1)));
        assert!(!runs_inline(
            &expr("max_over_time(up[1h:1m])"),
            &none,
            &grid(1)
        ));
        let deep = format!("{}up{}", "abs(".repeat(40), ")".repeat(40));
        assert!(!runs_inline(&expr(&deep), &none, &grid(1)));
    }

    #[tokio::test]
    async fn work_bounds_what_runs_inline_and_both_paths_answer_alike() {
        // 100 series of 100 samples: 10,100 units per step once all are loaded.
        let mut q = MemoryQueryable::new();
        for i in 0..100i64 {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]);
            let samples: Vec<(i64, f64)> = (0..100).map(|k| (k * 15_000, (k * i) as f64)).collect();
            q.append(labels, &samples);
        }
        let plan = load::plan(&expr("m"), 0, 1_485_000, 300_000).expect("plan");
        let data = load::load(&q, plan, 1 << 30).await.expect("load");
        assert!(runs_inline(&expr("m"), &data, &grid(1)));
        assert!(!runs_inline(&expr("m"), &data, &grid(10)));
        // Instant queries (inline) answer as the points of a range query over all the data
        // (on a query thread).
        let e = Engine::default();
        let query = "sum(rate(m[5m]))";
        let range = e
            .range_query(&q, query, 0, 1_485_000, 15_000)
            .await
            .expect("range");
        let Value::Matrix(m) = range.value else {
            panic!("range value {:?}", range.value);
        };
        assert_eq!(m.len(), 1);
        let mut compared = 0;
        for &(t, v) in m[0].points.iter().step_by(7) {
            let instant = e.instant_query(&q, query, t).await.expect("instant");
            let Value::Vector(got) = instant.value else {
                panic!("instant value {:?}", instant.value);
            };
            assert_eq!(got.len(), 1, "at {t}");
            assert_eq!(got[0].v.to_bits(), v.to_bits(), "at {t}");
            compared += 1;
        }
        assert!(compared > 10, "{compared}");
        assert!(m[0].points.iter().any(|p| p.1 > 0.0));
    }
}
