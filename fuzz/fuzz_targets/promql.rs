//! PromQL from outside: parsing and evaluating any query over a small in-memory data set never
//! panics. Evaluation runs with a small samples budget and a short deadline so that the fuzzer
//! hunts crashes, not slow queries.
//!
//! Input: one mode byte (instant or range query, which times, which step), then the query.
//! Queries are at most 200 bytes and 16 brackets deep: deep nesting overflows the stack in the
//! evaluator, which the evaluation-depth work (issue 12) fixes separately.
#![no_main]

#[path = "common/query_input.rs"]
mod query_input;

use query_input::{runtime, within_bounds};
use libfuzzer_sys::fuzz_target;
use promql::{Engine, EngineOptions, MemoryQueryable};
use std::sync::OnceLock;
use std::time::Duration;
use storage::labels::Labels;

const MAX_QUERY_BYTES: usize = 200;

/// The HTTP API's extreme instants (Prometheus' minTime and maxTime) and a few ordinary ones.
const TIMES_MS: [i64; 8] = [
    0,
    300_000,
    600_000,
    1_200_000,
    -60_000,
    86_400_000,
    -9_223_309_901_257_974_000,
    9_223_309_901_257_974_999,
];
const STEPS_MS: [i64; 4] = [1_000, 15_000, 60_000, 7_000];

fn data() -> &'static MemoryQueryable {
    static DATA: OnceLock<MemoryQueryable> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut q = MemoryQueryable::new();
        let series: [(&[(&str, &str)], fn(i64) -> f64); 6] = [
            (
                &[("__name__", "up"), ("job", "api"), ("instance", "a")],
                |_| 1.0,
            ),
            (
                &[("__name__", "up"), ("job", "api"), ("instance", "b")],
                |i| (i % 2) as f64,
            ),
            (
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "200"),
                ],
                |i| (i * 10) as f64,
            ),
            // A counter that resets, for rate/increase/resets.
            (
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "500"),
                ],
                |i| (i % 7) as f64,
            ),
            (
                &[
                    ("__name__", "request_seconds_bucket"),
                    ("job", "api"),
                    ("le", "0.5"),
                ],
                |i| i as f64,
            ),
            (
                &[
                    ("__name__", "request_seconds_bucket"),
                    ("job", "api"),
                    ("le", "+Inf"),
                ],
                |i| (2 * i) as f64,
            ),
        ];
        for (labels, f) in series {
            let samples: Vec<(i64, f64)> = (0..41).map(|i| (i * 15_000, f(i))).collect();
            q.append(Labels::from_pairs(labels.iter().copied()), &samples);
        }
        q.append(
            Labels::from_pairs([("__name__", "odd"), ("x", "nan")]),
            &[(0, f64::NAN), (15_000, f64::INFINITY), (30_000, -0.0)],
        );
        q
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(rest) else {
        return;
    };
    if query.len() > MAX_QUERY_BYTES || !within_bounds(query) {
        return;
    }
    let Ok(expr) = promql::engine::parse(query) else {
        return;
    };
    let expr = std::sync::Arc::new(expr);
    let control = || promql::engine::QueryControl {
        deadline: std::time::Instant::now() + Duration::from_secs(2),
        cancel: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        hold: None,
    };
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 50_000,
        timeout: Duration::from_secs(2),
    });
    let t = TIMES_MS[usize::from(mode >> 1) % TIMES_MS.len()];
    runtime().block_on(async {
        if mode & 1 == 0 {
            let _ = engine.instant_query_expr(data(), expr, t, control()).await;
        } else {
            let step = STEPS_MS[usize::from(mode >> 4) % STEPS_MS.len()];
            // At most 50 steps, ending at the extreme instants when `t` is one of them.
            let end = t.saturating_add(step * 49);
            let start = end - step * 49;
            let _ = engine
                .range_query_expr(data(), expr, start, end, step, control())
                .await;
        }
    });
});
