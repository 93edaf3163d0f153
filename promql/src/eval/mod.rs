//! The evaluator: every node is evaluated over a whole grid of steps at once (one step for
//! instant queries), over series loaded before evaluation starts.
//!
//! A node's vector value is a list of series, each with an optional value per step, so that
//! label work (signatures, grouping keys, name dropping) happens once per series rather than
//! once per step.

// Values are indexed by step across several parallel vectors; index loops read best here.
#![allow(clippy::needless_range_loop)]

mod aggregate;
mod binary;
mod call;
pub(crate) mod held;
pub(crate) mod load;
mod parallel;
mod range_call;
mod selector;

use crate::error::QueryError;
use foldhash::{HashMap, HashMapExt};
use held::Held;
use load::Loaded;
use promql_parser::parser::{AtModifier, Expr, Offset};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use storage::labels::{Labels, METRIC_NAME};

/// Shared label set.
pub(crate) type Lbl = Arc<Labels>;

/// Evaluation instants: `start + i * step` for `i < n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    /// The timestamp of step `i`.
    pub fn t(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
    /// The last timestamp.
    pub fn end(&self) -> i64 {
        self.t(self.n.saturating_sub(1))
    }
}

/// One series of a vector value over the grid.
#[derive(Debug, Clone)]
pub(crate) struct VSeries {
    pub labels: Lbl,
    pub vals: Vec<Option<f64>>,
}

/// One series of a sparse vector value: only the steps where it has a value, in step order.
#[derive(Debug, Clone)]
pub(crate) struct SSeries {
    pub labels: Lbl,
    pub points: Vec<(usize, f64)>,
}

/// A node's value over the grid.
#[derive(Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<VSeries>),
    /// An instant vector whose series have values at few steps each (`count_values` makes a
    /// series per distinct value): only the points present are held and counted, as in
    /// Prometheus. Only a query's result stays sparse; [`Evaluator::eval`] hands every other
    /// consumer the dense form.
    Sparse(Vec<SSeries>),
    /// Range vector at a single instant (only as an instant query's result).
    Matrix(Vec<(Lbl, Vec<(i64, f64)>)>),
}

/// Work units between two interruption checks in long loops (see [`Evaluator::pace`]).
pub(crate) const CHECK_EVERY: usize = 16 * 1024;

const SAME_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// Collects output series by label set, refusing two values for one label set at one step.
/// Each new series' cells are reserved from the query's allowance before they are allocated.
pub(crate) struct OutBuilder<'h> {
    n: usize,
    index: HashMap<Lbl, usize>,
    series: Vec<VSeries>,
    held: &'h Held,
}

impl<'h> OutBuilder<'h> {
    pub fn new(n: usize, held: &'h Held) -> Self {
        OutBuilder {
            n,
            index: HashMap::new(),
            series: Vec::new(),
            held,
        }
    }

    /// The slot for `labels`, created on first use (insertion order is kept); fails when a
    /// new series would take the query over its samples limit.
    pub fn slot(&mut self, labels: Lbl) -> Result<usize, QueryError> {
        if let Some(&i) = self.index.get(&labels) {
            return Ok(i);
        }
        self.held.reserve(self.n)?;
        let i = self.series.len();
        self.series.push(VSeries {
            labels: labels.clone(),
            vals: vec![None; self.n],
        });
        self.index.insert(labels, i);
        Ok(i)
    }

    /// The slot remembered in `cache`, or a new one for `labels()` remembered there.
    pub fn slot_in(
        &mut self,
        cache: &mut Option<usize>,
        labels: impl FnOnce() -> Lbl,
    ) -> Result<usize, QueryError> {
        if let Some(s) = *cache {
            return Ok(s);
        }
        let s = self.slot(labels())?;
        *cache = Some(s);
        Ok(s)
    }

    /// Sets the value of `slot` at `step`; a second value is Prometheus' duplicate error.
    pub fn put(&mut self, slot: usize, step: usize, v: f64) -> Result<(), QueryError> {
        let cell = &mut self.series[slot].vals[step];
        if cell.is_some() {
            return Err(QueryError::Execution(SAME_LABELSET.into()));
        }
        *cell = Some(v);
        Ok(())
    }

