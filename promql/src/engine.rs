//! The query engine: parses, loads the data every selector needs, evaluates.

use crate::error::QueryError;
use crate::eval::{load, Evaluator, Grid, Val};
use crate::queryable::Queryable;
use crate::value::{Sample, Series, Value};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Expr, Function};
use std::sync::atomic::AtomicBool;
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

/// Parses `query` as Prometheus 2.42 would, `holt_winters` included.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
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
    let expr = promql_parser::parser::parse(query)
        .map_err(|e| QueryError::Parse(crate::parse_error::message_for_rejected(query, &e)))?;
    // promql-parser also accepts some Prometheus 3 syntax (bare-number durations, quoted label
    // names, newer functions) that 2.42 rejects; answer those as 2.42 would.
    if let Some(err) = crate::parse_error::explain(query) {
        return Err(QueryError::Parse(err.render(query)));
    }
    Ok(expr)
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

    /// Evaluates `query` at instant `time_ms`.
    pub async fn instant_query(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        let expr = parse(query)?;
        self.instant_query_expr(queryable, &expr, time_ms, None)
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
        check_range(start_ms, end_ms, step_ms)?;
        let expr = parse(query)?;
        self.range_query_expr(queryable, &expr, start_ms, end_ms, step_ms, None)
            .await
    }

    /// Evaluates a parsed expression at `time_ms`; `cancel` aborts it when set.
    pub async fn instant_query_expr(
        &self,
        queryable: &dyn Queryable,
        expr: &Expr,
        time_ms: i64,
        cancel: Option<CancelFlag>,
    ) -> Result<QueryResult, QueryError> {
        let grid = Grid {
            start: time_ms,
            step: 1,
            n: 1,
        };
        let val = self.run(queryable, expr, grid, cancel).await?;
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

    /// Evaluates a parsed expression as a range query; `cancel` aborts it when set.
    pub async fn range_query_expr(
        &self,
        queryable: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<CancelFlag>,
    ) -> Result<QueryResult, QueryError> {
        check_range(start_ms, end_ms, step_ms)?;
        match expr.value_type() {
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
        let val = self.run(queryable, expr, grid, cancel).await?;
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

    async fn run(
        &self,
        queryable: &dyn Queryable,
        expr: &Expr,
        grid: Grid,
        cancel: Option<CancelFlag>,
    ) -> Result<Val, QueryError> {
        let deadline = Instant::now() + self.options.timeout;
        let end = grid.end();
        let data = tokio::time::timeout(
            self.options.timeout,
            load::load(
                queryable,
                expr,
                grid.start,
                end,
                self.options.lookback_delta_ms,
                self.options.max_samples,
            ),
        )
        .await
        .map_err(|_| QueryError::Timeout("query queue"))??;
        let ev = Evaluator {
            data: &data,
            lookback: self.options.lookback_delta_ms,
            query_start: grid.start,
            query_end: end,
            max_samples: self.options.max_samples,
            deadline,
            cancel: cancel.as_deref(),
            held: crate::eval::held::Held::new(self.options.max_samples),
        };
        ev.eval(expr, &grid)
    }
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
