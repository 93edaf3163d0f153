//! Merging one series' samples from several blocks, and matching external labels.

use storage::labels::Labels;
use storage::matcher::Matcher;

/// Merges sample runs (each in time order) into one run in time order; where two runs hold the
/// same timestamp the earlier run's sample is kept, as Prometheus' chained series merge does
/// for overlapping blocks.
pub fn merge_samples(mut runs: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    if runs.len() == 1 {
        return runs.pop().unwrap_or_default();
    }
    runs.retain(|r| !r.is_empty());
    runs.sort_by_key(|r| r.first().map(|s| s.0));
    let disjoint = runs
        .windows(2)
        .all(|w| matches!((w[0].last(), w[1].first()), (Some(a), Some(b)) if a.0 < b.0));
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(runs.iter().map(Vec::len).sum());
    for r in runs {
        out.extend(r);
    }
    if !disjoint {
        // Overlapping blocks are rare (before vertical compaction); a stable sort keeps the
        // earlier run first among equal timestamps.
        out.sort_by_key(|s| s.0);
        out.dedup_by_key(|s| s.0);
    }
    out
}

/// How a block's external labels meet a query's matchers.
#[derive(Debug, PartialEq)]
pub enum ExternalMatch {
    /// Some matcher rejects the block's external labels: the block has no matching series.
    Excluded,
    /// The block may match; only these matchers need the index (those on external label
    /// names are already satisfied).
    Remaining(Vec<Matcher>),
}

/// Applies the matchers that name one of `external` labels to their values, as Thanos' store
/// does before it looks at a block's index.
pub fn match_external(external: &Labels, matchers: &[Matcher]) -> ExternalMatch {
    let mut remaining = Vec::with_capacity(matchers.len());
    for m in matchers {
        match external.get(m.name()) {
            Some(v) if !m.matches(v) => return ExternalMatch::Excluded,
            Some(_) => {}
            None => remaining.push(m.clone()),
        }
    }
    ExternalMatch::Remaining(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_runs_concatenate_in_time_order() {
        let merged = merge_samples(vec![vec![(30, 3.0), (40, 4.0)], vec![(10, 1.0), (20, 2.0)]]);
        assert_eq!(merged, vec![(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]);
    }

    #[test]
    fn overlapping_runs_drop_duplicate_timestamps() {
        let merged = merge_samples(vec![
            vec![(10, 1.0), (20, 2.0), (30, 3.0)],
            vec![(20, 9.0), (25, 2.5), (40, 4.0)],
        ]);
        assert_eq!(
            merged,
            vec![(10, 1.0), (20, 2.0), (25, 2.5), (30, 3.0), (40, 4.0)]
        );
    }

    #[test]
    fn empty_runs_are_ignored() {
        assert_eq!(merge_samples(vec![vec![], vec![(1, 1.0)]]), vec![(1, 1.0)]);
        assert!(merge_samples(vec![]).is_empty());
    }

    #[test]
    fn external_labels_satisfy_or_exclude_matchers() {
        let ext = Labels::from_pairs([("replica", "A")]);
        let on_ext = Matcher::equal("replica", "A");
        let on_series = Matcher::equal("__name__", "up");
        assert_eq!(
            match_external(&ext, &[on_ext, on_series.clone()]),
            ExternalMatch::Remaining(vec![on_series.clone()])
        );
        assert_eq!(
            match_external(&ext, &[Matcher::equal("replica", "B"), on_series]),
            ExternalMatch::Excluded
        );
    }
}
