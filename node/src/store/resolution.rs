//! Which blocks answer a request for downsampled data (Thanos' `bucketBlockSet.getFor`): per
//! time range the coarsest blocks whose resolution is at most the request's
//! `max_resolution_window`, gaps between them filled with finer blocks, recursively. The store
//! gateway and the embedded querier both choose with it, so that they read the same blocks.

use storage::labels::Labels;

/// A block as the choice sees it: `[min_time, max_time)` and resolution (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First timestamp (inclusive).
    pub min_time: i64,
    /// End (exclusive).
    pub max_time: i64,
    /// 0 raw, 300000 for 5m, 3600000 for 1h.
    pub resolution: i64,
}

/// Indexes of the `blocks` (of one external label set) that answer `[mint, maxt]` with at most
/// `max_resolution` ms between samples, in Thanos' order. A window of 0 selects raw blocks
/// only; overlapping blocks of one resolution are all kept.
pub fn get_for(blocks: &[Span], mint: i64, maxt: i64, max_resolution: i64) -> Vec<usize> {
    let mut resolutions: Vec<i64> = blocks.iter().map(|b| b.resolution).collect();
    resolutions.sort_unstable_by(|a, b| b.cmp(a));
    resolutions.dedup();
    let Some(first) = resolutions.iter().position(|&r| r <= max_resolution) else {
        return Vec::new();
    };
    let mut by_res: Vec<Vec<usize>> = resolutions
        .iter()
        .map(|&r| {
            (0..blocks.len())
                .filter(|&i| blocks[i].resolution == r)
                .collect()
        })
        .collect();
    for level in &mut by_res {
        level.sort_by_key(|&i| (blocks[i].min_time, blocks[i].max_time));
    }
    let mut out = Vec::new();
    fill(blocks, &by_res, first, mint, maxt, &mut out);
    out
}

/// [`get_for`] over the blocks of every external label set: each set chooses on its own, as
/// Thanos keeps one block set per label set. `of` gives a block's label set and span; the
/// answer is indexes into `blocks`, ascending.
pub fn get_for_each_set<'a, T>(
    blocks: &'a [T],
    of: impl Fn(&'a T) -> (&'a Labels, Span),
    mint: i64,
    maxt: i64,
    max_resolution: i64,
) -> Vec<usize> {
    let mut by_labels: std::collections::BTreeMap<&Labels, (Vec<usize>, Vec<Span>)> =
        std::collections::BTreeMap::new();
    for (i, b) in blocks.iter().enumerate() {
        let (labels, span) = of(b);
        let set = by_labels.entry(labels).or_default();
        set.0.push(i);
        set.1.push(span);
    }
    let mut out: Vec<usize> = by_labels
        .values()
        .flat_map(|(indexes, spans)| {
            get_for(spans, mint, maxt, max_resolution)
                .into_iter()
                .map(|k| indexes[k])
        })
        .collect();
    out.sort_unstable();
    out
}

fn fill(
    blocks: &[Span],
    by_res: &[Vec<usize>],
    level: usize,
    mint: i64,
    maxt: i64,
    out: &mut Vec<usize>,
) {
    if mint > maxt {
        return;
    }
    let mut start = mint;
    for &i in &by_res[level] {
        let b = blocks[i];
        if b.max_time <= mint {
            continue;
        }
        if b.min_time > maxt {
            break;
        }
        if level + 1 < by_res.len() {
            fill(blocks, by_res, level + 1, start, b.min_time - 1, out);
        }
        out.push(i);
        start = b.max_time;
    }
    if level + 1 < by_res.len() {
        fill(blocks, by_res, level + 1, start, maxt, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M5: i64 = 300_000;

    fn span(min_h: i64, max_h: i64, resolution: i64) -> Span {
        Span {
            min_time: min_h * H,
            max_time: max_h * H,
            resolution,
        }
    }

    #[test]
    fn a_raw_request_reads_raw_blocks_only() {
        let blocks = [
            span(0, 48, M5),
            span(0, 2, 0),
            span(2, 4, 0),
            span(0, 240, H),
        ];
        assert_eq!(get_for(&blocks, 0, 4 * H, 0), vec![1, 2]);
    }

    #[test]
    fn the_coarsest_allowed_resolution_wins_and_gaps_are_filled_with_finer_blocks() {
        // 5m covers [0, 48h); raw covers [0, 2h) and [48h, 50h); 1h covers [0, 240h).
        let blocks = [
            span(0, 48, M5),
            span(0, 2, 0),
            span(48, 50, 0),
            span(0, 240, H),
        ];
        assert_eq!(get_for(&blocks, 0, 50 * H - 1, M5), vec![0, 2]);
        assert_eq!(get_for(&blocks, 0, 50 * H - 1, H), vec![3]);
        // A window between resolutions takes the coarsest not above it.
        assert_eq!(get_for(&blocks, 0, 50 * H - 1, 30 * 60_000), vec![0, 2]);
    }

    #[test]
    fn a_gap_before_and_between_coarse_blocks_is_filled_from_finer_levels() {
        // 5m blocks at [10h, 20h) and [30h, 40h); raw everywhere in 2h blocks.
        let mut blocks = vec![span(10, 20, M5), span(30, 40, M5)];
        blocks.extend((0..25).map(|k| span(2 * k, 2 * k + 2, 0)));
        let got = get_for(&blocks, 0, 50 * H - 1, M5);
        let spans: Vec<(i64, i64, i64)> = got
            .iter()
            .map(|&i| {
                (
                    blocks[i].min_time / H,
                    blocks[i].max_time / H,
                    blocks[i].resolution,
                )
            })
            .collect();
        let mut want = vec![];
        want.extend((0..5).map(|k| (2 * k, 2 * k + 2, 0)));
        want.push((10, 20, M5));
        want.extend((10..15).map(|k| (2 * k, 2 * k + 2, 0)));
        want.push((30, 40, M5));
        want.extend((20..25).map(|k| (2 * k, 2 * k + 2, 0)));
        assert_eq!(spans, want);
    }

    #[test]
    fn each_external_label_set_chooses_its_own_blocks() {
        // Set a has 5m data for [0, 48h); set b has raw data only: b's raw blocks are read
        // even though a's 5m block covers their range.
        let a = Labels::from_pairs([("replica", "a")]);
        let b = Labels::from_pairs([("replica", "b")]);
        let blocks = [
            (&a, span(0, 2, 0)),
            (&b, span(0, 2, 0)),
            (&a, span(0, 48, M5)),
            (&b, span(2, 4, 0)),
        ];
        let chosen = |window| get_for_each_set(&blocks, |x| (x.0, x.1), 0, 4 * H - 1, window);
        assert_eq!(chosen(M5), vec![1, 2, 3]);
        assert_eq!(chosen(0), vec![0, 1, 3]);
    }

    #[test]
    fn nothing_at_or_below_the_window_selects_nothing_and_empty_ranges_too() {
        let blocks = [span(0, 48, M5), span(0, 240, H)];
        assert!(get_for(&blocks, 0, 10 * H, 0).is_empty());
        assert!(get_for(&blocks, 10 * H, 0, H).is_empty());
        assert!(get_for(&[], 0, 10, H).is_empty());
    }
}
