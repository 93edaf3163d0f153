//! The query engine: parses, loads the data every selector needs, evaluates.

use crate::error::QueryError;
use crate::queryable::Queryable;
use crate::value::Value;
use std::time::Duration;

/// Engine limits and defaults, with Prometheus' flag defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `--query.lookback-delta`, ms (5m).
    pub lookback_delta_ms: i64,
    /// `--query.max-samples` (50,000,000).
    pub max_samples: usize,
    /// `--query.timeout` (2m).
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value: for range queries always a matrix sorted by labels.
    pub value: Value,
    /// Warnings to pass to the client (partial data and the like).
    pub warnings: Vec<String>,
}

/// Evaluates PromQL.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    /// An engine with `options`.
    pub fn new(options: EngineOptions) -> Self {
        Engine { options }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at instant `time_ms`.
    pub async fn instant_query(
        &self,
        _queryable: &dyn Queryable,
        _query: &str,
        _time_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        Err(QueryError::Execution("the PromQL engine is not built yet".into()))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    pub async fn range_query(
        &self,
        _queryable: &dyn Queryable,
        _query: &str,
        _start_ms: i64,
        _end_ms: i64,
        _step_ms: i64,
    ) -> Result<QueryResult, QueryError> {
        Err(QueryError::Execution("the PromQL engine is not built yet".into()))
    }
}