    /// Puts a whole series of values (one per step) for `labels`; as [`OutBuilder::put`] per
    /// value, but a new label set takes the vector without copying it (its cells were reserved
    /// by whoever allocated it).
    pub fn put_series(&mut self, labels: Lbl, vals: Vec<Option<f64>>) -> Result<(), QueryError> {
        if vals.len() == self.n && !self.index.contains_key(&labels) {
            self.index.insert(labels.clone(), self.series.len());
            self.series.push(VSeries { labels, vals });
            return Ok(());
        }
        let slot = self.slot(labels)?;
        for (i, v) in vals.into_iter().enumerate() {
            if let Some(v) = v {
                self.put(slot, i, v)?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<VSeries> {
        self.series
            .into_iter()
            .filter(|s| s.vals.iter().any(Option::is_some))
            .collect()
    }
}

/// The labels without `__name__`.
pub(crate) fn drop_name(l: &Lbl) -> Lbl {
    if l.get(METRIC_NAME).is_none() {
        return l.clone();
    }
    Arc::new(Labels::from_sorted(
        l.iter()
            .filter(|x| x.name != METRIC_NAME)
            .cloned()
            .collect(),
    ))
}

/// Strips parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Milliseconds of an offset, negative for `offset -5m`.
pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Milliseconds since the epoch of a `SystemTime`, negative before it.
pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The state of one query's evaluation.
pub(crate) struct Evaluator<'a> {
    pub data: &'a Loaded,
    pub lookback: i64,
    /// The query's start and end, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    pub max_samples: usize,
    pub deadline: Instant,
    pub cancel: Option<&'a AtomicBool>,
    /// The samples held at once, counted like Prometheus' `currentSamples`.
    pub held: Held,
}

impl Evaluator<'_> {
    /// Resolves an `@` modifier to milliseconds.
    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    /// Fails when the query ran out of time or was cancelled.
    pub fn check_interrupt(&self) -> Result<(), QueryError> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(QueryError::Canceled("expression evaluation"));
        }
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    /// Counts `units` of work (about one per sample or step touched) since the last check in
    /// `since`, and checks for a deadline or cancellation once enough has accumulated, so that
    /// long loops stop within milliseconds without paying for a clock read per sample.
    pub fn pace(&self, since: &mut usize, units: usize) -> Result<(), QueryError> {
        *since += units;
        if *since < CHECK_EVERY {
            return Ok(());
        }
        *since = 0;
        self.check_interrupt()
    }

    /// Fails when `count` samples would exceed the limit.
    pub fn check_samples(&self, count: usize) -> Result<(), QueryError> {
        if count > self.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }

    fn check_vector(&self, v: &[VSeries]) -> Result<(), QueryError> {
        // The most samples held at one step, as Prometheus counts per step.
        let n = v.first().map_or(0, |s| s.vals.len());
        if v.len() > self.max_samples {
            for i in 0..n {
                let c = v.iter().filter(|s| s.vals[i].is_some()).count();
                self.check_samples(c)?;
            }
        }
        Ok(())
    }

