//! What the PromQL-reading targets (`promql`, `params`) share: the runtime they drive async
//! code on, and the bounds on the queries they pass on.

use std::sync::OnceLock;

/// Deeper bracket nesting is left out: depth is bounded by promql's own pre-check (tested in
/// promql/tests/depth.rs), and deep inputs only slow the fuzzer down.
const MAX_NESTING: usize = 16;
/// Digit runs longer than this are left out: promql-parser panics on a duration too long for
/// std's `Duration`; Strata catches that panic and answers a parse error (regression test in
/// promql's engine), but libFuzzer's panic hook aborts on any panic, caught or not.
const MAX_DIGITS: usize = 15;

/// Whether `q` is within the nesting and digit-run bounds above.
pub fn within_bounds(q: &str) -> bool {
    nesting(q) <= MAX_NESTING && longest_digit_run(q) <= MAX_DIGITS
}

/// A current-thread runtime with timers, made once.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds")
    })
}

fn longest_digit_run(q: &str) -> usize {
    let (mut run, mut max) = (0usize, 0usize);
    for b in q.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        max = max.max(run);
    }
    max
}

fn nesting(q: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in q.bytes() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
