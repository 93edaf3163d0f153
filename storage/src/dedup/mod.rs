//! Replica deduplication: one series from the copies that HA Prometheus replicas (or
//! overlapping chunk runs) hold of it, as a pure transformation of time-ordered samples. The
//! querier uses it over `--query.replica-label`; vertical compaction can reuse it.
//!
//! - `penalty`: which replica each output sample comes from (Thanos' penalty algorithm)
//! - `counter`: counter-aware emission of those samples
//!
//! # Choosing the sample: the penalty algorithm
//! As in Thanos (`pkg/dedup/iter.go`): stay on one replica while it keeps its scrape rhythm,
//! switch only after a gap of about two intervals, never interleave. More than two replicas
//! fold pairwise. In [`Mode::Plain`] the chosen samples are emitted as they are: right for
//! gauges, and for anything where a value is meaningful on its own.
//!
//! # Why switching breaks counters, and what Thanos does
//! Replicas scrape the same counter at different moments and stamp samples with their own
//! clocks, so at a switch the new replica's value is "late" (below the last emitted one) or
//! "early" (above it) by up to the rate times the skew plus latency. Late looks like a counter
//! reset to `rate`, which then adds the whole counter value: spikes of hundreds of times the
//! real rate (thanos#2890, #7623). Thanos' fix (#2401) adds, at a switch, the deficit to a
//! per-replica offset that only ever grows and never returns; it still lets "early" values
//! through as upward jumps, and when the replicas see one real reset at different times it
//! emits the reset, then jumps up to the other replica's not-yet-reset value, then emits a
//! second reset: the counter's whole value counted again.
//!
//! # Strata's counter mode ([`Mode::Counter`])
//! The engine asks for it for selectors under `rate`, `increase`, `irate` or `resets` (also
//! through subqueries, aggregations and arithmetic beneath them). Two rules:
//!
//! 1. **Align, do not clamp, at a switch.** The output continues from the last emitted value
//!    `L` (at `t'`) with the *new replica's own increase* since `t'`: its value at `t'` is
//!    interpolated between its own samples around `t'`, and the difference to `L` becomes the
//!    offset for the stretch on that replica. A replica's own increase is exact in its own
//!    view, so skew (either sign), latency and gaps change only where inside the gap an
//!    increase is counted, not how much, and the output never drops at a switch. Offsets are
//!    re-derived at every switch, so they never accumulate. Without history on the new
//!    replica to interpolate from, a value below `L` is clamped to `L` (an increase is lost,
//!    never invented).
//! 2. **A reset is shown only where a replica's own samples drop.** Comparing two replicas
//!    never creates a reset. A drop between two consecutive samples of one replica is real:
//!    the output then emits that replica's raw value, a visible drop, so `rate` and `resets`
//!    count it. The same real reset reaches replicas at different times; if the output has
//!    shown a reset within [`counter::SAME_RESET_WINDOW_MS`] and the replica now in use was
//!    still above the output (it had not reset yet), its own later drop is that same reset and
//!    is absorbed instead of shown twice.
//!
//! Residual error: the increase during a switch is the new replica's interpolated increase,
//! off by at most its own curvature over one scrape interval; at a reset seen across a switch,
//! up to the increase since that reset. Both are bounded by rate × (interval + skew), unlike
//! a fake reset, which is bounded only by the counter's value. Stale markers pass through
//! unchanged and are ignored by the arithmetic.

pub mod counter;
pub mod penalty;

#[cfg(test)]
mod tests;

use crate::labels::{Label, Labels};

/// How the chosen samples are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Samples as the replicas hold them (gauges, and any value read on its own).
    #[default]
    Plain,
    /// Counter semantics: no fake resets at replica switches (see the module doc).
    Counter,
}

/// Deduplicates the sample streams of one series' replicas (each time-ordered) into one
/// time-ordered stream.
pub fn dedup_samples(mut replicas: Vec<Vec<(i64, f64)>>, mode: Mode) -> Vec<(i64, f64)> {
    replicas.retain(|r| !r.is_empty());
    let mut it = replicas.into_iter();
    let Some(mut acc) = it.next() else {
        return Vec::new();
    };
    for next in it {
        let picks = penalty::picks(&acc, &next);
        acc = match mode {
            Mode::Plain => picks
                .iter()
                .map(|&(side, k)| match side {
                    penalty::Side::A => acc[k],
                    penalty::Side::B => next[k],
                })
                .collect(),
            Mode::Counter => counter::emit(&acc, &next, &picks),
        };
    }
    acc
}

/// `labels` without the labels named in `replica_labels` (the series' identity across
/// replicas).
pub fn without_replica_labels(labels: &Labels, replica_labels: &[String]) -> Labels {
    if replica_labels.is_empty() || !labels.iter().any(|l| replica_labels.contains(&l.name)) {
        return labels.clone();
    }
    let kept: Vec<Label> = labels
        .iter()
        .filter(|l| !replica_labels.contains(&l.name))
        .cloned()
        .collect();
    Labels::from_sorted(kept)
}
