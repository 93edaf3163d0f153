//! Retention per resolution (Thanos' `--retention.resolution-raw|5m|1h`): a block whose
//! max time is older than now minus its resolution's retention is marked for deletion. It
//! runs at the start of every pass, so a compaction backlog never holds it up.

use crate::block::meta::{BlockMeta, RESOLUTION_1H, RESOLUTION_5M, RESOLUTION_RAW};

/// Retention by resolution in ms; 0 keeps forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Raw blocks.
    pub raw_ms: i64,
    /// 5m-downsampled blocks.
    pub five_m_ms: i64,
    /// 1h-downsampled blocks.
    pub one_h_ms: i64,
}

impl Retention {
    /// The retention of `resolution`; 0 (forever) for a resolution Thanos does not know.
    pub fn for_resolution(&self, resolution: i64) -> i64 {
        match resolution {
            RESOLUTION_RAW => self.raw_ms,
            RESOLUTION_5M => self.five_m_ms,
            RESOLUTION_1H => self.one_h_ms,
            _ => 0,
        }
    }
}

/// The blocks past their retention at `now_ms`.
pub fn expired<'a>(
    metas: impl IntoIterator<Item = &'a BlockMeta>,
    retention: &Retention,
    now_ms: i64,
) -> Vec<&'a BlockMeta> {
    metas
        .into_iter()
        .filter(|m| {
            let keep = retention.for_resolution(m.resolution());
            keep > 0 && m.max_time.saturating_add(keep) < now_ms
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::meta;

    #[test]
    fn expires_by_max_time_per_resolution_and_zero_keeps_forever() {
        let day = 86_400_000;
        let metas = [
            meta(1, 0, day, &[], RESOLUTION_RAW),
            meta(2, 9 * day, 10 * day, &[], RESOLUTION_RAW),
            meta(3, 0, day, &[], RESOLUTION_5M),
            meta(4, 0, day, &[], RESOLUTION_1H),
        ];
        let r = Retention {
            raw_ms: 5 * day,
            five_m_ms: 20 * day,
            one_h_ms: 0,
        };
        let now = 11 * day;
        let ids: Vec<u128> = expired(&metas, &r, now).iter().map(|m| m.ulid.0).collect();
        assert_eq!(ids, vec![1]);
        let ids: Vec<u128> = expired(&metas, &r, 30 * day)
            .iter()
            .map(|m| m.ulid.0)
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }
}
