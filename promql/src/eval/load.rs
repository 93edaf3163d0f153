//! Before evaluation: every selector's matchers and the time range it can touch, loaded once.

use super::selector::Points;
use super::{offset_ms, system_time_ms, Lbl};
use crate::error::QueryError;
use crate::queryable::{Queryable, SampleBudget, SelectHints};
use promql_parser::label::MatchOp;
use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use std::collections::HashMap;
use std::sync::Arc;
use storage::labels::METRIC_NAME;
use storage::matcher::Matcher;

/// A loaded series: all samples (stale markers included, for instant selectors) and the
/// samples without stale markers (for range selectors); both time-ordered.
#[derive(Debug)]
pub(crate) struct LoadedSeries {
    pub labels: Lbl,
    pub samples: Points,
    pub clean: Points,
}

/// Loaded series per selector node (keyed by the node's address).
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    map: HashMap<usize, Vec<LoadedSeries>>,
}

fn key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

impl Loaded {
    /// An upper bound of evaluation work over `steps` steps: every step may look at every
    /// loaded sample of every series (a range function's window can cover them all).
    pub fn work(&self, steps: usize) -> usize {
        self.map
            .values()
            .flatten()
            .map(|s| (s.samples.len() + 1).saturating_mul(steps))
            .fold(0usize, usize::saturating_add)
    }

    /// The series loaded for `vs` (none if it was never planned).
    pub fn get(&self, vs: &VectorSelector) -> &[LoadedSeries] {
        self.map.get(&key(vs)).map_or(&[], Vec::as_slice)
    }
}

/// The stale marker Prometheus writes when a series ends.
pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == 0x7ff0_0000_0000_0002
}

struct Need<'a> {
    vs: &'a VectorSelector,
    mint: i64,
    maxt: i64,
    counter: bool,
    func: Option<&'static str>,
}

/// Functions that read their argument as a counter (a drop is a reset).
const COUNTER_FUNCTIONS: [&str; 4] = ["rate", "increase", "irate", "resets"];

struct Planner<'a> {
    lookback: i64,
    query_start: i64,
    query_end: i64,
    needs: Vec<Need<'a>>,
}

impl<'a> Planner<'a> {
    fn at(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    fn selector(&mut self, vs: &'a VectorSelector, lo: i64, hi: i64, before: i64, ctx: Ctx) {
        let (lo, hi) = self.at(&vs.at).map_or((lo, hi), |a| (a, a));
        let off = offset_ms(&vs.offset);
        // Saturating: ranges and offsets near the ends of i64 select from the start of time
        // instead of overflowing; the evaluator refuses the ones it cannot step through.
        self.needs.push(Need {
            vs,
            mint: lo.saturating_sub(off).saturating_sub(before),
            maxt: hi.saturating_sub(off),
            counter: ctx.counter,
            func: ctx.func,
        });
    }

    /// Plans every selector under `root`, with an explicit stack: trees may be far deeper
    /// than the async runtime's stack allows recursion for; each selector gets the [`Ctx`] of
    /// its ancestors.
    fn walk(&mut self, root: &'a Expr, lo: i64, hi: i64) {
        let top = Ctx {
            counter: false,
            func: None,
        };
        let mut todo = vec![(root, lo, hi, top)];
        while let Some((e, lo, hi, ctx)) = todo.pop() {
            match e {
                Expr::VectorSelector(vs) => self.selector(vs, lo, hi, self.lookback, ctx),
                Expr::MatrixSelector(ms) => {
                    self.selector(&ms.vs, lo, hi, ms.range.as_millis() as i64, ctx)
                }
                Expr::Subquery(sq) => {
                    let (lo, hi) = self.at(&sq.at).map_or((lo, hi), |a| (a, a));
                    let off = offset_ms(&sq.offset);
                    let range = sq.range.as_millis() as i64;
                    todo.push((
                        &sq.expr,
                        lo.saturating_sub(off).saturating_sub(range),
                        hi.saturating_sub(off),
                        ctx,
                    ));
                }
                Expr::Call(c) => {
                    let ctx = Ctx {
                        counter: ctx.counter || COUNTER_FUNCTIONS.contains(&c.func.name),
                        func: Some(c.func.name),
                    };
                    todo.extend(c.args.args.iter().rev().map(|a| (&**a, lo, hi, ctx)));
                }
                // Children are pushed in reverse so that selectors are planned in the order
                // a recursive walk would give (the order errors are reported in).
                _ => {
                    let ctx = match e {
                        Expr::Aggregate(a) => Ctx {
                            func: aggregation_name(&a.op.to_string()),
                            ..ctx
                        },
                        Expr::Binary(_) => Ctx { func: None, ..ctx },
                        _ => ctx,
                    };
                    todo.extend(
                        crate::depth::children(e)
                            .into_iter()
                            .rev()
                            .map(|c| (c, lo, hi, ctx)),
                    )
                }
            }
        }
    }
}

/// What the walk knows of a node's ancestors.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    /// Beneath a counter function (rate, increase, irate, resets), for counter-aware
    /// deduplication.
    counter: bool,
    /// The nearest function or aggregation above, no binary operator in between.
    func: Option<&'static str>,
}

