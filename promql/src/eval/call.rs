//! Function calls: argument wiring, per-step windows and label handling; the math lives in
//! `crate::functions`.

use super::selector::RangeArg;
use super::{drop_name, unparen, Evaluator, Grid, Lbl, OutBuilder, VSeries, Val};
use crate::error::QueryError;
use crate::functions::{histogram, labels as flabels, math, range as frange, time as ftime};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr, VectorSelector};
use std::collections::HashMap;
use std::sync::Arc;
use storage::labels::{Labels, METRIC_NAME};

const DATE_FUNCS: &[&str] = &[
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
];

fn exec(msg: impl Into<String>) -> QueryError {
    QueryError::Execution(msg.into())
}

fn arg(c: &Call, i: usize) -> Result<&Expr, QueryError> {
    c.args
        .args
        .get(i)
        .map(|a| unparen(a))
        .ok_or_else(|| exec(format!("missing argument {} of {}", i + 1, c.func.name)))
}

fn string_arg(c: &Call, i: usize) -> Result<String, QueryError> {
    match arg(c, i)? {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(exec(format!(
            "expected a string literal as argument {} of {}",
            i + 1,
            c.func.name
        ))),
    }
}

/// The labels `absent` and `absent_over_time` give their result: the selector's equality
/// matchers, minus any label that also has another matcher.
fn absent_labels(e: &Expr) -> Labels {
    let vs: &VectorSelector = match e {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !set.iter().any(|(n, _)| *n == m.name) {
            set.push((m.name.clone(), m.value.clone()));
        } else {
            dropped.push(&m.name);
        }
    }
    set.retain(|(n, _)| !dropped.contains(&n.as_str()));
    Labels::from_pairs(set)
}

/// Maps each series' value through `f` (None drops the point), dropping `__name__`.
fn map_values(
    input: Vec<VSeries>,
    g: &Grid,
    keep_name: bool,
    mut f: impl FnMut(usize, f64) -> Option<f64>,
) -> Result<Vec<VSeries>, QueryError> {
    let mut out = OutBuilder::new(g.n);
    for s in input {
        let l = if keep_name {
            s.labels.clone()
        } else {
            drop_name(&s.labels)
        };
        let mut slot = None;
        for (i, v) in s.vals.iter().enumerate() {
            let Some(v) = v else { continue };
            if let Some(r) = f(i, *v) {
                let sl = *slot.get_or_insert_with(|| out.slot(l.clone()));
                out.put(sl, i, r)?;
            }
        }
    }
    Ok(out.finish())
}

