//! Which blocks get downsampled, by Thanos' rules (`cmd/thanos/downsample.go`
//! `downsampleBucket`): a raw block spanning at least 40 h whose sources are not all in a 5m
//! block yet goes to 5m; a 5m block spanning at least 10 d whose sources are not all in a 1h
//! block yet goes to 1h. The span is `maxTime - minTime`, not the block's age.

use super::{RES_1H, RES_1H_MIN_SPAN, RES_5M, RES_5M_MIN_SPAN, RES_RAW};
use crate::block::BlockMeta;
use std::collections::HashSet;
use ulid::Ulid;

/// One block to downsample and the resolution to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownsampleTask {
    /// The input block.
    pub block: Ulid,
    /// Its resolution (ms).
    pub from_resolution: i64,
    /// The output's resolution (ms): [`RES_5M`] or [`RES_1H`].
    pub to_resolution: i64,
}

/// A block whose resolution is none of 0, 5m and 1h.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("block {block}: unexpected downsampling resolution {resolution} (expected 0, 300000 or 3600000)")]
pub struct PlanError {
    /// The block.
    pub block: Ulid,
    /// Its `thanos.downsample.resolution`.
    pub resolution: i64,
}

/// The downsampling work for the blocks in `metas` (already filtered: no deletion- or
/// no-downsample-marked blocks), in ULID order as Thanos hands them out. One pass plans only
/// one step: a new 5m block is planned for 1h in a later pass, as in Thanos.
pub fn plan_downsampling(metas: &[BlockMeta]) -> Result<Vec<DownsampleTask>, PlanError> {
    let mut in_5m = HashSet::new();
    let mut in_1h = HashSet::new();
    for m in metas {
        match m.resolution() {
            RES_RAW => {}
            RES_5M => in_5m.extend(m.compaction.sources.iter().copied()),
            RES_1H => in_1h.extend(m.compaction.sources.iter().copied()),
            resolution => {
                return Err(PlanError {
                    block: m.ulid,
                    resolution,
                })
            }
        }
    }
    let mut sorted: Vec<&BlockMeta> = metas.iter().collect();
    sorted.sort_by_key(|m| m.ulid);
    let mut out = Vec::new();
    for m in sorted {
        let (done, min_span, to) = match m.resolution() {
            RES_RAW => (&in_5m, RES_5M_MIN_SPAN, RES_5M),
            RES_5M => (&in_1h, RES_1H_MIN_SPAN, RES_1H),
            _ => continue,
        };
        // A block with no recorded sources counts as not yet downsampled, as in Thanos.
        let missing = m.compaction.sources.iter().any(|s| !done.contains(s));
        if !missing || m.max_time.saturating_sub(m.min_time) < min_span {
            continue;
        }
        out.push(DownsampleTask {
            block: m.ulid,
            from_resolution: m.resolution(),
            to_resolution: to,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::block::meta::ThanosMeta;

    const H: i64 = 3_600_000;

    fn meta(id: u128, res: i64, span: i64, sources: &[u128]) -> BlockMeta {
        let mut m = BlockMeta::new_level1(Ulid(id), 1_000, 1_000 + span);
        m.compaction.sources = sources.iter().map(|&s| Ulid(s)).collect();
        let mut t = ThanosMeta::default();
        t.downsample.resolution = res;
        m.thanos = Some(t);
        m
    }

    #[test]
    fn raw_blocks_spanning_40h_go_to_5m_shorter_ones_wait() {
        let metas = [
            meta(3, 0, 40 * H, &[1, 2]),
            meta(4, 0, 40 * H - 1, &[5]),
            meta(6, 0, 48 * H, &[6]),
        ];
        let plan = plan_downsampling(&metas).unwrap();
        assert_eq!(
            plan,
            vec![
                DownsampleTask {
                    block: Ulid(3),
                    from_resolution: 0,
                    to_resolution: RES_5M
                },
                DownsampleTask {
                    block: Ulid(6),
                    from_resolution: 0,
                    to_resolution: RES_5M
                },
            ]
        );
    }

    #[test]
    fn blocks_whose_sources_are_all_downsampled_are_skipped() {
        let metas = [
            meta(3, 0, 48 * H, &[1, 2]),
            meta(9, RES_5M, 48 * H, &[1, 2]),
            // Only one of its sources is in a 5m block: still planned.
            meta(4, 0, 48 * H, &[7, 8]),
            meta(10, RES_5M, 48 * H, &[7]),
        ];
        let plan = plan_downsampling(&metas).unwrap();
        assert_eq!(
            plan.iter().map(|t| t.block).collect::<Vec<_>>(),
            vec![Ulid(4)]
        );
    }

    #[test]
    fn five_minute_blocks_spanning_10d_go_to_1h_once() {
        let metas = [
            meta(20, RES_5M, 240 * H, &[1, 2]),
            meta(21, RES_5M, 240 * H - 1, &[3]),
            meta(22, RES_5M, 300 * H, &[4]),
            meta(23, RES_1H, 300 * H, &[4]),
            meta(24, RES_1H, 300 * H, &[5]),
        ];
        let plan = plan_downsampling(&metas).unwrap();
        assert_eq!(
            plan,
            vec![DownsampleTask {
                block: Ulid(20),
                from_resolution: RES_5M,
                to_resolution: RES_1H
            }]
        );
    }

    #[test]
    fn an_unknown_resolution_is_an_error_naming_the_block() {
        let metas = [meta(3, 0, 48 * H, &[1]), meta(5, 60_000, 48 * H, &[2])];
        let e = plan_downsampling(&metas).unwrap_err();
        assert_eq!(
            e,
            PlanError {
                block: Ulid(5),
                resolution: 60_000
            }
        );
        assert!(e.to_string().contains("60000"), "{e}");
    }
}