    /// An output builder over `g` charging this query's allowance.
    pub fn out(&self, g: &Grid) -> OutBuilder<'_> {
        OutBuilder::new(g.n, &self.held)
    }

    /// Evaluates `e` at every step of `g`; afterwards the query holds what it held before
    /// plus the result (what `e`'s arguments held is freed).
    pub fn eval(&self, e: &Expr, g: &Grid) -> Result<Val, QueryError> {
        let before = self.held.level();
        let v = match self.eval_node(e, g)? {
            Val::Sparse(s) => Val::Vector(self.densify(s, g.n)?),
            v => v,
        };
        self.held.settle(before, cells(&v))?;
        Ok(v)
    }

    /// Evaluates the query's expression `e`: as [`Evaluator::eval`], but a sparse result stays
    /// sparse, since the answer lists only the points present anyway.
    pub fn eval_result(&self, e: &Expr, g: &Grid) -> Result<Val, QueryError> {
        let before = self.held.level();
        let v = self.eval_node(unparen(e), g)?;
        self.held.settle(before, cells(&v))?;
        Ok(v)
    }

    /// The dense form of a sparse vector, its cells reserved before they are allocated.
    fn densify(&self, sparse: Vec<SSeries>, n: usize) -> Result<Vec<VSeries>, QueryError> {
        let dense = sparse.len().checked_mul(n).ok_or_else(held::too_many)?;
        self.held.reserve(dense)?;
        let mut work = 0;
        let mut out = Vec::with_capacity(sparse.len());
        for s in sparse {
            self.pace(&mut work, n)?;
            let mut vals = vec![None; n];
            for (i, v) in s.points {
                vals[i] = Some(v);
            }
            out.push(VSeries {
                labels: s.labels,
                vals,
            });
        }
        Ok(out)
    }

    fn eval_node(&self, e: &Expr, g: &Grid) -> Result<Val, QueryError> {
        self.check_interrupt()?;
        let v = match e {
            Expr::NumberLiteral(n) => {
                self.held.reserve(g.n)?;
                Val::Scalar(vec![n.val; g.n])
            }
            Expr::StringLiteral(s) => Val::Str(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, g)?,
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Val::Scalar(v) => Val::Scalar(v.into_iter().map(|x| -x).collect()),
                Val::Vector(vs) => {
                    let mut out = self.out(g);
                    let mut work = 0;
                    for s in vs {
                        self.pace(&mut work, g.n)?;
                        let slot = out.slot(drop_name(&s.labels))?;
                        for (i, v) in s.vals.iter().enumerate() {
                            if let Some(v) = v {
                                out.put(slot, i, -v)?;
                            }
                        }
                    }
                    Val::Vector(out.finish())
                }
                other => {
                    return Err(QueryError::Execution(format!(
                    "unary expression only allowed on expressions of type scalar or vector, got {}",
                    val_type(&other)
                )))
                }
            },
            Expr::VectorSelector(vs) => Val::Vector(self.vector_selector(vs, g, false)?),
            Expr::MatrixSelector(ms) => {
                let arg = self.matrix_selector(ms)?;
                Val::Matrix(arg.instant_windows(g.t(0)))
            }
            Expr::Subquery(sq) => {
                let arg = self.subquery(sq, g)?;
                Val::Matrix(arg.instant_windows(g.t(0)))
            }
            Expr::Binary(b) => self.eval_binary(b, g)?,
            Expr::Aggregate(a) => self.eval_aggregate(a, g)?,
            Expr::Call(c) => self.eval_call(c, g)?,
            Expr::Extension(_) => {
                return Err(QueryError::Execution(
                    "extension expressions are not supported".into(),
                ))
            }
        };
        if let Val::Vector(vs) = &v {
            self.check_vector(vs)?;
        }
        Ok(v)
    }

    /// Evaluates `e`, which must be a scalar.
    pub fn eval_scalar(&self, e: &Expr, g: &Grid) -> Result<Vec<f64>, QueryError> {
        match self.eval(e, g)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::Execution(format!(
                "expected scalar, got {}",
                val_type(&other)
            ))),
        }
    }

    /// Evaluates `e`, which must be an instant vector.
    pub fn eval_vector(&self, e: &Expr, g: &Grid) -> Result<Vec<VSeries>, QueryError> {
        match self.eval(e, g)? {
            Val::Vector(v) => Ok(v),
            other => Err(QueryError::Execution(format!(
                "expected instant vector, got {}",
                val_type(&other)
            ))),
        }
    }
}

/// The cells a value holds: one per step of each series of a dense vector (present or not),
/// one per point of a sparse or range vector.
pub(crate) fn cells(v: &Val) -> usize {
    match v {
        Val::Scalar(x) => x.len(),
        Val::Str(_) => 0,
        Val::Vector(vs) => vs.iter().map(|s| s.vals.len()).sum(),
        Val::Sparse(vs) => vs.iter().map(|s| s.points.len()).sum(),
        Val::Matrix(m) => m.iter().map(|(_, p)| p.len()).sum(),
    }
}

/// Prometheus' name of a value's type in messages.
pub(crate) fn val_type(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) | Val::Sparse(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    }
}
