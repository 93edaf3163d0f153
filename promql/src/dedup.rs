//! Replica deduplication over a [`Queryable`]: series equal once the replica labels are
//! removed are one series, their samples merged by `storage::dedup` (penalty algorithm; in
//! counter mode for selectors the engine marks as counters, see [`SelectHints`]), and the
//! replica labels are dropped from what the engine and the API see.

use crate::error::QueryError;
use crate::queryable::{Queryable, SampleBudget, SelectHints, SeriesData};
use async_trait::async_trait;
use std::collections::BTreeMap;
use storage::dedup::{dedup_samples, without_replica_labels, Mode};
use storage::labels::Labels;
use storage::matcher::Matcher;

/// Groups `series` by their labels without `replica_labels` and deduplicates each group;
/// the result is sorted by labels, each series once.
pub fn dedup_series(
    series: Vec<SeriesData>,
    replica_labels: &[String],
    mode: Mode,
) -> Vec<SeriesData> {
    let mut groups: BTreeMap<Labels, Vec<Vec<(i64, f64)>>> = BTreeMap::new();
    for s in series {
        groups
            .entry(without_replica_labels(&s.labels, replica_labels))
            .or_default()
            .push(s.samples);
    }
    groups
        .into_iter()
        .map(|(labels, replicas)| SeriesData {
            labels,
            samples: dedup_samples(replicas, mode),
        })
        .collect()
}

/// A [`Queryable`] whose series are deduplicated over `replica_labels`.
#[derive(Debug, Clone)]
pub struct Deduplicated<Q> {
    inner: Q,
    replica_labels: Vec<String>,
}

impl<Q: Queryable> Deduplicated<Q> {
    /// `inner` deduplicated over `replica_labels`.
    pub fn new(inner: Q, replica_labels: Vec<String>) -> Self {
        Deduplicated {
            inner,
            replica_labels,
        }
    }

    /// The source underneath.
    pub fn inner(&self) -> &Q {
        &self.inner
    }

    /// The labels deduplicated over.
    pub fn replica_labels(&self) -> &[String] {
        &self.replica_labels
    }
}

#[async_trait]
impl<Q: Queryable> Queryable for Deduplicated<Q> {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.select_hinted(
            matchers,
            mint,
            maxt,
            &SampleBudget::unlimited(),
            SelectHints::default(),
        )
        .await
    }

    async fn select_within(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.select_hinted(matchers, mint, maxt, budget, SelectHints::default())
            .await
    }

    async fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
        hints: SelectHints,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let series = self
            .inner
            .select_hinted(matchers, mint, maxt, budget, hints)
            .await?;
        let mode = if hints.counter {
            Mode::Counter
        } else {
            Mode::Plain
        };
        Ok(dedup_series(series, &self.replica_labels, mode))
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let mut names = self.inner.label_names(matchers, mint, maxt).await?;
        names.retain(|n| !self.replica_labels.contains(n));
        Ok(names)
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        // Deduplicated series carry no replica label, as Thanos' stores strip them
        // (`without_replica_labels`).
        if self.replica_labels.iter().any(|r| r == name) {
            return Ok(Vec::new());
        }
        self.inner.label_values(name, matchers, mint, maxt).await
    }
}
