//! Functions over range vectors (`rate`, `*_over_time`, ...), evaluated window by window.
//!
//! Series are independent, so large inputs are split across cores; results are put together
//! in series order, so answers and errors are the same as one pass in order would give.

use super::call::{absent_labels, arg, exec};
use super::parallel::map_parts;
use super::selector::RangeArg;
use super::{drop_name, Evaluator, Grid, Lbl, VSeries, Val};
use crate::error::QueryError;
use crate::functions::range as frange;
use promql_parser::parser::{Call, Expr};
use std::collections::VecDeque;
use std::sync::Arc;

/// A range function, resolved once per call rather than by name per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    HoltWinters,
    Resets,
    Changes,
    Avg,
    Sum,
    Count,
    Min,
    Max,
    Stddev,
    Stdvar,
    Last,
    Present,
    Quantile,
    Absent,
}

impl RangeFn {
    fn from_name(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "holt_winters" => RangeFn::HoltWinters,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::Avg,
            "sum_over_time" => RangeFn::Sum,
            "count_over_time" => RangeFn::Count,
            "min_over_time" => RangeFn::Min,
            "max_over_time" => RangeFn::Max,
            "stddev_over_time" => RangeFn::Stddev,
            "stdvar_over_time" => RangeFn::Stdvar,
            "last_over_time" => RangeFn::Last,
            "present_over_time" => RangeFn::Present,
            "quantile_over_time" => RangeFn::Quantile,
            "absent_over_time" => RangeFn::Absent,
            _ => return None,
        })
    }

    /// The value of a non-empty window ending at `r` for the step at `t`; `sc` gives the
    /// function's scalar arguments at that step.
    fn apply(
        self,
        w: &[(i64, f64)],
        r: i64,
        range: i64,
        t: i64,
        may_drop: bool,
        sc: impl Fn(usize) -> f64,
    ) -> Result<Option<f64>, QueryError> {
        Ok(match self {
            RangeFn::Rate => {
                frange::extrapolated_rate_hinted(w, r - range, r, true, true, may_drop)
            }
            RangeFn::Increase => {
                frange::extrapolated_rate_hinted(w, r - range, r, true, false, may_drop)
            }
            RangeFn::Delta => frange::extrapolated_rate(w, r - range, r, false, false),
            RangeFn::Irate => frange::instant_delta(w, true),
            RangeFn::Idelta => frange::instant_delta(w, false),
            RangeFn::Deriv => frange::deriv(w),
            RangeFn::PredictLinear => frange::predict_linear(w, t, sc(0)),
            RangeFn::HoltWinters => frange::holt_winters(w, sc(0), sc(1)).map_err(exec)?,
            RangeFn::Resets => Some(frange::resets(w)),
            RangeFn::Changes => Some(frange::changes(w)),
            RangeFn::Avg => frange::avg_over_time(w),
            RangeFn::Sum => frange::sum_over_time(w),
            RangeFn::Count => frange::count_over_time(w),
            RangeFn::Min => frange::min_over_time(w),
            RangeFn::Max => frange::max_over_time(w),
            RangeFn::Stddev => frange::stddev_over_time(w),
            RangeFn::Stdvar => frange::stdvar_over_time(w),
            RangeFn::Last => frange::last_over_time(w),
            RangeFn::Present => frange::present_over_time(w),
            RangeFn::Quantile => frange::quantile_over_time(sc(0), w),
            RangeFn::Absent => None,
        })
    }
}

/// One series' values over the grid, or `None` when it has none.
type SeriesVals = Option<Vec<Option<f64>>>;

/// One part's results: per series its values (or the error that stopped it), and the samples
/// its windows held per step.
type PartOut = (Vec<Result<SeriesVals, QueryError>>, Vec<usize>);

