//! Aggregations: sum, avg, min, max, count, group, stddev, stdvar, quantile, topk, bottomk,
//! count_values, with `by`/`without`.

use super::parallel::map_parts;
use super::{Evaluator, Grid, Lbl, OutBuilder, SSeries, VSeries, Val};
use crate::error::QueryError;
use crate::functions::histogram::quantile;
use foldhash::{HashMap, HashMapExt};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use std::sync::Arc;
use storage::labels::{Label, Labels, METRIC_NAME};

/// The output labels of a group.
fn group_labels(l: &Labels, without: bool, grouping: &[String]) -> Labels {
    let listed = |n: &str| grouping.iter().any(|g| g == n);
    Labels::from_sorted(
        l.iter()
            .filter(|x| {
                if without {
                    x.name != METRIC_NAME && !listed(&x.name)
                } else {
                    listed(&x.name)
                }
            })
            .cloned()
            .collect(),
    )
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The aggregations that fold values one by one, resolved once per call rather than by name
/// per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FoldOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Quantile,
}

impl FoldOp {
    fn from_name(op: &str) -> Option<FoldOp> {
        Some(match op {
            "sum" => FoldOp::Sum,
            "avg" => FoldOp::Avg,
            "min" => FoldOp::Min,
            "max" => FoldOp::Max,
            "count" => FoldOp::Count,
            "group" => FoldOp::Group,
            "stddev" => FoldOp::Stddev,
            "stdvar" => FoldOp::Stdvar,
            "quantile" => FoldOp::Quantile,
            _ => return None,
        })
    }
}

#[derive(Clone, Default)]
struct Acc {
    seen: bool,
    value: f64,
    mean: f64,
    count: f64,
    vals: Vec<f64>,
}

impl Acc {
    fn first(&mut self, op: FoldOp, v: f64) {
        self.seen = true;
        self.value = v;
        self.mean = v;
        self.count = 1.0;
        self.vals.clear();
        match op {
            FoldOp::Stddev | FoldOp::Stdvar => self.value = 0.0,
            FoldOp::Group => self.value = 1.0,
            FoldOp::Quantile => self.vals.push(v),
            _ => {}
        }
    }

    fn add(&mut self, op: FoldOp, v: f64) {
        match op {
            FoldOp::Sum => self.value += v,
            FoldOp::Avg => {
                self.count += 1.0;
                if self.mean.is_infinite() {
                    if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                        return;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        return;
                    }
                }
                self.mean += v / self.count - self.mean / self.count;
            }
            FoldOp::Max if self.value < v || self.value.is_nan() => self.value = v,
            FoldOp::Min if self.value > v || self.value.is_nan() => self.value = v,
            FoldOp::Count => self.count += 1.0,
            FoldOp::Stddev | FoldOp::Stdvar => {
                self.count += 1.0;
                let delta = v - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (v - self.mean);
            }
            FoldOp::Quantile => self.vals.push(v),
            _ => {}
        }
    }

    fn result(&mut self, op: FoldOp, q: f64) -> f64 {
        match op {
            FoldOp::Avg => self.mean,
            FoldOp::Count => self.count,
            FoldOp::Stdvar => self.value / self.count,
            FoldOp::Stddev => (self.value / self.count).sqrt(),
            FoldOp::Quantile => quantile(q, &mut self.vals),
            _ => self.value,
        }
    }
}

/// One step of a folding aggregation: each group's value, groups in order of first sample.
type StepGroups = Vec<(usize, f64)>;

