//! One series' samples from several blocks into one time-ordered stream: what vertical
//! compaction does where blocks overlap.
//!
//! Without replica labels the samples are the sorted union, one sample per timestamp (the
//! sample of the block whose data starts first, as Prometheus keeps one). With replica labels the
//! blocks are replicas of one stream and the querier's penalty algorithm
//! ([`crate::dedup`], plain mode) picks one replica's samples at a time, so that two
//! Prometheus scraping the same target at shifted moments do not interleave. Plain mode
//! because the compactor cannot tell counters from gauges: counter-aware offsets would
//! change gauge values.

use crate::dedup::{dedup_samples, Mode};

/// How samples of one series from several blocks become one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Sorted union; at equal timestamps the sample of the part whose data starts first is kept.
    Union,
    /// Replica deduplication with the penalty algorithm.
    Dedup,
}

/// Merges the sample streams (each time-ordered) of one series.
pub fn merge_samples(mut parts: Vec<Vec<(i64, f64)>>, mode: MergeMode) -> Vec<(i64, f64)> {
    parts.retain(|p| !p.is_empty());
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    // Parts that do not overlap in time are concatenated as they are: deduplication would
    // pick the same samples, and this keeps the common case (adjacent blocks) cheap.
    parts.sort_by_key(|p| p[0].0);
    let disjoint = parts
        .windows(2)
        .all(|w| w[0].last().is_some_and(|l| l.0 < w[1][0].0));
    if disjoint {
        return parts.concat();
    }
    match mode {
        MergeMode::Dedup => dedup_samples(parts, Mode::Plain),
        MergeMode::Union => union(parts),
    }
}

fn union(parts: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    let mut all: Vec<(usize, i64, f64)> = parts
        .iter()
        .enumerate()
        .flat_map(|(k, p)| p.iter().map(move |&(t, v)| (k, t, v)))
        .collect();
    // Stable: at equal timestamps the lower part index stays first.
    all.sort_by_key(|&(k, t, _)| (t, k));
    all.dedup_by_key(|s| s.1);
    all.into_iter().map(|(_, t, v)| (t, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn adjacent_parts_are_concatenated_and_overlaps_keep_one_sample_per_timestamp() {
        let a = vec![(1, 1.0), (2, 2.0)];
        let b = vec![(3, 3.0)];
        assert_eq!(
            merge_samples(vec![b.clone(), a.clone()], MergeMode::Union),
            vec![(1, 1.0), (2, 2.0), (3, 3.0)]
        );
        let c = vec![(2, 20.0), (4, 4.0)];
        assert_eq!(
            merge_samples(vec![a, c], MergeMode::Union),
            vec![(1, 1.0), (2, 2.0), (4, 4.0)]
        );
    }

    #[test]
    fn dedup_takes_one_replica_at_a_time() {
        // Two replicas 15 s apart, scraping with a 1 s skew: the output must follow one
        // replica's rhythm, never alternate.
        let a: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000, i as f64)).collect();
        let b: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000 + 1000, i as f64)).collect();
        let out = merge_samples(vec![a.clone(), b], MergeMode::Dedup);
        assert_eq!(out, a);
        // A gap in replica a is filled from b.
        let a_gap: Vec<(i64, f64)> = a
            .iter()
            .copied()
            .filter(|s| s.0 < 30_000 || s.0 > 90_000)
            .collect();
        let b: Vec<(i64, f64)> = (0..10).map(|i| (i * 15_000 + 1000, i as f64)).collect();
        let out = merge_samples(vec![a_gap, b], MergeMode::Dedup);
        assert!(out.iter().any(|s| s.0 == 46_000), "{out:?}");
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
    }

    proptest! {
        #[test]
        fn union_of_random_overlapping_parts_is_the_sorted_union(
            parts in prop::collection::vec(
                prop::collection::btree_map(0i64..500, -1e6f64..1e6, 0..40), 0..5)
        ) {
            let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
            for p in parts.iter().rev() {
                expected.extend(p.iter().map(|(t, v)| (*t, *v)));
            }
            let input: Vec<Vec<(i64, f64)>> =
                parts.iter().map(|p| p.iter().map(|(t, v)| (*t, *v)).collect()).collect();
            let out = merge_samples(input, MergeMode::Union);
            let want: Vec<(i64, f64)> = expected.into_iter().collect();
            // Equal timestamps keep some part's sample; with concatenation or union the
            // timestamps must be exactly the union's, strictly increasing.
            prop_assert_eq!(out.iter().map(|s| s.0).collect::<Vec<_>>(),
                            want.iter().map(|s| s.0).collect::<Vec<_>>());
            for (t, v) in &out {
                prop_assert!(parts.iter().any(|p| p.get(t) == Some(v)));
            }
        }

        #[test]
        fn dedup_output_is_strictly_time_ordered_and_from_the_inputs(
            parts in prop::collection::vec(
                prop::collection::btree_map(0i64..100_000, -1e6f64..1e6, 0..40), 0..4)
        ) {
            let input: Vec<Vec<(i64, f64)>> =
                parts.iter().map(|p| p.iter().map(|(t, v)| (*t, *v)).collect()).collect();
            let out = merge_samples(input, MergeMode::Dedup);
            prop_assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
            for (t, v) in &out {
                prop_assert!(parts.iter().any(|p| p.get(t) == Some(v)));
            }
            if parts.iter().any(|p| !p.is_empty()) {
                prop_assert!(!out.is_empty());
            }
        }
    }
}