impl Evaluator<'_> {
    fn range_arg(&self, e: &Expr, g: &Grid) -> Result<RangeArg, QueryError> {
        match e {
            Expr::MatrixSelector(ms) => self.matrix_selector(ms),
            Expr::Subquery(sq) => self.subquery(sq, g),
            _ => Err(exec("expected a range vector argument")),
        }
    }

    /// Functions over range vectors, evaluated window by window.
    pub(super) fn range_call(&self, c: &Call, g: &Grid) -> Result<Val, QueryError> {
        let name = c.func.name;
        let Some(func) = RangeFn::from_name(name) else {
            return Err(exec(format!(
                "function {name:?} is not supported by Prometheus 2.42"
            )));
        };
        let midx = usize::from(func == RangeFn::Quantile);
        let marg = arg(c, midx)?;
        let ra = self.range_arg(marg, g)?;
        let mut scalars: Vec<Vec<f64>> = Vec::new();
        for i in 0..c.args.args.len() {
            if i != midx {
                scalars.push(self.eval_scalar(arg(c, i)?, g)?);
            }
        }
        if func == RangeFn::Absent {
            return absent_over_time(&ra, g, marg);
        }
        let work = ra.series.iter().map(|s| s.1.len() + g.n).sum::<usize>();
        let parts = map_parts(ra.series.len(), work, |part| -> PartOut {
            let mut step_samples = vec![0usize; g.n];
            let vals = part
                .map(|si| {
                    self.check_interrupt()?;
                    self.range_series(func, &ra, si, g, &scalars, &mut step_samples)
                })
                .collect();
            (vals, step_samples)
        });
        let keep_name = func == RangeFn::Last;
        let mut out = self.out(g);
        let mut step_samples = vec![0usize; g.n];
        let mut si = 0;
        for (vals, counts) in parts {
            for v in vals {
                if let Some(v) = v? {
                    let l = &ra.series[si].0;
                    let labels: Lbl = if keep_name { l.clone() } else { drop_name(l) };
                    out.put_series(labels, v)?;
                }
                si += 1;
            }
            for (total, n) in step_samples.iter_mut().zip(counts) {
                *total += n;
            }
        }
        for &n in &step_samples {
            self.check_samples(n)?;
        }
        Ok(Val::Vector(out.finish()))
    }

    /// `func` over every window of series `si`, counting window samples per step.
    fn range_series(
        &self,
        func: RangeFn,
        ra: &RangeArg,
        si: usize,
        g: &Grid,
        scalars: &[Vec<f64>],
        step_samples: &mut [usize],
    ) -> Result<SeriesVals, QueryError> {
        // The series' cells are reserved before its first window is computed, and given back
        // when it turns out to have no value at any step.
        self.held.reserve(g.n)?;
        let vals = self.range_values(func, ra, si, g, scalars, step_samples);
        if !matches!(vals, Ok(Some(_))) {
            self.held.release(g.n);
        }
        vals
    }

    fn range_values(
        &self,
        func: RangeFn,
        ra: &RangeArg,
        si: usize,
        g: &Grid,
        scalars: &[Vec<f64>],
        step_samples: &mut [usize],
    ) -> Result<SeriesVals, QueryError> {
        let mut vals: SeriesVals = None;
        let mut put = |i: usize, v: f64| {
            if let Some(slot) = vals.get_or_insert_with(|| vec![None; g.n]).get_mut(i) {
                *slot = Some(v);
            }
        };
        if matches!(func, RangeFn::Min | RangeFn::Max) {
            let mut ext = SlidingExtreme::new(func == RangeFn::Max);
            let pts = &ra.series[si].1;
            ra.window_bounds(si, g, |i, lo, hi| {
                if lo < hi {
                    step_samples[i] += hi - lo;
                    put(i, ext.advance(pts, lo, hi));
                }
            });
        } else {
            let sc = |k: usize, i: usize| {
                scalars
                    .get(k)
                    .and_then(|v| v.get(i))
                    .copied()
                    .unwrap_or(f64::NAN)
            };
            let pts = &ra.series[si].1;
            let drops = matches!(func, RangeFn::Rate | RangeFn::Increase).then(|| drop_counts(pts));
            let mut result = Ok(());
            let mut work = 0;
            ra.window_bounds(si, g, |i, lo, hi| {
                if lo == hi || result.is_err() {
                    return;
                }
                // Windows may be long (quantile_over_time over a day): pace within a series.
                if let Err(e) = self.pace(&mut work, hi - lo + 1) {
                    result = Err(e);
                    return;
                }
                step_samples[i] += hi - lo;
                // The pairs inside the window end at lo+1..hi.
                let may_drop = drops.as_ref().is_none_or(|d| d.get(hi - 1) != d.get(lo));
                let t = g.t(i);
                match func.apply(&pts[lo..hi], ra.ref_t(t), ra.range, t, may_drop, |k| {
                    sc(k, i)
                }) {
                    Ok(Some(v)) => put(i, v),
                    Ok(None) => {}
                    Err(e) => result = Err(e),
                }
            });
            result?;
        }
        Ok(vals)
    }
}

