//! PromQL evaluation with Prometheus 2.42 semantics: expressions parsed by `promql-parser`,
//! evaluated over a [`Queryable`] that supplies series by matchers and time range.

pub mod dedup;
pub mod depth;
pub mod engine;
pub mod error;
mod eval;
pub mod functions;
pub mod memory;
pub mod parse_error;
pub mod queryable;
pub mod stack;
pub mod value;

pub use depth::ParsedExpr;
pub use engine::{CancelFlag, Engine, EngineOptions, QueryControl, QueryResult};
pub use error::QueryError;
pub use memory::MemoryQueryable;
pub use queryable::{Queryable, SampleBudget, SelectHints, SeriesData};
pub use value::{Sample, Series, Value};
