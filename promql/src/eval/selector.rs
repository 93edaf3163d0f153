//! Instant selectors (lookback, stale markers), range selectors and subqueries as windows.

use super::load::is_stale;
use super::{offset_ms, Evaluator, Grid, Lbl, VSeries};
use crate::error::QueryError;
use promql_parser::parser::{MatrixSelector, SubqueryExpr, VectorSelector};
use std::sync::Arc;

/// Default subquery step when `[range:]` has none (the rule evaluation interval, 1m).
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Shared time-ordered samples (a `Vec` rather than a slice so that loading shares the
/// queryable's buffer instead of copying it).
pub(crate) type Points = Arc<Vec<(i64, f64)>>;

/// A range vector argument: series with time-ordered samples (no stale markers), read as the
/// closed window `[ref - range, ref]` where `ref = (at or step time) - offset`.
pub(crate) struct RangeArg {
    pub series: Vec<(Lbl, Points)>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl RangeArg {
    /// The window's end for a step at time `t`.
    pub fn ref_t(&self, t: i64) -> i64 {
        self.at.unwrap_or(t) - self.offset
    }

    /// The non-empty windows at `t`, for a range vector returned by an instant query.
    pub fn instant_windows(&self, t: i64) -> Vec<(Lbl, Vec<(i64, f64)>)> {
        let r = self.ref_t(t);
        self.series
            .iter()
            .filter_map(|(l, pts)| {
                let lo = pts.partition_point(|p| p.0 < r - self.range);
                let hi = pts.partition_point(|p| p.0 <= r);
                (lo < hi).then(|| (l.clone(), pts[lo..hi].to_vec()))
            })
            .collect()
    }

    /// Calls `f(step, window)` for each step of `g` for series `si` (windows may be empty).
    pub fn windows(
        &self,
        si: usize,
        g: &Grid,
        mut f: impl FnMut(usize, &[(i64, f64)]) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        let pts = &self.series[si].1;
        let mut result = Ok(());
        self.window_bounds(si, g, |i, lo, hi| {
            if result.is_ok() {
                result = f(i, &pts[lo..hi]);
            }
        });
        result
    }

    /// Calls `f(step, lo, hi)` for each step of `g` with the window of series `si` as the
    /// index range `lo..hi` of its points; both bounds only move forward from step to step.
    pub fn window_bounds(&self, si: usize, g: &Grid, mut f: impl FnMut(usize, usize, usize)) {
        let pts = &self.series[si].1;
        let (mut lo, mut hi) = (0usize, 0usize);
        for i in 0..g.n {
            let r = self.ref_t(g.t(i));
            while hi < pts.len() && pts[hi].0 <= r {
                hi += 1;
            }
            while lo < hi && pts[lo].0 < r - self.range {
                lo += 1;
            }
            f(i, lo, hi);
        }
    }
}

/// Go's alignment of a subquery's first step: the first multiple of `step` at or after `x`
/// (none when that is past the range of i64).
fn align_up(x: i64, step: i64) -> Option<i64> {
    let s = step.checked_mul(x / step)?;
    if s < x {
        s.checked_add(step)
    } else {
        Some(s)
    }
}

impl Evaluator<'_> {
    /// An instant selector at each step: the latest sample within the lookback window, unless it
    /// is a stale marker. With `want_ts`, the value is the sample's timestamp in seconds.
    pub fn vector_selector(
        &self,
        vs: &VectorSelector,
        g: &Grid,
        want_ts: bool,
    ) -> Result<Vec<VSeries>, QueryError> {
        let at = self.at_ms(&vs.at);
        let off = offset_ms(&vs.offset);
        let mut out = Vec::new();
        let mut work = 0;
        for s in self.data.get(vs) {
            let pts = &s.samples;
            self.held.reserve(g.n)?;
            self.pace(&mut work, g.n + pts.len())?;
            let mut vals = vec![None; g.n];
            let mut j = 0usize;
            let mut any = false;
            for (i, slot) in vals.iter_mut().enumerate() {
                let r = at.unwrap_or(g.t(i)) - off;
                while j < pts.len() && pts[j].0 <= r {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let (t, v) = pts[j - 1];
                if t < r - self.lookback || is_stale(v) {
                    continue;
                }
                *slot = Some(if want_ts { t as f64 / 1000.0 } else { v });
                any = true;
            }
            if any {
                out.push(VSeries {
                    labels: s.labels.clone(),
                    vals,
                });
            } else {
                self.held.release(g.n);
            }
        }
        Ok(out)
    }

    /// A range selector as a window source.
    pub fn matrix_selector(&self, ms: &MatrixSelector) -> Result<RangeArg, QueryError> {
        Ok(RangeArg {
            series: self
                .data
                .get(&ms.vs)
                .iter()
                .map(|s| (s.labels.clone(), s.clean.clone()))
                .collect(),
            range: ms.range.as_millis() as i64,
            offset: offset_ms(&ms.vs.offset),
            at: self.at_ms(&ms.vs.at),
        })
    }

    /// A subquery: the inner expression evaluated at its own aligned steps, as a window source.
    pub fn subquery(&self, sq: &SubqueryExpr, g: &Grid) -> Result<RangeArg, QueryError> {
        let step = sq
            .step
            .map_or(DEFAULT_SUBQUERY_STEP_MS, |d| d.as_millis() as i64)
            .max(1);
        let at = self.at_ms(&sq.at);
        let offset = offset_ms(&sq.offset);
        let range = sq.range.as_millis() as i64;
        let (lo, hi) = at.map_or((g.start, g.end()), |a| (a, a));
        let out_of_range =
            || QueryError::Execution("subquery range or offset is out of the time range".into());
        let start = lo
            .checked_sub(offset)
            .and_then(|t| t.checked_sub(range))
            .and_then(|t| align_up(t, step))
            .ok_or_else(out_of_range)?;
        let end = hi.checked_sub(offset).ok_or_else(out_of_range)?;
        let mut series = Vec::new();
        if end >= start {
            let steps = end
                .checked_sub(start)
                .map(|d| d / step)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| n.checked_add(1))
                .ok_or_else(out_of_range)?;
            // Whatever the inner expression yields holds at least one cell per step (a scalar,
            // or any series), so a subquery with more steps than the limit cannot be answered;
            // refusing it here keeps every per-step allocation below it bounded by the flag.
            if steps > self.max_samples {
                return Err(super::held::too_many());
            }
            let inner = Grid {
                start,
                step,
                n: steps,
            };
            let mut work = 0;
            for s in self.eval_vector(&sq.expr, &inner)? {
                self.pace(&mut work, inner.n)?;
                let pts: Vec<(i64, f64)> = s
                    .vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (inner.t(i), v)))
                    .collect();
                series.push((s.labels, Arc::new(pts)));
            }
        }
        Ok(RangeArg {
            series,
            range,
            offset,
            at,
        })
    }
}