/// The aggregation operators' names, as Prometheus spells them in `hints.Func`.
const AGGREGATIONS: [&str; 13] = [
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "count_values",
    "quantile",
    "limitk",
];

fn aggregation_name(op: &str) -> Option<&'static str> {
    AGGREGATIONS.iter().copied().find(|a| *a == op)
}

/// Storage matchers for a selector, the metric name included.
pub(crate) fn matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::Parse(
            "parse error: `or` inside label matchers is not supported by Prometheus 2.42".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let name = m.name.clone();
        let value = m.value.clone();
        let sm = match &m.op {
            MatchOp::Equal => Ok(Matcher::equal(name, value)),
            MatchOp::NotEqual => Ok(Matcher::not_equal(name, value)),
            MatchOp::Re(_) => Matcher::regex(name, value),
            MatchOp::NotRe(_) => Matcher::not_regex(name, value),
        }
        .map_err(|e| QueryError::Parse(format!("parse error: {e}")))?;
        out.push(sm);
    }
    Ok(out)
}

/// One selector to load: its matchers (regexes compiled) and the time range it can touch.
pub(crate) struct Planned {
    key: usize,
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
    counter: bool,
    func: Option<&'static str>,
}

/// Plans the loads of every selector of `e` for an evaluation over `[start, end]`. Meant to
/// run off the async runtime: a query may hold thousands of selectors or regexes to compile.
/// The plan refers to `e`'s nodes by address, so `e` must outlive the [`Loaded`] data.
pub(crate) fn plan(
    e: &Expr,
    start: i64,
    end: i64,
    lookback: i64,
) -> Result<Vec<Planned>, QueryError> {
    let mut p = Planner {
        lookback,
        query_start: start,
        query_end: end,
        needs: Vec::new(),
    };
    p.walk(e, start, end);
    p.needs
        .iter()
        .map(|need| {
            Ok(Planned {
                key: key(need.vs),
                matchers: matchers(need.vs)?,
                mint: need.mint,
                maxt: need.maxt,
                counter: need.counter,
                func: need.func,
            })
        })
        .collect()
}

/// Loads every selector of a [`plan`].
pub(crate) async fn load(
    q: &dyn Queryable,
    plan: Vec<Planned>,
    max_samples: usize,
) -> Result<Loaded, QueryError> {
    // Selectors load concurrently (a binary expression's two sides overlap their reads);
    // results are taken in plan order, so the first error is the one a sequential load meets.
    let budget = SampleBudget::new(max_samples);
    let budget = &budget;
    let selects = plan.iter().map(|need| async move {
        let hints = SelectHints {
            counter: need.counter,
            func: need.func,
        };
        q.select_hinted(&need.matchers, need.mint, need.maxt, budget, hints)
            .await
    });
    let results = futures::future::join_all(selects).await;
    let mut loaded = Loaded::default();
    for (need, series) in plan.iter().zip(results) {
        let list = series?
            .into_iter()
            .map(|s| {
                let samples: Points = Arc::new(s.samples);
                let clean = if samples.iter().any(|p| is_stale(p.1)) {
                    Arc::new(samples.iter().copied().filter(|p| !is_stale(p.1)).collect())
                } else {
                    samples.clone()
                };
                LoadedSeries {
                    labels: Arc::new(s.labels),
                    samples,
                    clean,
                }
            })
            .collect();
        loaded.map.insert(need.key, list);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funcs(q: &str) -> Vec<(bool, Option<&'static str>)> {
        let e = promql_parser::parser::parse(q).expect("parses");
        plan(&e, 0, 1000, 300_000)
            .expect("plans")
            .iter()
            .map(|p| (p.counter, p.func))
            .collect()
    }

    #[test]
    fn selectors_get_the_nearest_function_or_aggregation_as_prometheus_hints_do() {
        assert_eq!(
            funcs("max_over_time(m[5m])"),
            [(false, Some("max_over_time"))]
        );
        assert_eq!(funcs("sum(rate(m[5m]))"), [(true, Some("rate"))]);
        assert_eq!(funcs("min((m))"), [(false, Some("min"))]);
        assert_eq!(
            funcs("count_values(\"v\", m)"),
            [(false, Some("count_values"))]
        );
        assert_eq!(funcs("m"), [(false, None)]);
        // A binary operator in between: Prometheus stops at it.
        assert_eq!(funcs("max(m * 2)"), [(false, None),]);
        assert_eq!(
            funcs("rate(m[5m]) / rate(n[5m])"),
            [(true, Some("rate")), (true, Some("rate"))]
        );
        assert_eq!(
            funcs("max_over_time(avg(m)[10m:1m])"),
            [(false, Some("avg"))]
        );
    }
}
