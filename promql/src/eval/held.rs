//! What a query holds while it evaluates, counted against `--query.max-samples` before it is
//! allocated.
//!
//! Prometheus counts the points of every intermediate and final result that is alive at once
//! (`currentSamples` in its engine.go): a node's arguments while it builds its output, then
//! only its output. Here a vector holds one cell per step for each of its series, present or
//! not, so cells are what is counted: an allocation of `n` cells is reserved first, and when a
//! node is done the count drops back to what it held before plus the size of its result.
//!
//! Where this differs from Prometheus 2.42:
//! - A series of a dense vector counts every step of the grid, Prometheus only the steps where
//!   it has a value. Equal for series present at every step; a gappy one (a series that starts
//!   or ends inside the range, a scrape gap longer than the lookback, points dropped by a
//!   filtering comparison such as `x > 0`) counts up to `steps` per series where Prometheus
//!   counts its points, so a range query near the limit may get the 422 that Prometheus
//!   answers. Counting only present points would let the dense cells actually allocated pass
//!   the limit; `count_values`, where this mattered most, has a sparse result instead.
//! - Prometheus also counts, while a function or operator runs, its arguments' points at the
//!   current step a second time (`rangeEval`'s per-step input vectors, at most one step's
//!   worth); Strata reads arguments in place and does not count a copy, so within one step's
//!   worth of the limit a query may pass here where Prometheus refuses (the cells Strata holds
//!   are still within the limit). Not compared shape by shape.

use crate::error::QueryError;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cells (samples) a query holds, with its limit.
#[derive(Debug)]
pub(crate) struct Held {
    cells: AtomicUsize,
    max: usize,
}

/// Prometheus' error for a query over `--query.max-samples`.
pub(crate) fn too_many() -> QueryError {
    QueryError::TooManySamples("query execution")
}

impl Held {
    /// Nothing held yet, at most `max` cells at once.
    pub fn new(max: usize) -> Self {
        Held {
            cells: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `n` more cells, failing with Prometheus' samples-limit error (and taking nothing)
    /// when that would pass the limit. Call it before allocating them.
    pub fn reserve(&self, n: usize) -> Result<(), QueryError> {
        let max = self.max;
        self.cells
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                c.checked_add(n).filter(|&t| t <= max)
            })
            .map(|_| ())
            .map_err(|_| too_many())
    }

    /// Gives back `n` cells reserved for something that was not kept.
    pub fn release(&self, n: usize) {
        // Saturating: a release never makes the count wrap, whatever the caller's arithmetic.
        let _ = self
            .cells
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }

    /// Cells held now.
    pub fn level(&self) -> usize {
        self.cells.load(Ordering::Relaxed)
    }

    /// A node finished: what it used for its arguments and work is freed, and it holds
    /// `result` cells on top of the `before` level it started from. Fails when that is over
    /// the limit (a result whose size was not reserved while it was built).
    pub fn settle(&self, before: usize, result: usize) -> Result<(), QueryError> {
        let now = before.checked_add(result).ok_or_else(too_many)?;
        self.cells.store(now, Ordering::Relaxed);
        if now > self.max {
            return Err(too_many());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_over_the_limit_fails_and_takes_nothing() {
        let h = Held::new(10);
        assert!(h.reserve(6).is_ok());
        assert_eq!(h.reserve(5), Err(too_many()));
        assert_eq!(h.level(), 6);
        assert!(h.reserve(4).is_ok());
        assert_eq!(h.reserve(usize::MAX), Err(too_many()));
        assert_eq!(h.level(), 10);
    }

    #[test]
    fn settling_a_node_frees_its_work_and_keeps_its_result() {
        let h = Held::new(100);
        h.reserve(10).unwrap();
        let before = h.level();
        h.reserve(80).unwrap();
        h.settle(before, 5).unwrap();
        assert_eq!(h.level(), 15);
        assert!(h.reserve(85).is_ok());
        h.release(85);
        assert_eq!(h.settle(before, 91), Err(too_many()));
    }
}
