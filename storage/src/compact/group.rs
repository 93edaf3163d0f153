//! Compaction groups: blocks of one stream (external labels) at one resolution, compacted
//! independently of every other group, as in Thanos' `DefaultGrouper`.

use crate::block::meta::BlockMeta;
use std::collections::BTreeMap;
use std::fmt;

/// A group: the external labels (replica labels removed) and the downsampling resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// Resolution in ms (0 raw, 300000, 3600000).
    pub resolution: i64,
    /// External labels without the replica labels.
    pub labels: BTreeMap<String, String>,
}

impl fmt::Display for GroupKey {
    /// `0@{cluster="eu",env="prod"}`: Thanos logs `resolution@hash`; the labels themselves
    /// say more to an operator.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{{", self.resolution)?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}}")
    }
}

impl GroupKey {
    /// The group of `meta` once `replica_labels` are removed from its external labels.
    pub fn of(meta: &BlockMeta, replica_labels: &[String]) -> Self {
        let mut labels = meta.external_labels();
        labels.retain(|k, _| !replica_labels.contains(k));
        GroupKey {
            resolution: meta.resolution(),
            labels,
        }
    }
}

/// Splits `metas` into groups, each sorted by min time (then ULID, for a stable order).
pub fn group_metas<'a>(
    metas: impl IntoIterator<Item = &'a BlockMeta>,
    replica_labels: &[String],
) -> BTreeMap<GroupKey, Vec<BlockMeta>> {
    let mut out: BTreeMap<GroupKey, Vec<BlockMeta>> = BTreeMap::new();
    for m in metas {
        out.entry(GroupKey::of(m, replica_labels))
            .or_default()
            .push(m.clone());
    }
    for v in out.values_mut() {
        v.sort_by_key(|m| (m.min_time, m.ulid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::meta;

    #[test]
    fn groups_by_labels_without_replica_and_by_resolution() {
        let a = meta(1, 0, 10, &[("cluster", "eu"), ("replica", "a")], 0);
        let b = meta(2, 0, 10, &[("cluster", "eu"), ("replica", "b")], 0);
        let c = meta(3, 0, 10, &[("cluster", "eu"), ("replica", "a")], 300_000);
        let d = meta(4, 0, 10, &[("cluster", "us"), ("replica", "a")], 0);
        let all = [a, b, c, d];
        let plain = group_metas(&all, &[]);
        assert_eq!(plain.len(), 4);
        let dedup = group_metas(&all, &["replica".to_string()]);
        assert_eq!(dedup.len(), 3);
        let eu_raw = GroupKey {
            resolution: 0,
            labels: [("cluster".to_string(), "eu".to_string())].into(),
        };
        assert_eq!(dedup[&eu_raw].len(), 2);
        assert_eq!(eu_raw.to_string(), r#"0@{cluster="eu"}"#);
    }
}
