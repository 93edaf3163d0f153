//! Splitting per-series work across the machine's cores, with results in input order so that
//! answers do not depend on scheduling.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Work (about one unit per sample or step touched) below which splitting costs more than it
/// saves: starting a thread is worth some tens of microseconds of evaluation.
pub(crate) const MIN_PARALLEL_WORK: usize = 64 * 1024;

/// Parts per thread: small parts balance uneven series (a thread that finishes early takes
/// the next part) at the cost of a little bookkeeping.
const PARTS_PER_THREAD: usize = 8;

/// Threads to use, the machine's cores (probed once).
fn threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Calls `f` on contiguous parts of `0..n` and returns its results in part order. With
/// `work` at least [`MIN_PARALLEL_WORK`] and more than one core, parts run on scoped threads
/// (the caller's among them) that take the next part as they finish; otherwise `f` runs once
/// over `0..n`. A panic in `f` is passed on to the caller.
pub(crate) fn map_parts<R: Send>(
    n: usize,
    work: usize,
    f: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let threads = threads().min(n);
    if work < MIN_PARALLEL_WORK || threads <= 1 {
        return vec![f(0..n)];
    }
    let per = n.div_ceil(threads * PARTS_PER_THREAD).max(1);
    let parts = n.div_ceil(per);
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(parts));
    let run = || loop {
        let p = next.fetch_add(1, Ordering::Relaxed);
        if p >= parts {
            break;
        }
        let r = f(p * per..((p + 1) * per).min(n));
        match done.lock() {
            Ok(mut d) => d.push((p, r)),
            Err(poisoned) => poisoned.into_inner().push((p, r)),
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(run)).collect();
        run();
        for h in helpers {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let mut done = match done.into_inner() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    };
    done.sort_by_key(|(p, _)| *p);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_range_in_order_whether_split_or_not() {
        for work in [0, MIN_PARALLEL_WORK] {
            for n in [0, 1, 2, 7, 100, 1001] {
                let parts = map_parts(n, work, |r| r.collect::<Vec<usize>>());
                let flat: Vec<usize> = parts.into_iter().flatten().collect();
                assert_eq!(flat, (0..n).collect::<Vec<_>>(), "n={n} work={work}");
            }
        }
    }

    #[test]
    fn a_panic_in_a_part_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| {
            map_parts(1000, MIN_PARALLEL_WORK, |r| assert!(!r.contains(&999)))
        });
        assert!(r.is_err());
    }
}
