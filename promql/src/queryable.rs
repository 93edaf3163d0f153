//! Where the engine gets data: series by matchers and time range.

use crate::error::QueryError;
use async_trait::async_trait;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// One series' labels and its float samples within the requested range, time-ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// Series labels, including `__name__`.
    pub labels: Labels,
    /// Samples (timestamp ms, value) in time order, stale markers included.
    pub samples: Vec<(i64, f64)>,
}

/// A source of series: the bucket's blocks, a store gateway, a test's in-memory data.
#[async_trait]
pub trait Queryable: Send + Sync {
    /// Series matching every matcher with their samples in `[mint, maxt]` (inclusive), sorted
    /// by labels, each series once.
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError>;

    /// Label names of series matching `matchers` (all series when empty) in `[mint, maxt]`,
    /// sorted and unique.
    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError>;

    /// Values of label `name` on series matching `matchers` in `[mint, maxt]`, sorted.
    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError>;
}
