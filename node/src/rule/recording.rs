//! A recording rule's output, as Prometheus 2.42's `rules/recording.go`: the result renamed to
//! the rule's metric, its labels applied, duplicates and the group `limit` refused.

use super::alert::LabelMap;
use super::file::Rule;

/// Why a recording rule's evaluation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// Two result series became one after renaming and labelling.
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateLabelset,
    /// More series than the group's limit.
    #[error("exceeded limit of {limit} with {count} series")]
    Limit {
        /// The group's limit.
        limit: i64,
        /// The number of series.
        count: usize,
    },
}

/// The series `rule` records from `result`.
pub fn record(
    rule: &Rule,
    result: Vec<(LabelMap, f64)>,
    limit: i64,
) -> Result<Vec<(LabelMap, f64)>, RecordError> {
    let mut out = Vec::with_capacity(result.len());
    let mut seen = std::collections::BTreeSet::new();
    for (mut labels, v) in result {
        labels.insert("__name__".into(), rule.record.clone());
        for (k, val) in &rule.labels {
            if val.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), val.clone());
            }
        }
        if !seen.insert(labels.clone()) {
            return Err(RecordError::DuplicateLabelset);
        }
        out.push((labels, v));
    }
    if limit > 0 && out.len() as i64 > limit {
        return Err(RecordError::Limit {
            limit,
            count: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rule() -> Rule {
        Rule {
            record: "job:x:sum".into(),
            expr: "sum by (job) (x)".into(),
            labels: BTreeMap::from([("team".into(), "a".into()), ("job".into(), String::new())]),
            ..Rule::default()
        }
    }

    #[test]
    fn renames_applies_labels_and_checks_limits() {
        let input = vec![(BTreeMap::from([("inst".into(), "1".into())]), 2.0)];
        let out = record(&rule(), input.clone(), 0).expect("recorded");
        assert_eq!(out[0].0["__name__"], "job:x:sum");
        assert_eq!(out[0].0["team"], "a");
        let two = vec![
            (BTreeMap::from([("inst".into(), "1".into())]), 1.0),
            (BTreeMap::from([("inst".into(), "2".into())]), 1.0),
        ];
        assert_eq!(
            record(&rule(), two, 1),
            Err(RecordError::Limit { limit: 1, count: 2 })
        );
        // The empty `job` label removes the only label telling these apart.
        let dup = vec![
            (BTreeMap::from([("job".into(), "a".into())]), 1.0),
            (BTreeMap::from([("job".into(), "b".into())]), 1.0),
        ];
        assert_eq!(record(&rule(), dup, 0), Err(RecordError::DuplicateLabelset));
    }
}
