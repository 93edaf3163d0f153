//! N blocks into one: series streamed in label order from every input (a batch of series per
//! block in memory at a time), samples of equal series merged by [`super::vertical`], chunks
//! written as they come. The output's index entries are what stays in memory, as in
//! Prometheus' compactor.

use super::vertical::{merge_samples, MergeMode};
use super::SOURCE_COMPACTOR;
use crate::block::error::BlockError;
use crate::block::meta::{BlockDesc, BlockMeta, ThanosMeta};
use crate::block::{Block, BlockWriter, BlockWriterOptions, SeriesSamples};
use crate::labels::Labels;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ulid::Ulid;

/// Series read from one input block at a time.
const BATCH_SERIES: usize = 256;

/// Why a merge failed: an input that cannot be read (the caller marks it), or the output.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Input block `block` could not be read.
    #[error("reading source block {block}: {source}")]
    Source {
        /// The unreadable block.
        block: Ulid,
        /// What went wrong.
        #[source]
        source: BlockError,
    },
    /// The output block could not be written.
    #[error("writing the compacted block: {0}")]
    Output(#[source] BlockError),
}

/// The merged block on local disk, ready for upload.
#[derive(Debug)]
pub struct MergeOutput {
    /// Its directory, named after its ULID.
    pub dir: PathBuf,
    /// Its meta.json as written.
    pub meta: BlockMeta,
}

/// One input block's series, read a batch at a time in label order.
struct Cursor {
    block: Arc<Block>,
    refs: Vec<u32>,
    next: usize,
    buf: VecDeque<SeriesSamples>,
    last: Option<Labels>,
}

impl Cursor {
    async fn open(block: Arc<Block>) -> Result<Self, MergeError> {
        let id = block.meta().ulid;
        let refs = block
            .index()
            .all_postings()
            .await
            .map_err(|source| MergeError::Source { block: id, source })?;
        Ok(Cursor {
            block,
            refs,
            next: 0,
            buf: VecDeque::new(),
            last: None,
        })
    }

    fn id(&self) -> Ulid {
        self.block.meta().ulid
    }

    /// The next series' labels, reading a batch when the buffer is empty.
    async fn peek(&mut self) -> Result<Option<&Labels>, MergeError> {
        while self.buf.is_empty() && self.next < self.refs.len() {
            let end = (self.next + BATCH_SERIES).min(self.refs.len());
            let batch = self
                .block
                .select_refs(&self.refs[self.next..end], i64::MIN, i64::MAX)
                .await
                .map_err(|source| MergeError::Source {
                    block: self.id(),
                    source,
                })?;
            self.next = end;
            self.buf.extend(batch);
        }
        Ok(self.buf.front().map(|s| &s.labels))
    }

    /// Takes the front series, checking that the block's series come in label order.
    fn take(&mut self) -> Result<SeriesSamples, MergeError> {
        let Some(s) = self.buf.pop_front() else {
            return Err(self.corrupt("series buffer empty after peek".into()));
        };
        if let Some(last) = &self.last {
            if s.labels <= *last {
                return Err(self.corrupt(format!("series {} does not sort after {last}", s.labels)));
            }
        }
        self.last = Some(s.labels.clone());
        Ok(s)
    }

    fn corrupt(&self, reason: String) -> MergeError {
        let id = self.id();
        MergeError::Source {
            block: id,
            source: BlockError::Corrupt {
                block: id.to_string(),
                file: "index".into(),
                offset: None,
                reason,
            },
        }
    }
}

/// The merged block's identity: labels and resolution of the group, and its lineage.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// External labels of the group (replica labels removed).
    pub labels: BTreeMap<String, String>,
    /// Downsampling resolution of the group.
    pub resolution: i64,
    /// How equal series of overlapping blocks are merged.
    pub mode: MergeMode,
}

