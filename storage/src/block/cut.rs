//! Where Prometheus 2.42's head cuts a series into chunks, so that blocks Strata writes hold the
//! same chunks Prometheus would have written for the same samples.

use std::ops::Range;

/// Samples per chunk the head aims for.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// Prometheus' default chunk range: the 2h block duration.
pub const DEFAULT_CHUNK_RANGE_MS: i64 = 2 * 3600 * 1000;

/// End of the `width`-aligned range holding `t` (Go integer division, as Prometheus does it).
fn range_end(t: i64, width: i64) -> i64 {
    (t / width) * width + width
}

/// Once a chunk holds a quarter of its target, predicts an end time that spreads the remaining
/// samples of the range evenly over equally full chunks.
fn predicted_end(start: i64, cur: i64, max: i64) -> i64 {
    let n = (max - start) / ((cur - start + 1) * 4);
    if n <= 1 {
        max
    } else {
        start + (max - start) / n
    }
}

/// Splits strictly increasing timestamps into chunk index ranges the way the head appender does:
/// a chunk ends at the `chunk_range`-aligned boundary, at the end time predicted after 30 samples,
/// or at 240 samples.
pub fn chunk_ranges(timestamps: &[i64], chunk_range: i64) -> Vec<Range<usize>> {
    let chunk_range = chunk_range.max(1);
    let mut ranges = Vec::with_capacity(timestamps.len() / SAMPLES_PER_CHUNK + 1);
    let Some(&first) = timestamps.first() else {
        return ranges;
    };
    let (mut start, mut min_t) = (0usize, first);
    let mut next_at = range_end(first, chunk_range);
    for (i, &t) in timestamps.iter().enumerate().skip(1) {
        let n = i - start;
        if n == SAMPLES_PER_CHUNK / 4 {
            next_at = predicted_end(min_t, timestamps[i - 1], next_at);
        }
        if t >= next_at || n >= SAMPLES_PER_CHUNK * 2 {
            ranges.push(start..i);
            start = i;
            min_t = t;
            next_at = range_end(t, chunk_range);
        }
    }
    ranges.push(start..timestamps.len());
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(ts: &[i64], width: i64) -> Vec<usize> {
        chunk_ranges(ts, width).iter().map(|r| r.len()).collect()
    }

    #[test]
    fn matches_prometheus_on_300_samples_at_15s_from_an_unaligned_start() {
        // Observed with promtool 2.42: chunks of 143, 142 and 15 samples.
        let ts: Vec<i64> = (0..300).map(|i| 1_700_000_000_000 + i * 15_000).collect();
        assert_eq!(sizes(&ts, DEFAULT_CHUNK_RANGE_MS), vec![143, 142, 15]);
    }

    #[test]
    fn cuts_at_range_boundaries_and_at_twice_the_target() {
        let aligned: Vec<i64> = (0..480).map(|i| i * 15_000).collect();
        assert_eq!(
            sizes(&aligned, DEFAULT_CHUNK_RANGE_MS),
            vec![120, 120, 120, 120]
        );
        let dense: Vec<i64> = (0..500).collect();
        assert_eq!(
            sizes(&dense, DEFAULT_CHUNK_RANGE_MS),
            vec![120, 120, 120, 120, 20]
        );
        // Slow first samples predict the range end; a later burst is cut at 240 samples.
        let burst: Vec<i64> = (0..31)
            .map(|i| i * 60_000)
            .chain((1..300).map(|i| 1_800_000 + i))
            .collect();
        assert_eq!(sizes(&burst, DEFAULT_CHUNK_RANGE_MS), vec![240, 90]);
        assert!(chunk_ranges(&[], DEFAULT_CHUNK_RANGE_MS).is_empty());
        assert_eq!(sizes(&[5], DEFAULT_CHUNK_RANGE_MS), vec![1]);
    }
}
