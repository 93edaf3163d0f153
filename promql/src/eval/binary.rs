//! Binary operators: arithmetic, comparisons (with and without `bool`), set operators, and
//! vector matching with `on`/`ignoring`/`group_left`/`group_right`.

use super::{drop_name, Evaluator, Grid, Lbl, OutBuilder, VSeries, Val};
use crate::error::QueryError;
use foldhash::{HashMap, HashMapExt};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use std::collections::HashSet;
use std::sync::Arc;
use storage::labels::{Labels, METRIC_NAME};

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// Arithmetic operators drop the metric name; comparisons, set operators and (in 2.42)
/// `atan2` keep it.
fn drops_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^")
}

/// Prometheus' `vectorElemBinop`: the value and whether a comparison keeps the sample.
fn elem_binop(op: &str, l: f64, r: f64) -> (f64, bool) {
    match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn scalar_binop(op: &str, l: f64, r: f64) -> f64 {
    let (v, keep) = elem_binop(op, l, r);
    if is_comparison(op) {
        if keep {
            1.0
        } else {
            0.0
        }
    } else {
        v
    }
}

/// The labels two series are matched on.
fn signature(l: &Labels, on: bool, names: &[String]) -> Labels {
    let keep = |n: &str| {
        if on {
            names.iter().any(|x| x == n)
        } else {
            n != METRIC_NAME && !names.iter().any(|x| x == n)
        }
    };
    Labels::from_sorted(l.iter().filter(|x| keep(&x.name)).cloned().collect())
}

struct Matching<'a> {
    on: bool,
    names: &'a [String],
    card: &'a VectorMatchCardinality,
}

fn matching_of(b: &BinaryExpr) -> Matching<'_> {
    static NONE: Vec<String> = Vec::new();
    static ONE_TO_ONE: VectorMatchCardinality = VectorMatchCardinality::OneToOne;
    match &b.modifier {
        None => Matching {
            on: false,
            names: &NONE,
            card: &ONE_TO_ONE,
        },
        Some(m) => Matching {
            on: matches!(m.matching, Some(LabelModifier::Include(_))),
            names: m.matching.as_ref().map_or(&NONE, |x| &x.labels().labels),
            card: &m.card,
        },
    }
}

