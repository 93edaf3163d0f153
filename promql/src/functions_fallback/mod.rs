//! Stand-in for the `functions` library that the `funcs` branch provides: the same public
//! signatures, with the Prometheus 2.42 math the engine needs to pass the corpus.
//!
//! Unfinished by design: once the `funcs` branch is merged, `lib.rs` should point
//! `pub mod functions;` at `src/functions/` and this folder can be deleted.

pub mod histogram;
pub mod labels;
pub mod math;
pub mod range;
pub mod time;