/// Merges `blocks` into one new block under `parent`. Returns `None` when the inputs hold no
/// samples at all (the sources can then go without an output, as in Prometheus).
pub async fn merge_blocks(
    blocks: &[Arc<Block>],
    parent: &Path,
    spec: &OutputSpec,
) -> Result<Option<MergeOutput>, MergeError> {
    let ulid = Ulid::new();
    let mut cursors = Vec::with_capacity(blocks.len());
    for b in blocks {
        cursors.push(Cursor::open(b.clone()).await?);
    }
    let mut writer = BlockWriter::new(parent, ulid, BlockWriterOptions::default())
        .map_err(MergeError::Output)?;
    let mut written = 0u64;
    loop {
        let mut smallest: Option<Labels> = None;
        for c in cursors.iter_mut() {
            if let Some(l) = c.peek().await? {
                if smallest.as_ref().is_none_or(|s| l < s) {
                    smallest = Some(l.clone());
                }
            }
        }
        let Some(labels) = smallest else { break };
        let mut parts = Vec::new();
        for c in cursors.iter_mut() {
            if c.peek().await? == Some(&labels) {
                parts.push(c.take()?.samples);
            }
        }
        let samples = merge_samples(parts, spec.mode);
        if samples.is_empty() {
            continue;
        }
        written += 1;
        writer
            .add_series(labels, &samples)
            .map_err(MergeError::Output)?;
    }
    if written == 0 {
        drop(writer);
        let _ = std::fs::remove_dir_all(parent.join(format!("{ulid}.tmp-for-creation")));
        return Ok(None);
    }
    let metas: Vec<&BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
    let min = metas.iter().map(|m| m.min_time).min().unwrap_or(0);
    let max = metas.iter().map(|m| m.max_time).max().unwrap_or(0);
    let thanos = ThanosMeta {
        version: 1,
        labels: spec.labels.clone(),
        source: SOURCE_COMPACTOR.to_string(),
        downsample: crate::block::meta::Downsample {
            resolution: spec.resolution,
        },
        ..ThanosMeta::default()
    };
    let (dir, mut meta) = writer
        .finish(Some(thanos), Some((min, max)))
        .map_err(MergeError::Output)?;
    meta.compaction = lineage(&metas);
    meta.write_to_dir(&dir).map_err(|e| {
        MergeError::Output(crate::block::FileLocation::new(ulid.to_string(), "meta.json").io(e))
    })?;
    Ok(Some(MergeOutput { dir, meta }))
}

