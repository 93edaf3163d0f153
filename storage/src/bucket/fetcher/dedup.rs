//! Thanos' `DeduplicateFilter`: a block whose compaction sources (meta.json
//! `compaction.sources`) are all among another block's is a duplicate of that block's data, so
//! a reader that sees both a compacted block and its not yet deleted sources (the compactor
//! marks sources for deletion, and readers keep serving marked blocks for
//! `--ignore-deletion-marks-delay`) reads each sample once.
//!
//! As Thanos, blocks compete only inside one compaction group (external labels and
//! resolution: a downsampled block keeps its raw block's sources), and of blocks with the same
//! sources the lowest ULID stays.

use super::{Fetched, MetaFilter};
use crate::block::meta::BlockMeta;
use crate::bucket::{Bucket, BucketError};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use ulid::Ulid;

/// The reason a duplicate is excluded for (Thanos' `synced{state="duplicate"}`).
pub const DUPLICATE: &str = "duplicate";

/// Drops blocks whose sources another block of their group holds (reason `duplicate`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DeduplicateFilter;

#[async_trait]
impl MetaFilter for DeduplicateFilter {
    async fn filter(&self, _: &dyn Bucket, fetched: &mut Fetched) -> Result<(), BucketError> {
        for id in duplicates(fetched.metas.values()) {
            fetched.exclude(id, DUPLICATE);
        }
        Ok(())
    }
}

/// One block's place in the comparison: its sources (itself when meta.json lists none).
struct Entry {
    id: Ulid,
    sources: BTreeSet<Ulid>,
}

impl Entry {
    /// Whether `self` holds every source of `other` and wins over it: more sources, or the
    /// same ones and a lower ULID.
    fn covers(&self, other: &Entry) -> bool {
        self.id != other.id
            && other.sources.is_subset(&self.sources)
            && (self.sources.len() > other.sources.len() || self.id < other.id)
    }
}

/// The blocks of `metas` whose sources another block of the same group (external labels and
/// resolution) holds, sorted. Only blocks sharing a source are compared, so a bucket of
/// uncompacted blocks costs one look-up per block.
pub fn duplicates<'a>(metas: impl IntoIterator<Item = &'a BlockMeta>) -> Vec<Ulid> {
    type Group = (i64, BTreeMap<String, String>);
    let mut groups: HashMap<Group, Vec<Entry>> = HashMap::new();
    for m in metas {
        let mut sources: BTreeSet<Ulid> = m.compaction.sources.iter().copied().collect();
        if sources.is_empty() {
            sources.insert(m.ulid);
        }
        groups
            .entry((m.resolution(), m.external_labels()))
            .or_default()
            .push(Entry {
                id: m.ulid,
                sources,
            });
    }
    let mut out = Vec::new();
    for entries in groups.values() {
        let mut holders: HashMap<Ulid, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            for s in &e.sources {
                holders.entry(*s).or_default().push(i);
            }
        }
        for e in entries {
            // A block covering `e` holds all of its sources, the first one among them.
            let Some(first) = e.sources.first() else {
                continue;
            };
            let covered = holders
                .get(first)
                .is_some_and(|hs| hs.iter().any(|&h| entries[h].covers(e)));
            if covered {
                out.push(e.id);
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::meta::ThanosMeta;

    fn block(id: u128, sources: &[u128]) -> BlockMeta {
        let mut m = BlockMeta::new_level1(Ulid(id), 0, 10);
        m.compaction.sources = sources.iter().map(|s| Ulid(*s)).collect();
        m
    }

    fn with_labels(mut m: BlockMeta, region: &str, resolution: i64) -> BlockMeta {
        let mut t = ThanosMeta::default();
        t.labels.insert("region".into(), region.into());
        t.downsample.resolution = resolution;
        m.thanos = Some(t);
        m
    }

    fn dups(metas: &[BlockMeta]) -> Vec<u128> {
        duplicates(metas).into_iter().map(|u| u.0).collect()
    }

    #[test]
    fn sources_nested_in_a_compacted_block_are_duplicates() {
        // 1 and 2 merged into 10, then 10 and 3 into 20: every block but 20 is inside it.
        let metas = [
            block(1, &[1]),
            block(2, &[2]),
            block(3, &[3]),
            block(10, &[1, 2]),
            block(20, &[1, 2, 3]),
        ];
        assert_eq!(dups(&metas), vec![1, 2, 3, 10]);
        // Without the top block, 10 covers 1 and 2 and 3 stands alone.
        assert_eq!(dups(&metas[..4]), vec![1, 2]);
    }

    #[test]
    fn of_blocks_with_identical_sources_the_lowest_ulid_stays() {
        let metas = [block(30, &[1, 2]), block(31, &[1, 2]), block(32, &[2, 1])];
        assert_eq!(dups(&metas), vec![31, 32]);
    }

    #[test]
    fn partly_overlapping_sources_keep_both_blocks() {
        let metas = [block(10, &[1, 2]), block(11, &[2, 3]), block(4, &[4])];
        assert!(dups(&metas).is_empty());
    }

    #[test]
    fn only_blocks_of_one_group_compete() {
        // Same sources, but other external labels or another resolution: not duplicates.
        let metas = [
            with_labels(block(10, &[1, 2]), "eu", 0),
            with_labels(block(1, &[1]), "us", 0),
            with_labels(block(11, &[1, 2]), "eu", 300_000),
            with_labels(block(2, &[2]), "eu", 0),
        ];
        assert_eq!(dups(&metas), vec![2]);
    }

    #[test]
    fn a_block_without_sources_counts_as_its_own_source() {
        let metas = [block(5, &[]), block(6, &[])];
        assert!(dups(&metas).is_empty());
        let metas = [block(5, &[]), block(10, &[5, 6])];
        assert_eq!(dups(&metas), vec![5]);
    }

    #[tokio::test]
    async fn the_filter_excludes_duplicates_with_their_reason() {
        let mut fetched = Fetched::default();
        for m in [block(1, &[1]), block(2, &[2]), block(10, &[1, 2])] {
            fetched.metas.insert(m.ulid, m);
        }
        let bucket = crate::bucket::ObjectStoreBucket::in_memory();
        DeduplicateFilter
            .filter(&bucket, &mut fetched)
            .await
            .expect("no bucket access");
        assert_eq!(
            fetched.metas.keys().copied().collect::<Vec<_>>(),
            [Ulid(10)]
        );
        assert_eq!(fetched.excluded[&Ulid(1)], DUPLICATE);
        assert_eq!(fetched.excluded[&Ulid(2)], DUPLICATE);
    }
}
