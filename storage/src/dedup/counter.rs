//! Counter-aware emission of the penalty algorithm's picks (the argument is in the module doc
//! of `dedup`): an offset per stretch on one replica, re-derived at every switch, and a reset
//! emitted only where some replica's own samples drop.

use super::penalty::{Pick, Side};

/// How long after an emitted reset another replica's drop is taken for the same reset. It
/// bounds the clock skew and scrape latency between replicas that the algorithm absorbs.
pub const SAME_RESET_WINDOW_MS: i64 = 5 * 60 * 1000;

fn is_num(v: f64) -> bool {
    !v.is_nan()
}

/// Whether any two consecutive numeric samples of `s[from..=to]` drop (a reset seen by that
/// replica itself).
fn drops(s: &[(i64, f64)], from: usize, to: usize) -> bool {
    let mut prev: Option<f64> = None;
    for &(_, v) in s.get(from..=to).unwrap_or(&[]) {
        if !is_num(v) {
            continue;
        }
        if prev.is_some_and(|p| v < p) {
            return true;
        }
        prev = Some(v);
    }
    false
}

/// The last numeric sample of `s[..end]` at or before `t`.
fn numeric_at_or_before(s: &[(i64, f64)], end: usize, t: i64) -> Option<usize> {
    let n = s[..end].partition_point(|x| x.0 <= t);
    (0..n).rev().find(|&k| is_num(s[k].1))
}

/// The first numeric sample of `s[from..]`.
fn next_numeric(s: &[(i64, f64)], from: usize) -> Option<usize> {
    (from..s.len()).find(|&k| is_num(s[k].1))
}

/// State of the emitted counter.
struct Emitter<'a> {
    streams: [&'a [(i64, f64)]; 2],
    out: Vec<(i64, f64)>,
    /// Side of the last numeric sample emitted.
    cur: Option<Side>,
    /// Index (in its stream) of the last numeric sample emitted.
    cur_idx: usize,
    /// Timestamp and emitted value of the last numeric sample.
    last: (i64, f64),
    /// Added to the current replica's raw values.
    offset: f64,
    /// When the output last showed a reset.
    last_reset: Option<i64>,
    /// The output showed a reset that the current replica has not reached yet; its own drop
    /// is that same reset and must not be shown twice.
    owes_reset: bool,
}

fn ix(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Emitter<'_> {
    fn emit(&mut self, t: i64, v: f64) {
        if v < self.last.1 {
            self.last_reset = Some(t);
        }
        self.out.push((t, v));
        self.last = (t, v);
    }

    /// Emits `raw` shifted so that it is not below the last emitted value.
    fn emit_clamped(&mut self, t: i64, raw: f64) {
        if raw + self.offset < self.last.1 {
            self.offset = self.last.1 - raw;
        }
        let v = (raw + self.offset).max(self.last.1);
        self.emit(t, v);
    }

    /// Emits a real reset: the raw value, unshifted.
    fn emit_reset(&mut self, t: i64, raw: f64) {
        self.offset = 0.0;
        self.owes_reset = false;
        self.emit(t, raw);
    }

    fn recent_reset(&self, t: i64) -> bool {
        self.last_reset
            .is_some_and(|r| t.saturating_sub(r) <= SAME_RESET_WINDOW_MS)
    }

    /// The next sample of the replica already in use.
    fn stay(&mut self, side: Side, k: usize) {
        let s = self.streams[ix(side)];
        let (t, v) = s[k];
        let prev_raw = s[self.cur_idx].1;
        if v < prev_raw {
            if self.owes_reset {
                self.owes_reset = false;
                self.offset = self.last.1 - v;
                self.emit(t, self.last.1);
            } else {
                self.emit_reset(t, v);
            }
        } else {
            self.emit_clamped(t, v);
        }
    }

    /// The first sample after a switch from the other replica.
    fn switch(&mut self, from: Side, to: Side, k: usize) {
        let q = self.streams[ix(to)];
        let p = self.streams[ix(from)];
        let (t, v) = q[k];
        let (t_last, l) = self.last;
        // Did the replica left behind drop right after its last emitted sample?
        let p_reset = next_numeric(p, self.cur_idx + 1)
            .map(|n| p[n].1)
            .filter(|&next| next < p[self.cur_idx].1);
        self.owes_reset = false;
        let Some(qa) = numeric_at_or_before(q, k, t_last) else {
            // No history on the new replica to align with: only evidence of a reset counts.
            if p_reset.is_some() || (drops(q, 0, k) && !self.recent_reset(t)) {
                self.emit_reset(t, v);
            } else {
                self.offset = (l - v).max(0.0);
                self.emit_clamped(t, v);
            }
            return;
        };
        if drops(q, qa, k) {
            // The new replica saw a reset since the switch point: the same as one just shown,
            // or a new one.
            if self.recent_reset(t) {
                self.offset = (l - v).max(0.0);
                self.emit_clamped(t, v);
            } else {
                self.emit_reset(t, v);
            }
            return;
        }
        // The new replica's value at `t_last`, interpolated between its samples around it.
        let qb = next_numeric(q, qa + 1).unwrap_or(k);
        let at_last = if q[qb].0 > q[qa].0 && qb <= k {
            let f = (t_last - q[qa].0) as f64 / (q[qb].0 - q[qa].0) as f64;
            q[qa].1 + (q[qb].1 - q[qa].1) * f.clamp(0.0, 1.0)
        } else {
            q[qa].1
        };
        if let Some(p_next) = p_reset {
            // The old replica reset in its gap. The new one is already past that reset if,
            // at the switch point, it was no higher than the old one's first value after it.
            if at_last <= p_next {
                self.emit_reset(t, v);
                return;
            }
        }
        // Align: the new replica's own increase since `t_last` continues the output.
        self.offset = l - at_last;
        self.owes_reset = self.offset < 0.0 && p_reset.is_none() && self.recent_reset(t);
        self.emit_clamped(t, v);
    }
}

/// Emits `picks` of `a` and `b` as one counter without fake resets.
pub fn emit(a: &[(i64, f64)], b: &[(i64, f64)], picks: &[Pick]) -> Vec<(i64, f64)> {
    let mut e = Emitter {
        streams: [a, b],
        out: Vec::with_capacity(picks.len()),
        cur: None,
        cur_idx: 0,
        last: (i64::MIN, f64::NEG_INFINITY),
        offset: 0.0,
        last_reset: None,
        owes_reset: false,
    };
    for &(side, k) in picks {
        let (t, v) = e.streams[ix(side)][k];
        if !is_num(v) {
            // Stale markers pass through and take no part in the counter's arithmetic.
            e.out.push((t, v));
            continue;
        }
        match e.cur {
            None => e.emit(t, v),
            Some(c) if c == side => e.stay(side, k),
            Some(c) => e.switch(c, side, k),
        }
        e.cur = Some(side);
        e.cur_idx = k;
    }
    e.out
}
