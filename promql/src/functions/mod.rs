//! The math behind PromQL's functions, with Prometheus 2.42 semantics, free of evaluation
//! concerns (no labels of results, no vectors, no timestamps of output).
//!
//! Conventions:
//! - A range function takes one series' window as `&[(i64, f64)]`: `(milliseconds, value)` in
//!   time order, stale markers already removed. The engine builds the window with 2.42's
//!   closed interval `[t - range, t]` (after `offset` and `@`).
//! - `Option::None` means "no output sample" (Prometheus drops the element), never an error.
//!   Errors that fail the whole query in Prometheus (bad `holt_winters` factors, bad
//!   `label_replace` arguments) are `Err(String)` with Prometheus' exact message, for the engine
//!   to wrap as an execution error.
//! - Float behaviour (Kahan sums, NaN ordering, Go's `math.Min`/`math.Max`) copies Go's, so
//!   results agree with Prometheus to the last few ulps. `tests/functions_golden.rs` checks this
//!   against answers recorded from Prometheus 2.42.

pub mod histogram;
pub mod kahan;
pub mod labels;
pub mod math;
pub mod range;
pub mod time;
