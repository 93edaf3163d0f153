//! Checks over blocks that `strata tools bucket verify` runs: overlaps within a group, and each
//! block's files, index and chunk references.

use super::meta::BlockMeta;
use std::collections::BTreeMap;
use std::fmt;
use ulid::Ulid;

/// Two blocks of one group (external labels and resolution) whose time ranges overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The group's external labels, rendered `{a="b"}`.
    pub group: String,
    /// Resolution in ms.
    pub resolution: i64,
    /// The earlier block and its range.
    pub first: (Ulid, i64, i64),
    /// The block that starts before the earlier one ends.
    pub second: (Ulid, i64, i64),
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {} resolution {}: blocks {} [{}, {}) and {} [{}, {}) overlap",
            self.group,
            self.resolution,
            self.first.0,
            self.first.1,
            self.first.2,
            self.second.0,
            self.second.1,
            self.second.2
        )
    }
}

/// Every pair of overlapping blocks within a group of equal external labels and resolution.
pub fn find_overlaps(metas: &[BlockMeta]) -> Vec<Overlap> {
    let mut groups: BTreeMap<(BTreeMap<String, String>, i64), Vec<&BlockMeta>> = BTreeMap::new();
    for m in metas {
        groups
            .entry((m.external_labels(), m.resolution()))
            .or_default()
            .push(m);
    }
    let mut out = Vec::new();
    for ((labels, resolution), mut blocks) in groups {
        blocks.sort_by_key(|m| (m.min_time, m.max_time, m.ulid));
        let group = crate::labels::Labels::from(&labels).to_string();
        // Compare each block with every later one that starts before it ends; sorted by start,
        // the inner loop stops at the first that does not.
        for (i, a) in blocks.iter().enumerate() {
            for b in blocks[i + 1..].iter().take_while(|b| b.min_time < a.max_time) {
                out.push(Overlap {
                    group: group.clone(),
                    resolution,
                    first: (a.ulid, a.min_time, a.max_time),
                    second: (b.ulid, b.min_time, b.max_time),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u128, min: i64, max: i64, replica: &str) -> BlockMeta {
        let mut m = BlockMeta::new_level1(Ulid(id), min, max);
        m.thanos_mut().labels.insert("replica".into(), replica.into());
        m
    }

    #[test]
    fn finds_overlaps_only_within_a_group() {
        let metas = vec![
            meta(1, 0, 100, "a"),
            meta(2, 100, 200, "a"),  // touches, does not overlap
            meta(3, 150, 250, "a"),  // overlaps 2
            meta(4, 0, 1000, "b"),   // other group
            meta(5, 10, 20, "b"),    // inside 4
        ];
        let found = find_overlaps(&metas);
        let pairs: Vec<(u128, u128)> = found.iter().map(|o| (o.first.0 .0, o.second.0 .0)).collect();
        assert_eq!(pairs, vec![(2, 3), (4, 5)]);
        assert!(found[0].to_string().contains(r#"{replica="a"}"#));
    }
}
