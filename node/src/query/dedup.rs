//! Replica deduplication of what one API request reads: the request's source wrapped in
//! `promql::dedup::Deduplicated` (the algorithm and its counter handling are in
//! `storage::dedup`), with series listing deduplicated the same way.

use crate::http::SeriesSource;
use async_trait::async_trait;
use promql::dedup::Deduplicated;
use promql::{QueryError, Queryable, SampleBudget, SelectHints, SeriesData};
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::dedup::without_replica_labels;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// `source` deduplicated over `replica_labels`; `source` itself when there are none.
pub fn deduplicated(
    source: Arc<dyn SeriesSource>,
    replica_labels: Vec<String>,
) -> Arc<dyn SeriesSource> {
    if replica_labels.is_empty() {
        return source;
    }
    Arc::new(DedupSource(Deduplicated::new(source, replica_labels)))
}

/// A request's source deduplicated over replica labels.
struct DedupSource(Deduplicated<Arc<dyn SeriesSource>>);

#[async_trait]
impl Queryable for DedupSource {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.0.select(matchers, mint, maxt).await
    }

    async fn select_within(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.0.select_within(matchers, mint, maxt, budget).await
    }

    async fn select_hinted(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: &SampleBudget,
        hints: SelectHints,
    ) -> Result<Vec<SeriesData>, QueryError> {
        self.0
            .select_hinted(matchers, mint, maxt, budget, hints)
            .await
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        self.0.label_names(matchers, mint, maxt).await
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        self.0.label_values(name, matchers, mint, maxt).await
    }
}

#[async_trait]
impl SeriesSource for DedupSource {
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        let found = self.0.inner().series(matchers, mint, maxt).await?;
        let replica_labels = self.0.replica_labels();
        let unique: BTreeSet<Labels> = found
            .iter()
            .map(|l| without_replica_labels(l, replica_labels))
            .collect();
        Ok(unique.into_iter().collect())
    }

    fn is_ready(&self) -> bool {
        self.0.inner().is_ready()
    }

    fn take_warnings(&self) -> Vec<String> {
        self.0.inner().take_warnings()
    }
}