impl Evaluator<'_> {
    /// Evaluates an aggregation over the grid.
    pub fn eval_aggregate(&self, a: &AggregateExpr, g: &Grid) -> Result<Val, QueryError> {
        let op = a.op.to_string();
        const KNOWN: &[&str] = &[
            "sum",
            "avg",
            "min",
            "max",
            "count",
            "group",
            "stddev",
            "stdvar",
            "topk",
            "bottomk",
            "quantile",
            "count_values",
        ];
        if !KNOWN.contains(&op.as_str()) {
            return Err(QueryError::Execution(format!(
                "aggregation {op:?} is not supported by Prometheus 2.42"
            )));
        }
        let (without, grouping): (bool, Vec<String>) = match &a.modifier {
            None => (false, Vec::new()),
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        };
        if op == "count_values" {
            let label = match a.param.as_deref().map(|p| self.eval(p, g)).transpose()? {
                Some(Val::Str(s)) => s,
                _ => {
                    return Err(QueryError::Execution(
                        "count_values needs a string parameter".into(),
                    ))
                }
            };
            let input = self.eval_vector(&a.expr, g)?;
            return Ok(Val::Sparse(count_values(
                self, &label, without, grouping, input, g,
            )?));
        }
        let param = match a.param.as_deref() {
            Some(p) => Some(self.eval_scalar(p, g)?),
            None => None,
        };
        let input = self.eval_vector(&a.expr, g)?;
        if op == "topk" || op == "bottomk" {
            let k = param.unwrap_or_else(|| vec![0.0; g.n]);
            return Ok(Val::Vector(topk(
                self, &op, &k, without, &grouping, input, g,
            )?));
        }
        let q = param.unwrap_or_else(|| vec![0.0; g.n]);
        let Some(fold) = FoldOp::from_name(&op) else {
            return Err(QueryError::Execution(format!(
                "aggregation {op:?} is not supported by Prometheus 2.42"
            )));
        };
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut glabels: Vec<Lbl> = Vec::new();
        let gidx: Vec<usize> = input
            .iter()
            .map(|s| {
                let gl = group_labels(&s.labels, without, &grouping);
                let n = glabels.len();
                *index.entry(gl.clone()).or_insert_with(|| {
                    glabels.push(Arc::new(gl));
                    n
                })
            })
            .collect();
        // Steps are independent: long ranges are folded in parts of steps on several cores,
        // then output in step order, so series appear in the order one pass would give.
        let ngroups = glabels.len();
        let parts = map_parts(g.n, input.len().saturating_mul(g.n), |steps| {
            let mut accs: Vec<Acc> = vec![Acc::default(); ngroups];
            let mut out: Vec<StepGroups> = Vec::with_capacity(steps.len());
            let mut work = 0;
            for i in steps {
                self.pace(&mut work, input.len())?;
                let mut order: StepGroups = Vec::new();
                for (s, &gi) in input.iter().zip(&gidx) {
                    let Some(v) = s.vals[i] else { continue };
                    let acc = &mut accs[gi];
                    if acc.seen {
                        acc.add(fold, v);
                    } else {
                        acc.first(fold, v);
                        order.push((gi, 0.0));
                    }
                }
                for (gi, v) in &mut order {
                    *v = accs[*gi].result(fold, q[i]);
                    accs[*gi].seen = false;
                }
                out.push(order);
            }
            Ok::<_, QueryError>(out)
        });
        let mut out = self.out(g);
        let mut slots: Vec<Option<usize>> = vec![None; ngroups];
        let mut i = 0;
        for part in parts {
            for step in part? {
                for (gi, v) in step {
                    let slot = out.slot_in(&mut slots[gi], || glabels[gi].clone())?;
                    out.put(slot, i, v)?;
                }
                i += 1;
            }
        }
        Ok(Val::Vector(out.finish()))
    }
}

fn topk(
    ev: &Evaluator,
    op: &str,
    k: &[f64],
    without: bool,
    grouping: &[String],
    input: Vec<VSeries>,
    g: &Grid,
) -> Result<Vec<VSeries>, QueryError> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let gidx: Vec<usize> = input
        .iter()
        .map(|s| {
            let n = index.len();
            *index
                .entry(group_labels(&s.labels, without, grouping))
                .or_insert(n)
        })
        .collect();
    let ngroups = index.len();
    let mut out = OutBuilder::new(g.n, &ev.held);
    let mut slots: Vec<Option<usize>> = vec![None; input.len()];
    let mut members: Vec<Vec<(f64, usize)>> = vec![Vec::new(); ngroups];
    let mut order: Vec<usize> = Vec::new();
    let mut work = 0;
    for i in 0..g.n {
        ev.pace(&mut work, input.len())?;
        let kf = k[i];
        if !(kf.is_finite() && kf.abs() < 9.2e18) {
            return Err(QueryError::Execution(format!(
                "Scalar value {} overflows int64",
                super::aggregate::format_go_float(kf)
            )));
        }
        let kk = kf as i64;
        if kk < 1 {
            continue;
        }
        order.clear();
        let top = op == "topk";
        for (si, s) in input.iter().enumerate() {
            let Some(v) = s.vals[i] else { continue };
            let gi = gidx[si];
            if members[gi].is_empty() {
                order.push(gi);
            }
            go_heap::offer(&mut members[gi], (v, si), kk, top);
        }
        for &gi in &order {
            let m = &mut members[gi];
            // Output best first, NaN last, as Prometheus sorts its heap before returning it.
            m.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ if top => b.0.total_cmp(&a.0),
                _ => a.0.total_cmp(&b.0),
            });
            for &(v, si) in m.iter() {
                let slot = out.slot_in(&mut slots[si], || input[si].labels.clone())?;
                out.put(slot, i, v)?;
            }
            members[gi].clear();
        }
    }
    Ok(out.finish())
}

