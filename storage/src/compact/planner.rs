//! What to compact next in one group: Thanos' default planner (`pkg/compact/planner.go`, itself
//! Prometheus' TSDB planner on metas), and the superseded blocks a crash can leave behind.

use crate::block::meta::BlockMeta;
use std::collections::{BTreeMap, BTreeSet};
use ulid::Ulid;

const HOUR_MS: i64 = 3600 * 1000;

/// Thanos' compaction levels: 2h blocks merge into 8h, then 2d, then 14d.
pub const DEFAULT_RANGES: [i64; 4] = [2 * HOUR_MS, 8 * HOUR_MS, 48 * HOUR_MS, 336 * HOUR_MS];

/// The next blocks of a group to merge into one, in min-time order; empty when there is
/// nothing to do. `metas` must be sorted by min time; `no_compact` holds blocks marked
/// no-compact, which are never chosen.
///
/// As Thanos: overlapping blocks first (vertical compaction); else the newest block is left
/// out (it may still be joined by blocks of its range), and the first range of the smallest
/// level above the first that is complete, or lies wholly before the newest block, is chosen,
/// split around no-compact blocks so no gap appears; else a big block with over 5%
/// tombstones is rewritten alone.
pub fn plan(metas: &[BlockMeta], no_compact: &BTreeSet<Ulid>, ranges: &[i64]) -> Vec<BlockMeta> {
    let Some(newest) = metas.last() else {
        return Vec::new();
    };
    let mut not_excluded: Vec<&BlockMeta> = metas
        .iter()
        .filter(|m| !no_compact.contains(&m.ulid))
        .collect();
    let overlapping = select_overlapping(&not_excluded);
    if !overlapping.is_empty() {
        return overlapping.into_iter().cloned().collect();
    }
    if !no_compact.contains(&newest.ulid) {
        not_excluded.pop();
    }
    let all_but_newest: Vec<&BlockMeta> = metas[..metas.len() - 1].iter().collect();
    let selected = select_metas(ranges, no_compact, &all_but_newest);
    if !selected.is_empty() {
        return selected.into_iter().cloned().collect();
    }
    let Some(&mid) = ranges.get(ranges.len() / 2) else {
        return Vec::new();
    };
    for m in not_excluded.iter().rev() {
        if m.max_time - m.min_time < mid {
            break;
        }
        if m.stats.num_tombstones as f64 / (m.stats.num_series + 1) as f64 > 0.05 {
            return vec![(*m).clone()];
        }
    }
    Vec::new()
}

fn select_metas<'a>(
    ranges: &[i64],
    no_compact: &BTreeSet<Ulid>,
    metas: &[&'a BlockMeta],
) -> Vec<&'a BlockMeta> {
    let (Some(last), true) = (metas.last(), ranges.len() >= 2) else {
        return Vec::new();
    };
    let high_time = last.min_time;
    for &iv in &ranges[1..] {
        'parts: for p in split_by_range(metas, iv) {
            if p.iter().any(|m| m.compaction.failed) || p.len() < 2 {
                continue 'parts;
            }
            let (mint, maxt) = (p[0].min_time, p[p.len() - 1].max_time);
            if maxt - mint != iv && maxt > high_time {
                continue;
            }
            let mut last_excluded = 0;
            for (i, m) in p.iter().enumerate() {
                if !no_compact.contains(&m.ulid) {
                    continue;
                }
                if i - last_excluded > 1 {
                    return p[last_excluded..i].to_vec();
                }
                last_excluded = i + 1;
            }
            if p.len().saturating_sub(last_excluded) > 1 {
                return p[last_excluded..].to_vec();
            }
        }
    }
    Vec::new()
}

/// The first run of blocks that overlap in time, in the order given (sorted by min time).
pub fn select_overlapping<'a>(metas: &[&'a BlockMeta]) -> Vec<&'a BlockMeta> {
    let mut out = Vec::new();
    let Some(first) = metas.first() else {
        return out;
    };
    let mut global_max = first.max_time;
    for (i, m) in metas.iter().enumerate().skip(1) {
        if m.min_time < global_max {
            if out.is_empty() {
                out.push(metas[i - 1]);
            }
            out.push(*m);
        } else if !out.is_empty() {
            break;
        }
        global_max = global_max.max(m.max_time);
    }
    out
}

/// Splits blocks sorted by min time into runs that fit in `tr`-aligned ranges; a block that
/// fits in no such range is left out.
fn split_by_range<'a>(metas: &[&'a BlockMeta], tr: i64) -> Vec<Vec<&'a BlockMeta>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < metas.len() {
        let m = metas[i];
        let t0 = tr * m.min_time.div_euclid(tr);
        if m.max_time > t0 + tr {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < metas.len() && metas[i].max_time <= t0 + tr {
            group.push(metas[i]);
            i += 1;
        }
        if !group.is_empty() {
            out.push(group);
        }
    }
    out
}

/// Blocks whose sources are all inside another block's sources: the output of a merge is up
/// but a crash kept its sources from being marked, or two outputs of the same sources exist
/// (a deposed worker's duplicate). Of blocks with equal sources the oldest ULID is kept.
pub fn superseded(metas: &[BlockMeta]) -> Vec<Ulid> {
    superseded_keeping(metas, &BTreeSet::new())
}