/// `compaction` of a merge of `metas`: one level above the highest input, every input's
/// sources, the inputs as parents.
pub fn lineage(metas: &[&BlockMeta]) -> crate::block::meta::Compaction {
    let sources: BTreeSet<Ulid> = metas
        .iter()
        .flat_map(|m| {
            if m.compaction.sources.is_empty() {
                vec![m.ulid]
            } else {
                m.compaction.sources.clone()
            }
        })
        .collect();
    crate::block::meta::Compaction {
        level: metas.iter().map(|m| m.compaction.level).max().unwrap_or(0) + 1,
        sources: sources.into_iter().collect(),
        parents: metas
            .iter()
            .map(|m| BlockDesc {
                ulid: m.ulid,
                min_time: m.min_time,
                max_time: m.max_time,
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::{bucket, put_block, samples, series_labels};

    async fn open(b: &Arc<dyn crate::bucket::Bucket>, m: BlockMeta) -> Arc<Block> {
        Arc::new(Block::open_bucket(b.clone(), m).await.unwrap())
    }

    fn spec(mode: MergeMode) -> OutputSpec {
        OutputSpec {
            labels: [("cluster".to_string(), "eu".to_string())].into(),
            resolution: 0,
            mode,
        }
    }

    #[tokio::test]
    async fn merges_adjacent_blocks_keeping_every_sample_and_the_lineage() {
        let b = bucket();
        const H: i64 = 3_600_000;
        let mut first = Vec::new();
        let mut second = Vec::new();
        // More series than one batch, and series present in only one of the blocks.
        for i in 0..300 {
            first.push((series_labels("up", i), samples(0, 240, 30_000)));
            second.push((series_labels("up", i + 100), samples(2 * H, 240, 30_000)));
        }
        let m1 = put_block(b.as_ref(), first, 0, 2 * H, &[("cluster", "eu")]).await;
        let m2 = put_block(b.as_ref(), second, 2 * H, 4 * H, &[("cluster", "eu")]).await;
        let blocks = vec![open(&b, m1.clone()).await, open(&b, m2.clone()).await];
        let tmp = tempfile::tempdir().unwrap();
        let out = merge_blocks(&blocks, tmp.path(), &spec(MergeMode::Union))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((out.meta.min_time, out.meta.max_time), (0, 4 * H));
        assert_eq!(out.meta.compaction.level, 2);
        let mut want_sources = vec![m1.ulid, m2.ulid];
        want_sources.sort();
        assert_eq!(out.meta.compaction.sources, want_sources);
        assert_eq!(out.meta.compaction.parents.len(), 2);
        let th = out.meta.thanos.as_ref().unwrap();
        assert_eq!(th.source, "compactor");
        assert_eq!(th.labels["cluster"], "eu");
        assert_eq!(out.meta.stats.num_series, 400);
        assert_eq!(out.meta.stats.num_samples, 600 * 240);
        let merged = Block::open_dir(&out.dir).await.unwrap();
        let all = merged.all_series().await.unwrap();
        let s150 = all
            .iter()
            .find(|s| s.labels == series_labels("up", 150))
            .unwrap();
        let mut want = samples(0, 240, 30_000);
        want.extend(samples(2 * H, 240, 30_000));
        assert_eq!(s150.samples, want);
    }

    #[tokio::test]
    async fn overlapping_replicas_are_deduplicated_into_one_stream() {
        let b = bucket();
        let a: Vec<(i64, f64)> = (0..100).map(|i| (i * 15_000, i as f64)).collect();
        let r: Vec<(i64, f64)> = (0..100).map(|i| (i * 15_000 + 700, i as f64)).collect();
        let l = series_labels("c", 1);
        let m1 = put_block(
            b.as_ref(),
            vec![(l.clone(), a.clone())],
            0,
            1_500_000,
            &[("replica", "a")],
        )
        .await;
        let m2 = put_block(
            b.as_ref(),
            vec![(l.clone(), r)],
            0,
            1_500_000,
            &[("replica", "b")],
        )
        .await;
        let blocks = vec![open(&b, m1).await, open(&b, m2).await];
        let tmp = tempfile::tempdir().unwrap();
        let out = merge_blocks(&blocks, tmp.path(), &spec(MergeMode::Dedup))
            .await
            .unwrap()
            .unwrap();
        let merged = Block::open_dir(&out.dir).await.unwrap();
        let all = merged.all_series().await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].samples, a);
        // Without dedup both replicas' samples are kept, interleaved.
        let out = merge_blocks(&blocks, tmp.path(), &spec(MergeMode::Union))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.meta.stats.num_samples, 200);
    }

    #[tokio::test]
    async fn a_corrupt_chunk_names_its_source_block() {
        let b = bucket();
        let l = series_labels("x", 1);
        let m1 = put_block(
            b.as_ref(),
            vec![(l.clone(), samples(0, 100, 1000))],
            0,
            200_000,
            &[],
        )
        .await;
        let m2 = put_block(
            b.as_ref(),
            vec![(l, samples(100_000, 100, 1000))],
            100_000,
            300_000,
            &[],
        )
        .await;
        // Garble the chunk data of the second block after its segment header.
        let path = format!("{}/chunks/000001", m2.ulid);
        let mut data = b.get(&path).await.unwrap().to_vec();
        for byte in data.iter_mut().skip(8) {
            *byte = 0xff;
        }
        b.put(&path, data.into()).await.unwrap();
        let blocks = vec![open(&b, m1).await, open(&b, m2.clone()).await];
        let tmp = tempfile::tempdir().unwrap();
        let err = merge_blocks(&blocks, tmp.path(), &spec(MergeMode::Union))
            .await
            .unwrap_err();
        match err {
            MergeError::Source { block, .. } => assert_eq!(block, m2.ulid),
            other => panic!("expected a source error, got {other}"),
        }
    }
}
