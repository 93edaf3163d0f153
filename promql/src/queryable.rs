//! Where the engine gets data: series by matchers and time range.

use crate::error::QueryError;
use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// How many more samples a query may load: the engine holds every selected sample while it
/// evaluates, so `--query.max-samples` bounds what is loaded, and a source that decodes in
/// parts charges as it goes and stops before memory runs out.
#[derive(Debug)]
pub struct SampleBudget {
    left: AtomicUsize,
}

impl SampleBudget {
    /// A budget of `max` samples.
    pub fn new(max: usize) -> Self {
        SampleBudget {
            left: AtomicUsize::new(max),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        SampleBudget::new(usize::MAX)
    }

    /// Takes `n` samples from the budget, failing with Prometheus' samples-limit error when
    /// fewer are left.
    pub fn charge(&self, n: usize) -> Result<(), QueryError> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .map(|_| ())
            .map_err(|_| QueryError::TooManySamples("query execution"))
    }
}

/// How the engine will read a selection, for sources that shape data by use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// The selector feeds `rate`, `increase`, `irate` or `resets` (directly, or through a
    /// subquery, aggregation or arithmetic beneath one): its series are read as counters, so
    /// replica deduplication must not invent resets.
    pub counter: bool,
    /// The function or aggregation directly over the selector, as Prometheus' `hints.Func`
    /// (a binary operator in between clears it): a store of downsampled data picks the
    /// aggregate to read by it (Thanos' `aggrsFromFunc`).
    pub func: Option<&'static str>,
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

    /// [`Queryable::select`] charging the samples to `budget`; sources that decode in parts
    /// override it to stop as soon as the budget is spent.
    async fn select_within(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let out = self.select(matchers, mint, maxt).await?;
        budget.charge(out.iter().map(|s| s.samples.len()).sum())?;
        Ok(out)
    }

    /// [`Queryable::select_within`] with the engine's [`SelectHints`]; sources that
    /// deduplicate replicas override it to treat counters as counters.
    async fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
        hints: SelectHints,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let _ = hints;
        self.select_within(matchers, mint, maxt, budget).await
    }

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

/// A shared source is a source: wrappers such as `dedup::Deduplicated` can hold an `Arc` of a
/// trait object without a forwarding type of their own.
#[async_trait]
impl<Q: Queryable + ?Sized> Queryable for std::sync::Arc<Q> {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        (**self).select(matchers, mint, maxt).await
    }

    async fn select_within(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
    ) -> Result<Vec<SeriesData>, QueryError> {
        (**self).select_within(matchers, mint, maxt, budget).await
    }

    async fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
        hints: SelectHints,
    ) -> Result<Vec<SeriesData>, QueryError> {
        (**self)
            .select_hinted(matchers, mint, maxt, budget, hints)
            .await
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        (**self).label_names(matchers, mint, maxt).await
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        (**self).label_values(name, matchers, mint, maxt).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_the_charge_that_would_overdraw_it_and_keeps_the_rest() {
        let b = SampleBudget::new(10);
        assert!(b.charge(6).is_ok());
        assert_eq!(
            b.charge(5),
            Err(QueryError::TooManySamples("query execution"))
        );
        assert!(b.charge(4).is_ok());
        assert!(b.charge(1).is_err());
        assert!(SampleBudget::unlimited().charge(usize::MAX).is_ok());
    }
}