/// [`superseded`], except that of blocks with equal sources one in `keep` (an output whose
/// completion a coordinator committed) wins over the others; else the oldest ULID.
pub fn superseded_keeping(metas: &[BlockMeta], keep: &BTreeSet<Ulid>) -> Vec<Ulid> {
    // A downsampled block has its raw block's sources: only blocks of one resolution compete.
    let sets: BTreeMap<Ulid, (i64, BTreeSet<Ulid>)> = metas
        .iter()
        .map(|m| {
            let sources = m.compaction.sources.iter().copied().collect();
            (m.ulid, (m.resolution(), sources))
        })
        .collect();
    // Of equal source sets, the survivor: a kept block first, then the lowest ULID.
    let rank = |id: &Ulid| (!keep.contains(id), *id);
    let mut out = Vec::new();
    for (id, (res, own)) in &sets {
        if own.is_empty() {
            continue;
        }
        let covered = sets.iter().any(|(other, (their_res, theirs))| {
            other != id
                && res == their_res
                && own.is_subset(theirs)
                && (own.len() < theirs.len() || rank(other) < rank(id))
        });
        if covered {
            out.push(*id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::meta;

    const H: i64 = HOUR_MS;

    fn ids(plan: &[BlockMeta]) -> Vec<u128> {
        plan.iter().map(|m| m.ulid.0).collect()
    }

    fn twohour(n: i64) -> Vec<BlockMeta> {
        (0..n)
            .map(|i| meta(i as u128 + 1, i * 2 * H, (i + 1) * 2 * H, &[], 0))
            .collect()
    }

    #[test]
    fn leaves_the_newest_block_and_an_unfilled_range_alone() {
        // Three 2h blocks of one 8h range: the range is not full and its blocks are not all
        // before the newest, so nothing is done yet.
        assert!(plan(&twohour(3), &BTreeSet::new(), &DEFAULT_RANGES).is_empty());
        // Four fill the 8h range, but the fourth is the newest and is held back.
        assert!(plan(&twohour(4), &BTreeSet::new(), &DEFAULT_RANGES).is_empty());
        // With a fifth block the first 8h range is complete.
        assert_eq!(
            ids(&plan(&twohour(5), &BTreeSet::new(), &DEFAULT_RANGES)),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn compacts_a_partial_range_that_lies_before_the_newest_block() {
        // Blocks 1-2 in [0, 8h), block 3 in the next range: range one will get no more data.
        let metas = vec![
            meta(1, 0, 2 * H, &[], 0),
            meta(2, 2 * H, 4 * H, &[], 0),
            meta(3, 8 * H, 10 * H, &[], 0),
            meta(4, 10 * H, 12 * H, &[], 0),
        ];
        assert_eq!(
            ids(&plan(&metas, &BTreeSet::new(), &DEFAULT_RANGES)),
            vec![1, 2]
        );
    }

    #[test]
    fn overlapping_blocks_come_first_even_the_newest() {
        let metas = vec![
            meta(1, 0, 2 * H, &[], 0),
            meta(2, 2 * H, 4 * H, &[], 0),
            meta(3, 2 * H, 4 * H, &[], 0),
        ];
        assert_eq!(
            ids(&plan(&metas, &BTreeSet::new(), &DEFAULT_RANGES)),
            vec![2, 3]
        );
        let marked: BTreeSet<Ulid> = [Ulid(3)].into();
        assert!(plan(&metas, &marked, &DEFAULT_RANGES).is_empty());
    }

    #[test]
    fn splits_a_range_around_no_compact_blocks() {
        let mut metas = twohour(4);
        metas.extend(twohour(5).into_iter().skip(4));
        // Block 2 is marked: 1 alone is no plan, 3-4 are.
        let marked: BTreeSet<Ulid> = [Ulid(2)].into();
        assert_eq!(ids(&plan(&metas, &marked, &DEFAULT_RANGES)), vec![3, 4]);
        let marked: BTreeSet<Ulid> = [Ulid(3)].into();
        assert_eq!(ids(&plan(&metas, &marked, &DEFAULT_RANGES)), vec![1, 2]);
    }

    #[test]
    fn climbs_levels_once_lower_ones_are_done() {
        // Six 8h blocks and one newer one: [0, 48h) is full at level 2d.
        let mut metas: Vec<BlockMeta> = (0..6)
            .map(|i| meta(i + 1, i as i64 * 8 * H, (i as i64 + 1) * 8 * H, &[], 0))
            .collect();
        metas.push(meta(7, 48 * H, 50 * H, &[], 0));
        assert_eq!(
            ids(&plan(&metas, &BTreeSet::new(), &DEFAULT_RANGES)),
            vec![1, 2, 3, 4, 5, 6]
        );
        // A lone block before the newest is no plan.
        let lone = vec![meta(1, H, 3 * H, &[], 0), meta(2, 3 * H, 9 * H, &[], 0)];
        assert!(plan(&lone, &BTreeSet::new(), &DEFAULT_RANGES).is_empty());
    }

    #[test]
    fn superseded_blocks_are_those_whose_sources_another_block_holds() {
        let mut out = meta(10, 0, 4 * H, &[], 0);
        out.compaction.sources = vec![Ulid(1), Ulid(2)];
        let mut dup = out.clone();
        dup.ulid = Ulid(11);
        let metas = vec![
            meta(1, 0, 2 * H, &[], 0),
            meta(2, 2 * H, 4 * H, &[], 0),
            meta(3, 4 * H, 6 * H, &[], 0),
            out,
            dup,
        ];
        // The newer duplicate goes (a deposed worker's second output), unless it is the one
        // whose completion was committed.
        assert_eq!(superseded(&metas), vec![Ulid(1), Ulid(2), Ulid(11)]);
        assert_eq!(
            superseded_keeping(&metas, &[Ulid(11)].into()),
            vec![Ulid(1), Ulid(2), Ulid(10)]
        );
    }
}
