//! An in-memory [`Queryable`]: series held in a vector, for tests and the conformance runner.

use crate::error::QueryError;
use crate::queryable::{Queryable, SeriesData};
use async_trait::async_trait;
use std::collections::BTreeSet;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// Series kept in memory, sorted by labels.
#[derive(Debug, Clone, Default)]
pub struct MemoryQueryable {
    series: Vec<SeriesData>,
}

impl MemoryQueryable {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `samples` (time-ordered, after any existing ones) to the series `labels`.
    pub fn append(&mut self, labels: Labels, samples: &[(i64, f64)]) {
        match self.series.binary_search_by(|s| s.labels.cmp(&labels)) {
            Ok(i) => self.series[i].samples.extend_from_slice(samples),
            Err(i) => self.series.insert(
                i,
                SeriesData {
                    labels,
                    samples: samples.to_vec(),
                },
            ),
        }
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series is held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a SeriesData> {
        self.series.iter().filter(move |s| {
            matchers
                .iter()
                .all(|m| m.matches(s.labels.get(m.name()).unwrap_or("")))
        })
    }
}

#[async_trait]
impl Queryable for MemoryQueryable {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        Ok(self
            .matching(matchers)
            .filter_map(|s| {
                let lo = s.samples.partition_point(|&(t, _)| t < mint);
                let hi = s.samples.partition_point(|&(t, _)| t <= maxt);
                (lo < hi).then(|| SeriesData {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                })
            })
            .collect())
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let names: BTreeSet<&str> = self
            .matching(matchers)
            .flat_map(|s| s.labels.iter().map(|l| l.name.as_str()))
            .collect();
        Ok(names.into_iter().map(str::to_owned).collect())
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let values: BTreeSet<&str> = self
            .matching(matchers)
            .filter_map(|s| s.labels.get(name))
            .collect();
        Ok(values.into_iter().map(str::to_owned).collect())
    }
}