impl Evaluator<'_> {
    fn opt_scalar(&self, c: &Call, i: usize, g: &Grid, def: f64) -> Result<Vec<f64>, QueryError> {
        match c.args.args.get(i) {
            Some(a) => self.eval_scalar(a, g),
            None => Ok(vec![def; g.n]),
        }
    }

    /// Evaluates a function call over the grid.
    pub fn eval_call(&self, c: &Call, g: &Grid) -> Result<Val, QueryError> {
        let name = c.func.name;
        if let Some(f) = math::unary(name) {
            let v = self.eval_vector(arg(c, 0)?, g)?;
            return Ok(Val::Vector(map_values(v, g, false, |_, x| Some(f(x)))?));
        }
        if DATE_FUNCS.contains(&name) {
            let v = if c.args.args.is_empty() {
                vec![VSeries {
                    labels: Arc::new(Labels::empty()),
                    vals: (0..g.n).map(|i| Some(g.t(i) as f64 / 1000.0)).collect(),
                }]
            } else {
                self.eval_vector(arg(c, 0)?, g)?
            };
            return Ok(Val::Vector(map_values(v, g, false, |_, x| {
                ftime::date_part(name, x)
            })?));
        }
        let v = match name {
            "time" => Val::Scalar((0..g.n).map(|i| g.t(i) as f64 / 1000.0).collect()),
            "pi" => Val::Scalar(vec![std::f64::consts::PI; g.n]),
            "vector" => {
                let s = self.eval_scalar(arg(c, 0)?, g)?;
                Val::Vector(vec![VSeries {
                    labels: Arc::new(Labels::empty()),
                    vals: s.into_iter().map(Some).collect(),
                }])
            }
            "scalar" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                Val::Scalar(
                    (0..g.n)
                        .map(|i| {
                            let mut it = v.iter().filter_map(|s| s.vals[i]);
                            match (it.next(), it.next()) {
                                (Some(x), None) => x,
                                _ => f64::NAN,
                            }
                        })
                        .collect(),
                )
            }
            "timestamp" => {
                let a = arg(c, 0)?;
                let v = match a {
                    Expr::VectorSelector(vs) => self.vector_selector(vs, g, true)?,
                    _ => {
                        let mut v = self.eval_vector(a, g)?;
                        for s in &mut v {
                            for (i, x) in s.vals.iter_mut().enumerate() {
                                if x.is_some() {
                                    *x = Some(g.t(i) as f64 / 1000.0);
                                }
                            }
                        }
                        v
                    }
                };
                Val::Vector(map_values(v, g, false, |_, x| Some(x))?)
            }
            "absent" => {
                let a = arg(c, 0)?;
                let v = self.eval_vector(a, g)?;
                let labels = Arc::new(absent_labels(a));
                let vals = (0..g.n)
                    .map(|i| v.iter().all(|s| s.vals[i].is_none()).then_some(1.0))
                    .collect();
                let out = VSeries { labels, vals };
                Val::Vector(if out.vals.iter().any(Option::is_some) {
                    vec![out]
                } else {
                    Vec::new()
                })
            }
            "sort" | "sort_desc" => {
                let mut v = self.eval_vector(arg(c, 0)?, g)?;
                if g.n == 1 {
                    let desc = name == "sort_desc";
                    v.sort_by(|a, b| {
                        let (x, y) = (a.vals[0].unwrap_or(f64::NAN), b.vals[0].unwrap_or(f64::NAN));
                        match (x.is_nan(), y.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if desc => y.total_cmp(&x),
                            _ => x.total_cmp(&y),
                        }
                    });
                }
                Val::Vector(v)
            }
            "round" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                let to = self.opt_scalar(c, 1, g, 1.0)?;
                Val::Vector(map_values(v, g, false, |i, x| Some(math::round(x, to[i])))?)
            }
            "clamp" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                let lo = self.eval_scalar(arg(c, 1)?, g)?;
                let hi = self.eval_scalar(arg(c, 2)?, g)?;
                Val::Vector(map_values(v, g, false, |i, x| {
                    math::clamp(x, lo[i], hi[i])
                })?)
            }
            "clamp_min" | "clamp_max" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                let b = self.eval_scalar(arg(c, 1)?, g)?;
                let f = if name == "clamp_min" {
                    math::clamp_min
                } else {
                    math::clamp_max
                };
                Val::Vector(map_values(v, g, false, |i, x| Some(f(x, b[i])))?)
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(arg(c, 0)?, g)?;
                let v = self.eval_vector(arg(c, 1)?, g)?;
                Val::Vector(histogram_quantile(&q, v, g)?)
            }
            "label_replace" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                let (dst, repl, src, re) = (
                    string_arg(c, 1)?,
                    string_arg(c, 2)?,
                    string_arg(c, 3)?,
                    string_arg(c, 4)?,
                );
                flabels::label_replace(&Labels::empty(), &dst, &repl, &src, &re).map_err(exec)?;
                Val::Vector(relabel(v, g, |l| {
                    flabels::label_replace(l, &dst, &repl, &src, &re)
                })?)
            }
            "label_join" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                let dst = string_arg(c, 1)?;
                let sep = string_arg(c, 2)?;
                let srcs: Vec<String> = (3..c.args.args.len())
                    .map(|i| string_arg(c, i))
                    .collect::<Result<_, _>>()?;
                let srcs: Vec<&str> = srcs.iter().map(String::as_str).collect();
                flabels::label_join(&Labels::empty(), &dst, &sep, &srcs).map_err(exec)?;
                Val::Vector(relabel(v, g, |l| {
                    flabels::label_join(l, &dst, &sep, &srcs)
                })?)
            }
            _ => return self.range_call(c, g),
        };
        Ok(v)
    }

    fn range_arg(&self, e: &Expr, g: &Grid) -> Result<RangeArg, QueryError> {
        match e {
            Expr::MatrixSelector(ms) => self.matrix_selector(ms),
            Expr::Subquery(sq) => self.subquery(sq, g),
            _ => Err(exec("expected a range vector argument")),
        }
    }

    /// Functions over range vectors, evaluated window by window.
    fn range_call(&self, c: &Call, g: &Grid) -> Result<Val, QueryError> {
        let name = c.func.name;
        let midx = usize::from(name == "quantile_over_time");
        let known = matches!(
            name,
            "rate"
                | "increase"
                | "delta"
                | "irate"
                | "idelta"
                | "deriv"
                | "predict_linear"
                | "holt_winters"
                | "resets"
                | "changes"
                | "avg_over_time"
                | "sum_over_time"
                | "count_over_time"
                | "min_over_time"
                | "max_over_time"
                | "stddev_over_time"
                | "stdvar_over_time"
                | "last_over_time"
                | "present_over_time"
                | "quantile_over_time"
                | "absent_over_time"
        );
        if !known {
            return Err(exec(format!(
                "function {name:?} is not supported by Prometheus 2.42"
            )));
        }
        let marg = arg(c, midx)?;
        let ra = self.range_arg(marg, g)?;
        let mut scalars: Vec<Vec<f64>> = Vec::new();
        for i in 0..c.args.args.len() {
            if i != midx {
                scalars.push(self.eval_scalar(arg(c, i)?, g)?);
            }
        }
        let sc = |k: usize, i: usize| {
            scalars
                .get(k)
                .and_then(|v| v.get(i))
                .copied()
                .unwrap_or(f64::NAN)
        };
        if name == "absent_over_time" {
            let mut present = vec![false; g.n];
            for si in 0..ra.series.len() {
                ra.windows(si, g, |i, w| {
                    present[i] |= !w.is_empty();
                    Ok(())
                })?;
            }
            let vals: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
            return Ok(Val::Vector(if vals.iter().any(Option::is_some) {
                vec![VSeries {
                    labels: Arc::new(absent_labels(marg)),
                    vals,
                }]
            } else {
                Vec::new()
            }));
        }
        let keep_name = name == "last_over_time";
        let mut out = OutBuilder::new(g.n);
        let mut step_samples = vec![0usize; g.n];
        for si in 0..ra.series.len() {
            self.check_interrupt()?;
            let l = &ra.series[si].0;
            let labels: Lbl = if keep_name { l.clone() } else { drop_name(l) };
            let mut slot = None;
            ra.windows(si, g, |i, w| {
                if w.is_empty() {
                    return Ok(());
                }
                step_samples[i] += w.len();
                let r = ra.ref_t(g.t(i));
                let v = match name {
                    "rate" => frange::extrapolated_rate(w, r - ra.range, r, true, true),
                    "increase" => frange::extrapolated_rate(w, r - ra.range, r, true, false),
                    "delta" => frange::extrapolated_rate(w, r - ra.range, r, false, false),
                    "irate" => frange::instant_delta(w, true),
                    "idelta" => frange::instant_delta(w, false),
                    "deriv" => frange::deriv(w),
                    "predict_linear" => frange::predict_linear(w, g.t(i), sc(0, i)),
                    "holt_winters" => frange::holt_winters(w, sc(0, i), sc(1, i)).map_err(exec)?,
                    "resets" => Some(frange::resets(w)),
                    "changes" => Some(frange::changes(w)),
                    "avg_over_time" => frange::avg_over_time(w),
                    "sum_over_time" => frange::sum_over_time(w),
                    "count_over_time" => frange::count_over_time(w),
                    "min_over_time" => frange::min_over_time(w),
                    "max_over_time" => frange::max_over_time(w),
                    "stddev_over_time" => frange::stddev_over_time(w),
                    "stdvar_over_time" => frange::stdvar_over_time(w),
                    "last_over_time" => frange::last_over_time(w),
                    "present_over_time" => frange::present_over_time(w),
                    "quantile_over_time" => frange::quantile_over_time(sc(0, i), w),
                    _ => None,
                };
                if let Some(v) = v {
                    let sl = *slot.get_or_insert_with(|| out.slot(labels.clone()));
                    out.put(sl, i, v)?;
                }
                Ok(())
            })?;
        }
        for &n in &step_samples {
            self.check_samples(n)?;
        }
        Ok(Val::Vector(out.finish()))
    }
}

