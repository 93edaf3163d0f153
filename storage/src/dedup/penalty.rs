//! Thanos' penalty algorithm: which replica's sample comes next.
//!
//! Two time-ordered streams are walked together. After a sample at `last` is emitted, replica
//! X may next emit only at or after `last + 1 + penalty[X]`. The replica just used has penalty
//! 0; the other gets twice the step just taken (5 s before the first emit). So output stays on
//! one replica while it keeps its scrape interval and moves to the other only after a gap of
//! more than about two intervals; it never interleaves two replicas' scrapes.

/// Penalty of the replica not chosen for the very first sample (Thanos' `initialPenalty`).
pub const INITIAL_PENALTY_MS: i64 = 5000;

/// Which of the two streams a sample was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first stream.
    A,
    /// The second stream.
    B,
}

/// One emitted sample: the stream and the index into it.
pub type Pick = (Side, usize);

/// The samples the penalty algorithm emits from `a` and `b`, in time order.
pub fn picks(a: &[(i64, f64)], b: &[(i64, f64)]) -> Vec<Pick> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0usize, 0usize);
    let mut last: Option<i64> = None;
    let (mut pen_a, mut pen_b) = (0i64, 0i64);
    loop {
        if let Some(l) = last {
            let min_a = l.saturating_add(1).saturating_add(pen_a);
            let min_b = l.saturating_add(1).saturating_add(pen_b);
            i += a[i..].partition_point(|s| s.0 < min_a);
            j += b[j..].partition_point(|s| s.0 < min_b);
        }
        let (side, t) = match (a.get(i), b.get(j)) {
            (None, None) => return out,
            (Some(sa), None) => (Side::A, sa.0),
            (None, Some(sb)) => (Side::B, sb.0),
            (Some(sa), Some(sb)) => {
                let side = if sa.0 <= sb.0 { Side::A } else { Side::B };
                let t = sa.0.min(sb.0);
                let pen = last.map_or(INITIAL_PENALTY_MS, |l| {
                    t.saturating_sub(l).saturating_mul(2)
                });
                match side {
                    Side::A => pen_b = pen,
                    Side::B => pen_a = pen,
                }
                (side, t)
            }
        };
        match side {
            Side::A => {
                pen_a = 0;
                out.push((Side::A, i));
                i += 1;
            }
            Side::B => {
                pen_b = 0;
                out.push((Side::B, j));
                j += 1;
            }
        }
        last = Some(t);
    }
}
