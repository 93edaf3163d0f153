//! Function calls: argument wiring, per-step windows and label handling; the math lives in
//! `crate::functions`.

use super::{drop_name, unparen, Evaluator, Grid, Lbl, OutBuilder, VSeries, Val};
use crate::error::QueryError;
use crate::functions::{histogram, labels as flabels, math, time as ftime};
use foldhash::{HashMap, HashMapExt};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr, VectorSelector};
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

pub(super) fn exec(msg: impl Into<String>) -> QueryError {
    QueryError::Execution(msg.into())
}

pub(super) fn arg(c: &Call, i: usize) -> Result<&Expr, QueryError> {
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
pub(super) fn absent_labels(e: &Expr) -> Labels {
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
    ev: &Evaluator,
    input: Vec<VSeries>,
    g: &Grid,
    keep_name: bool,
    mut f: impl FnMut(usize, f64) -> Option<f64>,
) -> Result<Vec<VSeries>, QueryError> {
    let mut out = OutBuilder::new(g.n, &ev.held);
    let mut work = 0;
    for s in input {
        ev.pace(&mut work, g.n)?;
        let l = if keep_name {
            s.labels.clone()
        } else {
            drop_name(&s.labels)
        };
        let mut slot = None;
        for (i, v) in s.vals.iter().enumerate() {
            let Some(v) = v else { continue };
            if let Some(r) = f(i, *v) {
                let sl = out.slot_in(&mut slot, || l.clone())?;
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
            return Ok(Val::Vector(map_values(self, v, g, false, |_, x| {
                Some(f(x))
            })?));
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
            return Ok(Val::Vector(map_values(self, v, g, false, |_, x| {
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
                Val::Vector(map_values(self, v, g, false, |_, x| Some(x))?)
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
                Val::Vector(map_values(self, v, g, false, |i, x| {
                    Some(math::round(x, to[i]))
                })?)
            }
            "clamp" => {
                let v = self.eval_vector(arg(c, 0)?, g)?;
                let lo = self.eval_scalar(arg(c, 1)?, g)?;
                let hi = self.eval_scalar(arg(c, 2)?, g)?;
                Val::Vector(map_values(self, v, g, false, |i, x| {
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
                Val::Vector(map_values(self, v, g, false, |i, x| Some(f(x, b[i])))?)
            }
            "histogram_quantile" => {
                let q = self.eval_scalar(arg(c, 0)?, g)?;
                let v = self.eval_vector(arg(c, 1)?, g)?;
                Val::Vector(histogram_quantile(self, &q, v, g)?)
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
                Val::Vector(relabel(self, v, g, |l| {
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
                Val::Vector(relabel(self, v, g, |l| {
                    flabels::label_join(l, &dst, &sep, &srcs)
                })?)
            }
            _ => return self.range_call(c, g),
        };
        Ok(v)
    }
}

/// Applies a label rewrite to every series (once per series), keeping values.
fn relabel(
    ev: &Evaluator,
    input: Vec<VSeries>,
    g: &Grid,
    f: impl Fn(&Labels) -> Result<Labels, String>,
) -> Result<Vec<VSeries>, QueryError> {
    let mut out = OutBuilder::new(g.n, &ev.held);
    let mut work = 0;
    for s in input {
        // A rewrite (a regex match for label_replace) costs more than a sample.
        ev.pace(&mut work, g.n + 64)?;
        let l = Arc::new(f(&s.labels).map_err(exec)?);
        let slot = out.slot(l)?;
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
    ev: &Evaluator,
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
    let mut out = OutBuilder::new(g.n, &ev.held);
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let mut work = 0;
    for (labels, members) in &groups {
        ev.pace(&mut work, g.n * members.len())?;
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
            let sl = out.slot_in(&mut slot, || labels.clone())?;
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
