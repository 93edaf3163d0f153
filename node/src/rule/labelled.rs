//! The ruler's results as its StoreAPI serves them: every series carries the external labels
//! (`--label`, which win over a series' own label of the same name, as in Thanos' ruler), and
//! matchers on external labels are decided here, as the sidecar does.

use super::results::Results;
use crate::http::SeriesSource;
use crate::sidecar::store::split_external;
use async_trait::async_trait;
use promql::{QueryError, Queryable, SeriesData};
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// [`Results`] with external labels.
#[derive(Debug, Clone)]
pub struct Labelled {
    results: Arc<Results>,
    external: Labels,
}

impl Labelled {
    /// `results` seen with `external` labels.
    pub fn new(results: Arc<Results>, external: Labels) -> Self {
        Labelled { results, external }
    }

    /// The matchers left for the results; `None` when an external label excludes them all.
    fn inner_matchers(&self, matchers: &[Matcher]) -> Option<Vec<Matcher>> {
        split_external(matchers.to_vec(), &self.external)
    }
}

#[async_trait]
impl Queryable for Labelled {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let Some(rest) = self.inner_matchers(matchers) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<SeriesData> = self
            .results
            .select(&rest, mint, maxt)
            .await?
            .into_iter()
            .map(|s| SeriesData {
                labels: s.labels.merged(&self.external),
                samples: s.samples,
            })
            .collect();
        // An external label may replace a series' own and change the order.
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let Some(rest) = self.inner_matchers(matchers) else {
            return Ok(Vec::new());
        };
        let mut names: BTreeSet<String> = self
            .results
            .label_names(&rest, mint, maxt)
            .await?
            .into_iter()
            .collect();
        if !names.is_empty() {
            names.extend(self.external.iter().map(|l| l.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let Some(rest) = self.inner_matchers(matchers) else {
            return Ok(Vec::new());
        };
        if let Some(v) = self.external.get(name) {
            let any = !self.results.select(&rest, mint, maxt).await?.is_empty();
            return Ok(if any { vec![v.to_string()] } else { Vec::new() });
        }
        self.results.label_values(name, &rest, mint, maxt).await
    }
}

#[async_trait]
impl SeriesSource for Labelled {
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        Ok(self
            .select(matchers, mint, maxt)
            .await?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    fn is_ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::alert::LabelMap;
    use storage::matcher::MatchKind;

    #[tokio::test]
    async fn series_carry_external_labels_and_matchers_on_them_are_decided_here() {
        let r = Arc::new(Results::new(i64::MAX / 4));
        let own = LabelMap::from([
            ("__name__".into(), "rec".into()),
            ("replica".into(), "own".into()),
        ]);
        r.append(1_000, &[(own, 1.0)]).await;
        let l = Labelled::new(r, Labels::from_pairs([("replica", "r1")]));
        let m = |k, n, v| Matcher::new(k, n, v).expect("matcher");
        let got = l
            .select(&[m(MatchKind::Equal, "replica", "r1")], 0, 2_000)
            .await
            .expect("select");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels.get("replica"), Some("r1"));
        let none = l
            .select(&[m(MatchKind::Equal, "replica", "own")], 0, 2_000)
            .await
            .expect("select");
        assert!(none.is_empty(), "the external label wins");
        let values = l
            .label_values("replica", &[], 0, 2_000)
            .await
            .expect("values");
        assert_eq!(values, vec!["r1".to_string()]);
    }
}
