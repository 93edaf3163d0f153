//! Checks over blocks that `strata tools bucket verify` runs: overlaps within a group, and each
//! block's files, index and chunk references.

use super::meta::BlockMeta;
use crate::downsample::{AggrChunk, AggrType, CHUNK_ENC_AGGR};
use std::collections::{BTreeMap, BTreeSet};
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
            for b in blocks[i + 1..]
                .iter()
                .take_while(|b| b.min_time < a.max_time)
            {
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

/// The overlap check of `strata tools bucket verify`: overlaps among the blocks without a
/// deletion mark, and how many marked blocks were left out. A marked block is already replaced
/// (a compaction's source, a duplicate, expired), so it overlapping its replacement is the
/// expected state until the delete delay passes; Thanos' verify skips such blocks too.
pub fn find_live_overlaps(metas: &[BlockMeta], marked: &BTreeSet<Ulid>) -> (Vec<Overlap>, usize) {
    let (skipped, live): (Vec<&BlockMeta>, Vec<&BlockMeta>) =
        metas.iter().partition(|m| marked.contains(&m.ulid));
    let live: Vec<BlockMeta> = live.into_iter().cloned().collect();
    (find_overlaps(&live), skipped.len())
}

/// At most this many issues are listed per block; the rest are counted.
const MAX_ISSUES_PER_BLOCK: usize = 50;

/// Checks one block in the bucket: its files against meta.json, the index (order, references,
/// postings), and every chunk (readable, CRC, samples inside the chunk's and the block's
/// time range), and the stats. Returns one line per problem; empty when the block is sound.
pub async fn verify_block(
    bucket: std::sync::Arc<dyn crate::bucket::Bucket>,
    meta: &BlockMeta,
) -> Vec<String> {
    let mut issues = check_files(bucket.as_ref(), meta).await;
    match super::reader::Block::open_bucket(bucket, meta.clone()).await {
        Ok(block) => issues.extend(check_contents(&block).await),
        Err(e) => issues.push(format!("cannot open: {e}")),
    }
    if issues.len() > MAX_ISSUES_PER_BLOCK {
        let more = issues.len() - MAX_ISSUES_PER_BLOCK;
        issues.truncate(MAX_ISSUES_PER_BLOCK);
        issues.push(format!("... and {more} more issues"));
    }
    issues
}

async fn check_files(bucket: &dyn crate::bucket::Bucket, meta: &BlockMeta) -> Vec<String> {
    let prefix = format!("{}/", meta.ulid);
    let present: BTreeMap<String, u64> = match bucket.list_recursive(&prefix).await {
        Ok(objects) => objects
            .into_iter()
            .filter_map(|o| Some((o.path.strip_prefix(&prefix)?.to_string(), o.size)))
            .collect(),
        Err(e) => return vec![format!("cannot list files: {e}")],
    };
    let mut issues = Vec::new();
    if !present.contains_key(super::reader::INDEX_FILENAME) {
        issues.push("missing file index".to_string());
    }
    if meta.stats.num_chunks > 0 && !present.keys().any(|p| p.starts_with("chunks/")) {
        issues.push("missing chunk segment files (chunks/*)".to_string());
    }
    let listed = meta
        .thanos
        .as_ref()
        .map(|t| t.files.as_slice())
        .unwrap_or(&[]);
    for file in listed {
        let Some(want) = file.size_bytes else {
            continue;
        };
        match present.get(&file.rel_path) {
            None => issues.push(format!(
                "missing file {} listed in meta.json",
                file.rel_path
            )),
            Some(&got) if got != want => issues.push(format!(
                "file {} is {got} bytes, meta.json says {want}",
                file.rel_path
            )),
            Some(_) => {}
        }
    }
    issues
}

/// The samples of a downsampled block's aggregate chunk as its count aggregate's (Thanos counts a
/// downsampled chunk's samples so), after checking that every aggregate it holds decodes.
fn aggregate_samples(data: bytes::Bytes) -> Result<Vec<(i64, f64)>, String> {
    let chunk = AggrChunk::from_bytes(data);
    let parts = chunk.parts().map_err(|e| e.to_string())?;
    for (aggr, part) in AggrType::ALL.iter().zip(parts.iter()) {
        if let Some(c) = part {
            if !c.encoding.is_histogram() {
                c.samples()
                    .map_err(|e| format!("{} aggregate: {e}", aggr.name()))?;
            }
        }
    }
    chunk.samples(AggrType::Count).map_err(|e| e.to_string())
}

async fn check_contents(block: &super::reader::Block) -> Vec<String> {
    let mut issues: Vec<String> = match block.index().verify().await {
        Ok(found) => found.into_iter().map(|i| format!("index: {i}")).collect(),
        Err(e) => return vec![format!("index: {e}")],
    };
    let refs = match block.index().all_postings().await {
        Ok(r) => r,
        Err(e) => {
            issues.push(format!("index: {e}"));
            return issues;
        }
    };
    let meta = block.meta();
    let (mut chunks, mut samples) = (0u64, 0u64);
    for r in &refs {
        let (labels, metas) = match block.index().series(*r).await {
            Ok(s) => s,
            Err(e) => {
                issues.push(format!("index: {e}"));
                continue;
            }
        };
        for m in &metas {
            chunks += 1;
            if m.min_time < meta.min_time || m.max_time >= meta.max_time {
                issues.push(format!(
                    "series {labels}: chunk [{}, {}] outside the block range [{}, {})",
                    m.min_time, m.max_time, meta.min_time, meta.max_time
                ));
            }
            let decoded = match block.chunks().chunk_record(m.chunk_ref).await {
                Ok((CHUNK_ENC_AGGR, data)) => aggregate_samples(data).map_err(|e| {
                    format!("series {labels}: aggregate chunk {:#x}: {e}", m.chunk_ref)
                }),
                Ok(_) => match block.chunk(m).await {
                    Ok(c) => block
                        .decode_chunk(&labels, m, &c)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match decoded {
                Ok(s) => {
                    samples += s.len() as u64;
                    let (first, last) = (s.first().map(|x| x.0), s.last().map(|x| x.0));
                    if first != Some(m.min_time) || last != Some(m.max_time) {
                        issues.push(format!(
                            "series {labels}: chunk samples span {first:?}..{last:?}, the index says [{}, {}]",
                            m.min_time, m.max_time
                        ));
                    }
                }
                Err(e) => issues.push(e),
            }
        }
    }
    let stats = &meta.stats;
    let counted = (refs.len() as u64, chunks, samples);
    let claimed = (stats.num_series, stats.num_chunks, stats.num_samples);
    if counted != claimed {
        issues.push(format!(
            "meta.json stats (series, chunks, samples) = {claimed:?}, the block holds {counted:?}"
        ));
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u128, min: i64, max: i64, replica: &str) -> BlockMeta {
        let mut m = BlockMeta::new_level1(Ulid(id), min, max);
        m.thanos_mut()
            .labels
            .insert("replica".into(), replica.into());
        m
    }

    #[test]
    fn finds_overlaps_only_within_a_group() {
        let metas = vec![
            meta(1, 0, 100, "a"),
            meta(2, 100, 200, "a"), // touches, does not overlap
            meta(3, 150, 250, "a"), // overlaps 2
            meta(4, 0, 1000, "b"),  // other group
            meta(5, 10, 20, "b"),   // inside 4
        ];
        let found = find_overlaps(&metas);
        let pairs: Vec<(u128, u128)> = found
            .iter()
            .map(|o| (o.first.0 .0, o.second.0 .0))
            .collect();
        assert_eq!(pairs, vec![(2, 3), (4, 5)]);
        assert!(found[0].to_string().contains(r#"{replica="a"}"#));
    }

    #[test]
    fn blocks_marked_for_deletion_are_left_out_of_overlaps_and_counted() {
        // Sources 1 and 2 were merged into 3 and marked; 4 overlaps 3 and is not marked.
        let metas = vec![
            meta(1, 0, 100, "a"),
            meta(2, 100, 200, "a"),
            meta(3, 0, 200, "a"),
            meta(4, 150, 300, "a"),
        ];
        let marked: BTreeSet<Ulid> = [Ulid(1), Ulid(2)].into();
        let (found, skipped) = find_live_overlaps(&metas, &marked);
        let pairs: Vec<(u128, u128)> = found
            .iter()
            .map(|o| (o.first.0 .0, o.second.0 .0))
            .collect();
        assert_eq!(pairs, vec![(3, 4)]);
        assert_eq!(skipped, 2);
        // Without marks every pair shows.
        let (all, none) = find_live_overlaps(&metas, &BTreeSet::new());
        assert_eq!((all.len(), none), (find_overlaps(&metas).len(), 0));
        assert!(all.len() > 1, "{all:?}");
    }
}