/// `counts[j]`: how many points up to `j` are lower than the point before them, so that a
/// window `lo..hi` holds a drop exactly when `counts[hi - 1] != counts[lo]`.
fn drop_counts(pts: &[(i64, f64)]) -> Vec<u32> {
    let mut counts = Vec::with_capacity(pts.len());
    let mut n = 0u32;
    let mut prev = f64::NAN;
    for &(_, v) in pts {
        if v < prev {
            n += 1;
        }
        counts.push(n);
        prev = v;
    }
    counts
}

/// `absent_over_time`: 1 at the steps where no series has a sample in its window.
fn absent_over_time(ra: &RangeArg, g: &Grid, marg: &Expr) -> Result<Val, QueryError> {
    let mut present = vec![false; g.n];
    for si in 0..ra.series.len() {
        ra.windows(si, g, |i, w| {
            present[i] |= !w.is_empty();
            Ok(())
        })?;
    }
    let vals: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
    Ok(Val::Vector(if vals.iter().any(Option::is_some) {
        vec![VSeries {
            labels: Arc::new(absent_labels(marg)),
            vals,
        }]
    } else {
        Vec::new()
    }))
}

/// `max_over_time` / `min_over_time` over windows that only move forward, in time linear in
/// the series length rather than in steps times window length.
///
/// A monotonic queue holds the indices of the window's non-NaN values whose value can still
/// become the extreme; equal values stay queued behind one another, so the front is the
/// earliest extreme, which is the one Prometheus' scan (`v > max || IsNaN(max)`) returns.
/// A window of NaNs only gives its last NaN, as that scan does.
struct SlidingExtreme {
    max: bool,
    queue: VecDeque<usize>,
    /// Every index below this has been offered to the queue.
    pushed: usize,
}

impl SlidingExtreme {
    fn new(max: bool) -> Self {
        SlidingExtreme {
            max,
            queue: VecDeque::new(),
            pushed: 0,
        }
    }

    /// The extreme of `pts[lo..hi]`, a non-empty window whose bounds never move backwards
    /// between calls.
    fn advance(&mut self, pts: &[(i64, f64)], lo: usize, hi: usize) -> f64 {
        for j in self.pushed.max(lo)..hi {
            let v = pts[j].1;
            if v.is_nan() {
                continue;
            }
            while let Some(&b) = self.queue.back() {
                let bv = pts[b].1;
                let beaten = if self.max { bv < v } else { bv > v };
                if !beaten {
                    break;
                }
                self.queue.pop_back();
            }
            self.queue.push_back(j);
        }
        self.pushed = self.pushed.max(hi);
        while self.queue.front().is_some_and(|&f| f < lo) {
            self.queue.pop_front();
        }
        match self.queue.front() {
            Some(&f) => pts[f].1,
            None => pts[hi - 1].1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::range::{max_over_time, min_over_time};

    /// Values with NaNs, signed zeros and ties, where a slip in tie or NaN handling shows.
    fn tricky() -> Vec<(i64, f64)> {
        let vals = [
            f64::NAN,
            -0.0,
            0.0,
            3.0,
            f64::NAN,
            3.0,
            1.0,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            -2.0,
            0.0,
            -0.0,
            5.0,
            5.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            2.0,
        ];
        vals.iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, v))
            .collect()
    }

    #[test]
    fn drop_counts_find_exactly_the_windows_with_a_counter_reset() {
        let pts: Vec<(i64, f64)> = [5.0, 6.0, 2.0, 2.0, f64::NAN, 1.0, 7.0, 3.0, 3.0, 9.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64, v))
            .collect();
        let counts = drop_counts(&pts);
        for lo in 0..pts.len() {
            for hi in lo + 1..=pts.len() {
                let scan = pts[lo..hi].windows(2).any(|w| w[1].1 < w[0].1);
                assert_eq!(counts[hi - 1] != counts[lo], scan, "window {lo}..{hi}");
            }
        }
    }

    #[test]
    fn sliding_extremes_equal_the_scan_bit_for_bit() {
        let pts = tricky();
        for width in 1..=pts.len() {
            for step in 1..=3 {
                for max in [true, false] {
                    let mut ext = SlidingExtreme::new(max);
                    let mut hi = 1;
                    while hi <= pts.len() {
                        let lo = hi.saturating_sub(width);
                        let got = ext.advance(&pts, lo, hi);
                        let want = if max {
                            max_over_time(&pts[lo..hi])
                        } else {
                            min_over_time(&pts[lo..hi])
                        };
                        assert_eq!(
                            Some(got.to_bits()),
                            want.map(f64::to_bits),
                            "max={max} window {lo}..{hi}"
                        );
                        hi += step;
                    }
                }
            }
        }
    }
}