impl Evaluator<'_> {
    /// Evaluates a binary expression over the grid.
    pub fn eval_binary(&self, b: &BinaryExpr, g: &Grid) -> Result<Val, QueryError> {
        let op = b.op.to_string();
        let ret_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, g)?;
        let rhs = self.eval(&b.rhs, g)?;
        Ok(match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Val::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&a, &c)| scalar_binop(&op, a, c))
                    .collect(),
            ),
            (Val::Vector(v), Val::Scalar(s)) => {
                Val::Vector(vector_scalar(self, &op, v, &s, false, ret_bool, g)?)
            }
            (Val::Scalar(s), Val::Vector(v)) => {
                Val::Vector(vector_scalar(self, &op, v, &s, true, ret_bool, g)?)
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let m = matching_of(b);
                match op.as_str() {
                    "and" | "or" | "unless" => Val::Vector(set_op(self, &op, l, r, &m, g)?),
                    _ => Val::Vector(self.vector_binop(&op, l, r, &m, ret_bool, g)?),
                }
            }
            (l, r) => {
                return Err(QueryError::Execution(format!(
                    "binary expression must contain only scalar and instant vector types, got {} and {}",
                    super::val_type(&l),
                    super::val_type(&r)
                )))
            }
        })
    }

    fn vector_binop(
        &self,
        op: &str,
        lhs: Vec<VSeries>,
        rhs: Vec<VSeries>,
        m: &Matching,
        ret_bool: bool,
        g: &Grid,
    ) -> Result<Vec<VSeries>, QueryError> {
        static NONE: Vec<String> = Vec::new();
        let (many, one, swapped, include) = match m.card {
            VectorMatchCardinality::OneToMany(l) => (rhs, lhs, true, &l.labels),
            VectorMatchCardinality::ManyToOne(l) => (lhs, rhs, false, &l.labels),
            _ => (lhs, rhs, false, &NONE),
        };
        let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
        // Group the "one" side by signature.
        let mut group_of: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
        for (i, s) in one.iter().enumerate() {
            let sig = signature(&s.labels, m.on, m.names);
            let gi = *group_of.entry(sig.clone()).or_insert_with(|| {
                groups.push((sig, Vec::new()));
                groups.len() - 1
            });
            groups[gi].1.push(i);
        }
        let many_group: Vec<Option<usize>> = many
            .iter()
            .map(|s| group_of.get(&signature(&s.labels, m.on, m.names)).copied())
            .collect();
        let mut out = self.out(g);
        let mut pair_slot: HashMap<(usize, usize), usize> = HashMap::new();
        let mut one_at: Vec<Option<usize>> = vec![None; groups.len()];
        let mut matched: Vec<bool> = vec![false; groups.len()];
        let mut inserted: HashSet<(usize, usize)> = HashSet::new();
        let mut work = 0;
        for i in 0..g.n {
            self.pace(&mut work, one.len() + many.len())?;
            for (gi, (sig, members)) in groups.iter().enumerate() {
                let mut found: Option<usize> = None;
                for &o in members {
                    if one[o].vals[i].is_some() {
                        if let Some(prev) = found {
                            return Err(QueryError::Execution(format!(
                                "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                                sig,
                                if swapped { "left" } else { "right" },
                                one[o].labels,
                                one[prev].labels
                            )));
                        }
                        found = Some(o);
                    }
                }
                one_at[gi] = found;
            }
            matched.iter_mut().for_each(|x| *x = false);
            inserted.clear();
            for (mi, ms) in many.iter().enumerate() {
                let (Some(mv), Some(gi)) = (ms.vals[i], many_group[mi]) else {
                    continue;
                };
                let Some(oi) = one_at[gi] else { continue };
                let Some(ov) = one[oi].vals[i] else { continue };
                let (vl, vr) = if swapped { (ov, mv) } else { (mv, ov) };
                let (mut value, keep) = elem_binop(op, vl, vr);
                if ret_bool {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                let slot = match pair_slot.get(&(mi, oi)) {
                    Some(&s) => s,
                    None => {
                        let l =
                            result_metric(&ms.labels, &one[oi].labels, op, m, include, ret_bool);
                        let s = out.slot(l)?;
                        pair_slot.insert((mi, oi), s);
                        s
                    }
                };
                if one_to_one {
                    if matched[gi] {
                        return Err(QueryError::Execution("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into()));
                    }
                    matched[gi] = true;
                } else if !inserted.insert((gi, slot)) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
                out.put(slot, i, value)?;
            }
        }
        Ok(out.finish())
    }
}

fn result_metric(
    l: &Lbl,
    r: &Lbl,
    op: &str,
    m: &Matching,
    include: &[String],
    ret_bool: bool,
) -> Lbl {
    let mut pairs: Vec<(String, String)> = l
        .iter()
        .filter(|x| {
            if x.name == METRIC_NAME && (drops_name(op) || ret_bool) {
                return false;
            }
            if matches!(m.card, VectorMatchCardinality::OneToOne) {
                let listed = m.names.contains(&x.name);
                if m.on != listed {
                    return false;
                }
            }
            !include.contains(&x.name)
        })
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    for n in include {
        if let Some(v) = r.get(n).filter(|v| !v.is_empty()) {
            pairs.push((n.clone(), v.to_owned()));
        }
    }
    Arc::new(Labels::from_pairs(pairs))
}

fn vector_scalar(
    ev: &Evaluator,
    op: &str,
    v: Vec<VSeries>,
    s: &[f64],
    swap: bool,
    ret_bool: bool,
    g: &Grid,
) -> Result<Vec<VSeries>, QueryError> {
    let mut out = OutBuilder::new(g.n, &ev.held);
    let cmp = is_comparison(op);
    let mut work = 0;
    for series in v {
        ev.pace(&mut work, g.n)?;
        let labels = if drops_name(op) || ret_bool {
            drop_name(&series.labels)
        } else {
            series.labels.clone()
        };
        let mut slot = None;
        for (i, x) in series.vals.iter().enumerate() {
            let Some(x) = *x else { continue };
            let (lv, rv) = if swap { (s[i], x) } else { (x, s[i]) };
            let (mut value, keep) = elem_binop(op, lv, rv);
            if cmp && swap {
                value = rv;
            }
            if ret_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let sl = out.slot_in(&mut slot, || labels.clone())?;
            out.put(sl, i, value)?;
        }
    }
    Ok(out.finish())
}

fn set_op(
    ev: &Evaluator,
    op: &str,
    lhs: Vec<VSeries>,
    rhs: Vec<VSeries>,
    m: &Matching,
    g: &Grid,
) -> Result<Vec<VSeries>, QueryError> {
    let mut ids: HashMap<Labels, usize> = HashMap::new();
    let mut sig_id = |s: &VSeries| {
        let n = ids.len();
        *ids.entry(signature(&s.labels, m.on, m.names)).or_insert(n)
    };
    let lsig: Vec<usize> = lhs.iter().map(&mut sig_id).collect();
    let rsig: Vec<usize> = rhs.iter().map(&mut sig_id).collect();
    let nsig = ids.len();
    let mut present = vec![false; nsig];
    let mut out = OutBuilder::new(g.n, &ev.held);
    let lslots: Vec<usize> = lhs
        .iter()
        .map(|s| out.slot(s.labels.clone()))
        .collect::<Result<_, _>>()?;
    let rslots: Vec<usize> = if op == "or" {
        rhs.iter()
            .map(|s| out.slot(s.labels.clone()))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let mut work = 0;
    for i in 0..g.n {
        ev.pace(&mut work, lhs.len() + rhs.len())?;
        present.iter_mut().for_each(|p| *p = false);
        // The side whose signatures filter the other: rhs for and/unless, lhs for or.
        let (filter, fsig) = if op == "or" {
            (&lhs, &lsig)
        } else {
            (&rhs, &rsig)
        };
        for (s, &id) in filter.iter().zip(fsig) {
            if s.vals[i].is_some() {
                present[id] = true;
            }
        }
        for (k, s) in lhs.iter().enumerate() {
            let Some(v) = s.vals[i] else { continue };
            let keep = match op {
                "and" => present[lsig[k]],
                "unless" => !present[lsig[k]],
                _ => true,
            };
            if keep {
                out.put(lslots[k], i, v)?;
            }
        }
        if op == "or" {
            for (k, s) in rhs.iter().enumerate() {
                let Some(v) = s.vals[i] else { continue };
                if !present[rsig[k]] {
                    out.put(rslots[k], i, v)?;
                }
            }
        }
    }
    Ok(out.finish())
}
