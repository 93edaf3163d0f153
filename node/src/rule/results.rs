//! The ruler's own results (recorded series, `ALERTS`, `ALERTS_FOR_STATE`) kept in memory for
//! `--tsdb.retention`, readable by PromQL through the ruler's query API.

use super::alert::LabelMap;
use async_trait::async_trait;
use promql::{QueryError, Queryable, SeriesData};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// Series with their samples, oldest dropped beyond the retention.
#[derive(Debug)]
pub struct Results {
    series: RwLock<BTreeMap<Labels, Vec<(i64, f64)>>>,
    retention_ms: i64,
}

impl Results {
    /// An empty store keeping `retention_ms` of samples.
    pub fn new(retention_ms: i64) -> Results {
        Results {
            series: RwLock::new(BTreeMap::new()),
            retention_ms,
        }
    }

    /// Appends samples at `ts`; samples not after a series' last one are ignored (out of
    /// order, as a TSDB refuses them).
    pub fn append(&self, ts: i64, samples: &[(LabelMap, f64)]) {
        let mut s = self.series.write().unwrap_or_else(|p| p.into_inner());
        for (labels, v) in samples {
            let key = Labels::from_pairs(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let points = s.entry(key).or_default();
            if points.last().is_none_or(|(t, _)| *t < ts) {
                points.push((ts, *v));
            }
        }
        let cutoff = ts - self.retention_ms;
        s.retain(|_, points| {
            let keep_from = points.partition_point(|(t, _)| *t < cutoff);
            points.drain(..keep_from);
            !points.is_empty()
        });
    }

    fn matching<'a>(
        s: &'a BTreeMap<Labels, Vec<(i64, f64)>>,
        matchers: &'a [Matcher],
    ) -> impl Iterator<Item = (&'a Labels, &'a Vec<(i64, f64)>)> {
        s.iter().filter(move |(l, _)| {
            matchers
                .iter()
                .all(|m| m.matches(l.get(m.name()).unwrap_or("")))
        })
    }
}

#[async_trait]
impl Queryable for Results {
    async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, QueryError> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        Ok(Self::matching(&s, matchers)
            .filter_map(|(labels, points)| {
                let lo = points.partition_point(|&(t, _)| t < mint);
                let hi = points.partition_point(|&(t, _)| t <= maxt);
                (lo < hi).then(|| SeriesData {
                    labels: labels.clone(),
                    samples: points[lo..hi].to_vec(),
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
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        let names: BTreeSet<String> = Self::matching(&s, matchers)
            .flat_map(|(l, _)| l.iter().map(|l| l.name.clone()))
            .collect();
        Ok(names.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        _mint: i64,
        _maxt: i64,
    ) -> Result<Vec<String>, QueryError> {
        let s = self.series.read().unwrap_or_else(|p| p.into_inner());
        let values: BTreeSet<String> = Self::matching(&s, matchers)
            .filter_map(|(l, _)| l.get(name).map(str::to_owned))
            .collect();
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_samples_within_retention_and_selects_by_matchers() {
        let r = Results::new(10_000);
        let a = LabelMap::from([("__name__".into(), "x".into()), ("j".into(), "a".into())]);
        r.append(1_000, &[(a.clone(), 1.0)]);
        r.append(1_000, &[(a.clone(), 9.0)]);
        r.append(5_000, &[(a.clone(), 2.0)]);
        r.append(12_000, &[(a.clone(), 3.0)]);
        let m = Matcher::new(storage::matcher::MatchKind::Equal, "j", "a").expect("matcher");
        let got = r.select(&[m], 0, 20_000).await.expect("select");
        assert_eq!(got[0].samples, vec![(5_000, 2.0), (12_000, 3.0)]);
    }
}