/// Applies a label rewrite to every series (once per series), keeping values.
fn relabel(
    input: Vec<VSeries>,
    g: &Grid,
    f: impl Fn(&Labels) -> Result<Labels, String>,
) -> Result<Vec<VSeries>, QueryError> {
    let mut out = OutBuilder::new(g.n);
    for s in input {
        let l = Arc::new(f(&s.labels).map_err(exec)?);
        let slot = out.slot(l);
        for (i, v) in s.vals.iter().enumerate() {
            if let Some(v) = v {
                out.put(slot, i, *v)?;
            }
        }
    }
    Ok(out.finish())
}

/// `histogram_quantile` over classic buckets: series grouped by their labels without `le`
/// (and per metric name), each step's buckets turned into a quantile.
fn histogram_quantile(
    q: &[f64],
    input: Vec<VSeries>,
    g: &Grid,
) -> Result<Vec<VSeries>, QueryError> {
    let mut index: HashMap<(Labels, String), usize> = HashMap::new();
    let mut groups: Vec<(Lbl, Vec<(f64, usize)>)> = Vec::new();
    for (si, s) in input.iter().enumerate() {
        let Some(ub) = s.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        let rest = Labels::from_sorted(
            s.labels
                .iter()
                .filter(|l| l.name != "le" && l.name != METRIC_NAME)
                .cloned()
                .collect(),
        );
        let key = (
            rest.clone(),
            s.labels.get(METRIC_NAME).unwrap_or("").to_owned(),
        );
        let gi = *index.entry(key).or_insert_with(|| {
            groups.push((Arc::new(rest), Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((ub, si));
    }
    let mut out = OutBuilder::new(g.n);
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (labels, members) in &groups {
        let mut slot = None;
        for i in 0..g.n {
            buckets.clear();
            for &(ub, si) in members {
                if let Some(v) = input[si].vals[i] {
                    buckets.push((ub, v));
                }
            }
            if buckets.is_empty() {
                continue;
            }
            let v = histogram::bucket_quantile(q[i], &mut buckets);
            let sl = *slot.get_or_insert_with(|| out.slot(labels.clone()));
            out.put(sl, i, v)?;
        }
    }
    Ok(out.finish())
}

/// Go's `strconv.ParseFloat` for the forms bucket bounds use.
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches('+');
    match t.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => {
            return Some(if s.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        _ => {}
    }
    s.parse::<f64>().ok()
}