/// `count_values`: every distinct value makes a series of its own, which typically has a
/// value at few steps, so the output is sparse and holds (and counts) only points present.
fn count_values(
    ev: &Evaluator,
    label: &str,
    without: bool,
    mut grouping: Vec<String>,
    input: Vec<VSeries>,
    g: &Grid,
) -> Result<Vec<SSeries>, QueryError> {
    if !valid_label_name(label) {
        return Err(QueryError::Execution(format!(
            "invalid label name {label:?}"
        )));
    }
    if !without {
        grouping.push(label.to_owned());
    }
    let mut out: Vec<SSeries> = Vec::new();
    let mut slots: HashMap<Lbl, usize> = HashMap::new();
    let mut work = 0;
    for i in 0..g.n {
        // Each value costs a label set here, far more than a sample elsewhere.
        ev.pace(&mut work, 16 * input.len())?;
        let mut counts: Vec<(Labels, f64)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for s in &input {
            let Some(v) = s.vals[i] else { continue };
            let mut pairs: Vec<Label> = s
                .labels
                .iter()
                .filter(|l| l.name != label)
                .cloned()
                .collect();
            pairs.push(Label::new(label, format_go_float(v)));
            pairs.sort();
            let gl = group_labels(&Labels::from_sorted(pairs), without, &grouping);
            match index.get(&gl) {
                Some(&k) => counts[k].1 += 1.0,
                None => {
                    index.insert(gl.clone(), counts.len());
                    counts.push((gl, 1.0));
                }
            }
        }
        // The step's points are reserved before they are kept, as Prometheus counts them.
        ev.held.reserve(counts.len())?;
        for (l, c) in counts {
            let k = match slots.get(&l) {
                Some(&k) => k,
                None => {
                    let l: Lbl = Arc::new(l);
                    slots.insert(l.clone(), out.len());
                    out.push(SSeries {
                        labels: l,
                        points: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            out[k].points.push((i, c));
        }
    }
    Ok(out)
}

/// Prometheus 2.42 picks topk/bottomk members with Go's `container/heap`; which of several
/// tied series survives depends on that heap's exact sift order, so it is reproduced here.
mod go_heap {
    /// Heap order: the root is the weakest kept member (smallest for topk), NaN weakest of all.
    fn less(h: &[(f64, usize)], i: usize, j: usize, top: bool) -> bool {
        if h[i].0.is_nan() {
            return true;
        }
        if top {
            h[i].0 < h[j].0
        } else {
            h[i].0 > h[j].0
        }
    }

    fn up(h: &mut [(f64, usize)], mut j: usize, top: bool) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !less(h, j, i, top) {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    }

    fn down(h: &mut [(f64, usize)], i0: usize, top: bool) -> bool {
        let n = h.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && less(h, j1 + 1, j1, top) {
                j = j1 + 1;
            }
            if !less(h, j, i, top) {
                break;
            }
            h.swap(i, j);
            i = j;
        }
        i > i0
    }

    /// Offers a sample to a group's heap of at most `k` members exactly as Prometheus 2.42's
    /// aggregation loop does: while the heap is not full, or when the sample beats the root
    /// (or the root is NaN), pop the root if full and push the sample.
    pub(super) fn offer(h: &mut Vec<(f64, usize)>, s: (f64, usize), k: i64, top: bool) {
        let full = h.len() as i64 >= k;
        if full {
            let root = h[0].0;
            let beats = if top { root < s.0 } else { root > s.0 };
            if !(beats || root.is_nan()) {
                return;
            }
            // heap.Pop: move the last element to the root, sift it down, drop the old root.
            let last = h.len() - 1;
            h.swap(0, last);
            let popped = h.pop();
            debug_assert!(popped.is_some());
            down(h, 0, top);
        }
        h.push(s);
        let last = h.len() - 1;
        up(h, last, top);
    }
}
