//! N blocks into one: series streamed in label order from every input (a batch of series per
//! block in memory at a time), chunks written as they come. Where a series' chunks from all
//! inputs follow one another in time (adjacent blocks, the common case) they are copied as
//! they are, without decoding, as Prometheus' compactor does; where they overlap, the
//! samples are decoded, merged by [`super::vertical`] and encoded again. Downsampled blocks
//! go the same way: their aggregate chunks (encoding 0xff) are copied as they are, and where
//! they overlap they are merged window by window ([`crate::downsample::merge`]); Thanos marks
//! such blocks no-compact instead. The output's index entries are what stays in memory, as in
//! Prometheus' compactor.

use super::vertical::{merge_samples, MergeMode};
use super::SOURCE_COMPACTOR;
use crate::block::error::BlockError;
use crate::block::index::ChunkMeta;
use crate::block::meta::{BlockDesc, BlockMeta, ThanosMeta};
use crate::block::{Block, BlockWriter, BlockWriterOptions, FileLocation, RawChunk};
use crate::block::{SeriesChunks, SeriesRecords};
use crate::chunkenc::{Chunk, Encoding};
use crate::downsample::aggr::expand_xor;
use crate::downsample::{downsample_raw, merge_aggr, AggrChunk, AggrSource, CHUNK_ENC_AGGR};
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
    buf: VecDeque<SeriesRecords>,
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
                .select_records(&self.refs[self.next..end])
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
    fn take(&mut self) -> Result<SeriesRecords, MergeError> {
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

    /// Every sample of `s`, one of this block's series, deletions applied.
    fn decode(&self, s: &SeriesRecords) -> Result<Vec<(i64, f64)>, MergeError> {
        let mut chunks = Vec::with_capacity(s.records.len());
        for (m, (enc, data)) in s.metas.iter().zip(&s.records) {
            let encoding = Encoding::from_byte(*enc).map_err(|e| self.unsupported(m, e))?;
            chunks.push(Chunk::new(encoding, data.clone()));
        }
        let series = SeriesChunks {
            series_ref: s.series_ref,
            labels: s.labels.clone(),
            metas: s.metas.clone(),
            chunks,
        };
        self.block
            .decode_series(&series)
            .map_err(|source| MergeError::Source {
                block: self.id(),
                source,
            })
    }

    /// The aggregate chunks of `s`, one of this downsampled block's series. Plain XOR chunks
    /// (thanos#5272) are aggregated at `resolution` first, as Thanos' downsampler does.
    fn aggr_chunks(
        &self,
        s: &SeriesRecords,
        resolution: i64,
    ) -> Result<Vec<AggrChunk>, MergeError> {
        let mut out = Vec::with_capacity(s.records.len());
        for (m, (enc, data)) in s.metas.iter().zip(&s.records) {
            if *enc == CHUNK_ENC_AGGR {
                out.push(AggrChunk::from_bytes(data.clone()));
                continue;
            }
            let encoding = Encoding::from_byte(*enc).map_err(|e| self.unsupported(m, e))?;
            let samples = Chunk::new(encoding, data.clone())
                .samples()
                .map_err(|e| self.unsupported(m, e))?;
            let mut raw = Vec::with_capacity(samples.len());
            expand_xor(&samples, &mut raw);
            let aggr = downsample_raw(&raw, resolution).map_err(|e| self.unsupported(m, e))?;
            out.extend(aggr.into_iter().map(|c| c.chunk));
        }
        Ok(out)
    }

    fn chunk_file(&self, m: &ChunkMeta) -> FileLocation {
        let seg = crate::block::segments::segment_file_name((m.chunk_ref >> 32) as u32);
        FileLocation::new(self.id().to_string(), format!("chunks/{seg}"))
    }

    fn unsupported(&self, m: &ChunkMeta, e: impl std::fmt::Display) -> MergeError {
        let offset = m.chunk_ref & 0xffff_ffff;
        MergeError::Source {
            block: self.id(),
            source: self
                .chunk_file(m)
                .unsupported(format!("chunk at offset {offset}: {e}")),
        }
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
        for (i, c) in cursors.iter_mut().enumerate() {
            if c.peek().await? == Some(&labels) {
                parts.push((i, c.take()?));
            }
        }
        if let Some(chunks) = pass_through(&cursors, &parts, spec.resolution) {
            written += 1;
            writer
                .add_series_raw(labels, &chunks)
                .map_err(MergeError::Output)?;
            continue;
        }
        if spec.resolution != crate::block::meta::RESOLUTION_RAW {
            let chunks = merge_aggr_parts(&cursors, &parts, spec.resolution)?;
            if !chunks.is_empty() {
                written += 1;
                writer
                    .add_series_raw(labels, &chunks)
                    .map_err(MergeError::Output)?;
            }
            continue;
        }
        let mut decoded = Vec::with_capacity(parts.len());
        for (i, s) in &parts {
            decoded.push(cursors[*i].decode(s)?);
        }
        let samples = merge_samples(decoded, spec.mode);
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

/// The chunks of one series' `parts` (cursor index, series) in time order, when they can be
/// copied as they are: float chunks (and, in a downsampled group, aggregate chunks), none
/// empty, none overlapping another, nothing deleted. Samples merged from such parts would be
/// their concatenation, so copying writes the same samples; anything else is decoded and
/// merged.
fn pass_through(
    cursors: &[Cursor],
    parts: &[(usize, SeriesRecords)],
    resolution: i64,
) -> Option<Vec<RawChunk>> {
    let mut chunks = Vec::new();
    for (i, s) in parts {
        if cursors[*i].block.has_deletions(s.series_ref) || s.metas.len() != s.records.len() {
            return None;
        }
        for (m, (enc, data)) in s.metas.iter().zip(&s.records) {
            let num_samples = match *enc {
                e if e == Encoding::Xor.as_byte() => {
                    u64::from(Chunk::new(Encoding::Xor, data.clone()).num_samples().ok()?)
                }
                CHUNK_ENC_AGGR if resolution != crate::block::meta::RESOLUTION_RAW => {
                    AggrChunk::from_bytes(data.clone()).num_samples() as u64
                }
                _ => return None,
            };
            if num_samples == 0 {
                return None;
            }
            chunks.push(RawChunk {
                min_time: m.min_time,
                max_time: m.max_time,
                encoding: *enc,
                data: data.clone(),
                num_samples,
            });
        }
    }
    chunks.sort_by_key(|c| c.min_time);
    let ordered = chunks.iter().all(|c| c.min_time <= c.max_time)
        && chunks.windows(2).all(|w| w[0].max_time < w[1].min_time);
    ordered.then_some(chunks)
}

/// One series' overlapping aggregate chunks from several downsampled blocks, merged window
/// by window ([`crate::downsample::merge`]), deletions applied.
fn merge_aggr_parts(
    cursors: &[Cursor],
    parts: &[(usize, SeriesRecords)],
    resolution: i64,
) -> Result<Vec<RawChunk>, MergeError> {
    let mut chunks = Vec::with_capacity(parts.len());
    let mut deletions = Vec::with_capacity(parts.len());
    for (i, s) in parts {
        chunks.push(cursors[*i].aggr_chunks(s, resolution)?);
        deletions.push(cursors[*i].block.tombstones().get(u64::from(s.series_ref)));
    }
    let deleted: Vec<Box<dyn Fn(i64) -> bool + '_>> = deletions
        .iter()
        .map(|d| Box::new(move |t| d.is_some_and(|d| d.contains(t))) as Box<dyn Fn(i64) -> bool>)
        .collect();
    let sources: Vec<AggrSource<'_>> = chunks
        .into_iter()
        .zip(&deleted)
        .map(|(chunks, deleted)| AggrSource {
            chunks,
            deleted: deleted.as_ref(),
        })
        .collect();
    let merged = merge_aggr(&sources, resolution).map_err(|e| {
        let (i, s) = &parts[e.index.unwrap_or(0)];
        let c = &cursors[*i];
        let reason = format!("series {}: {}", s.labels, e.error);
        match (e.index, &e.error) {
            (None, _) => MergeError::Output(FileLocation::new("", "chunks").io(reason)),
            (Some(_), crate::downsample::WindowError::Histogram) => MergeError::Source {
                block: c.id(),
                source: FileLocation::new(c.id().to_string(), "chunks").unsupported(reason),
            },
            (Some(_), _) => MergeError::Source {
                block: c.id(),
                source: FileLocation::new(c.id().to_string(), "chunks").corrupt(reason),
            },
        }
    })?;
    // A chunk without the count aggregate holds no window (Thanos skips these too).
    Ok(merged
        .into_iter()
        .filter(|c| c.chunk.num_samples() > 0)
        .map(|c| RawChunk {
            min_time: c.min_time,
            max_time: c.max_time,
            encoding: CHUNK_ENC_AGGR,
            num_samples: c.chunk.num_samples() as u64,
            data: c.chunk.bytes().clone(),
        })
        .collect())
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

    /// Every series of `b` with its chunks as stored.
    async fn chunks_of(b: &Block) -> Vec<SeriesChunks> {
        let refs = b.index().all_postings().await.unwrap();
        b.select_chunks(&refs).await.unwrap()
    }

    #[tokio::test]
    async fn chunks_of_adjacent_blocks_are_copied_byte_for_byte() {
        let b = bucket();
        const M: i64 = 60_000;
        // 50 samples each side: encoded again, the 100 samples would make one chunk.
        let first: Vec<_> = (0..20)
            .map(|i| (series_labels("up", i), samples(0, 50, 30_000)))
            .collect();
        let second: Vec<_> = (0..20)
            .map(|i| (series_labels("up", i), samples(25 * M, 50, 30_000)))
            .collect();
        let m1 = put_block(b.as_ref(), first, 0, 25 * M, &[("cluster", "eu")]).await;
        let m2 = put_block(b.as_ref(), second, 25 * M, 50 * M, &[("cluster", "eu")]).await;
        let blocks = vec![open(&b, m1).await, open(&b, m2).await];
        let tmp = tempfile::tempdir().unwrap();
        let out = merge_blocks(&blocks, tmp.path(), &spec(MergeMode::Union))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.meta.stats.num_samples, 20 * 100);
        assert_eq!(out.meta.stats.num_chunks, 20 * 2);
        let merged = Block::open_dir(&out.dir).await.unwrap();
        let got = chunks_of(&merged).await;
        let (a, z) = (chunks_of(&blocks[0]).await, chunks_of(&blocks[1]).await);
        assert_eq!(got.len(), 20);
        for ((g, a), z) in got.iter().zip(&a).zip(&z) {
            assert_eq!(g.labels, a.labels);
            let want: Vec<&[u8]> = a
                .chunks
                .iter()
                .chain(&z.chunks)
                .map(|c| &c.data[..])
                .collect();
            let have: Vec<&[u8]> = g.chunks.iter().map(|c| &c.data[..]).collect();
            assert_eq!(have, want, "series {}", g.labels);
            let times: Vec<(i64, i64)> = g.metas.iter().map(|m| (m.min_time, m.max_time)).collect();
            assert_eq!(
                times,
                vec![(0, 49 * 30_000), (25 * M, 25 * M + 49 * 30_000)]
            );
        }
        let all = merged.all_series().await.unwrap();
        let mut want = samples(0, 50, 30_000);
        want.extend(samples(25 * M, 50, 30_000));
        assert!(all.iter().all(|s| s.samples == want));
    }

    #[tokio::test]
    async fn overlapping_chunks_are_merged_and_encoded_again() {
        let b = bucket();
        let l = series_labels("up", 1);
        // Sample 50..100 are in both blocks; series 2 only in the first, copied as it is.
        let m1 = put_block(
            b.as_ref(),
            vec![
                (l.clone(), samples(0, 100, 1000)),
                (series_labels("up", 2), samples(0, 10, 1000)),
            ],
            0,
            100_000,
            &[],
        )
        .await;
        let m2 = put_block(
            b.as_ref(),
            vec![(l.clone(), samples(50_000, 100, 1000))],
            50_000,
            150_000,
            &[],
        )
        .await;
        let blocks = vec![open(&b, m1).await, open(&b, m2).await];
        let tmp = tempfile::tempdir().unwrap();
        let out = merge_blocks(&blocks, tmp.path(), &spec(MergeMode::Union))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.meta.stats.num_samples, 150 + 10);
        let merged = Block::open_dir(&out.dir).await.unwrap();
        let got = chunks_of(&merged).await;
        // Chunks of the union, cut anew: none of them is a source's chunk.
        let mut sources = chunks_of(&blocks[0]).await.remove(0).chunks;
        sources.extend(chunks_of(&blocks[1]).await.remove(0).chunks);
        assert!(got[0].chunks.iter().all(|c| !sources.contains(c)));
        let counts: u16 = got[0].chunks.iter().map(|c| c.num_samples().unwrap()).sum();
        assert_eq!(counts, 150);
        assert_eq!(
            merged.decode_series(&got[0]).unwrap(),
            samples(0, 150, 1000)
        );
        assert_eq!(merged.decode_series(&got[1]).unwrap(), samples(0, 10, 1000));
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

    /// Raw blocks of `series` over each of `ranges`, downsampled to 5m in the bucket (which
    /// is remote: the downsampler downloads its source first).
    async fn five_minute_blocks(
        b: &Arc<dyn crate::bucket::Bucket>,
        series: &[(Labels, Vec<(i64, f64)>)],
        ranges: &[(i64, i64)],
    ) -> Vec<BlockMeta> {
        let tmp = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        for &(from, to) in ranges {
            let part = series
                .iter()
                .map(|(l, s)| {
                    let s = s.iter().copied().filter(|x| x.0 >= from && x.0 < to);
                    (l.clone(), s.collect())
                })
                .collect();
            let raw = put_block(b.as_ref(), part, from, to, &[("cluster", "eu")]).await;
            let id = crate::downsample::downsample_block(b.clone(), &raw, RES_5M, tmp.path())
                .await
                .unwrap();
            out.push(
                crate::bucket::blocks::read_meta(b.as_ref(), id)
                    .await
                    .unwrap(),
            );
        }
        out
    }

    /// Every series' records as stored, with their time ranges.
    async fn records_of(b: &Block) -> Vec<SeriesRecords> {
        let refs = b.index().all_postings().await.unwrap();
        b.select_records(&refs).await.unwrap()
    }

    /// A counter with a reset and a gauge, one sample a minute over `[0, 10h)`.
    fn ten_hours() -> Vec<(Labels, Vec<(i64, f64)>)> {
        let mut v = 0.0;
        let counter = (0..600)
            .map(|i| {
                v = if i == 130 { 2.0 } else { v + (i % 3) as f64 };
                (i * 60_000, v)
            })
            .collect();
        let gauge = (0..600)
            .map(|i| (i * 60_000, ((i * 37) % 101) as f64))
            .collect();
        vec![
            (series_labels("c", 1), counter),
            (series_labels("g", 2), gauge),
        ]
    }

    const RES_5M: i64 = crate::downsample::RES_5M;

    fn spec_5m(mode: MergeMode) -> OutputSpec {
        OutputSpec {
            resolution: RES_5M,
            ..spec(mode)
        }
    }

    #[tokio::test]
    async fn adjacent_5m_blocks_keep_their_aggregate_chunks_byte_for_byte() {
        const H: i64 = 3_600_000;
        let b = bucket();
        let metas = five_minute_blocks(&b, &ten_hours(), &[(0, 4 * H), (4 * H, 10 * H)]).await;
        let blocks = vec![
            open(&b, metas[0].clone()).await,
            open(&b, metas[1].clone()).await,
        ];
        let tmp = tempfile::tempdir().unwrap();
        let out = merge_blocks(&blocks, tmp.path(), &spec_5m(MergeMode::Union))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.meta.resolution(), RES_5M);
        assert_eq!((out.meta.min_time, out.meta.max_time), (0, 10 * H));
        assert_eq!(
            out.meta.stats.num_samples,
            metas[0].stats.num_samples + metas[1].stats.num_samples
        );
        let merged = Block::open_dir(&out.dir).await.unwrap();
        let got = records_of(&merged).await;
        let (a, z) = (records_of(&blocks[0]).await, records_of(&blocks[1]).await);
        assert_eq!(got.len(), 2);
        for ((g, a), z) in got.iter().zip(&a).zip(&z) {
            assert_eq!(g.labels, a.labels);
            let want: Vec<&(u8, bytes::Bytes)> = a.records.iter().chain(&z.records).collect();
            let have: Vec<&(u8, bytes::Bytes)> = g.records.iter().collect();
            assert_eq!(have, want, "series {}", g.labels);
            assert!(g.records.iter().all(|r| r.0 == CHUNK_ENC_AGGR));
            let times = |s: &SeriesRecords| -> Vec<(i64, i64)> {
                s.metas.iter().map(|m| (m.min_time, m.max_time)).collect()
            };
            assert_eq!(times(g), [times(a), times(z)].concat());
        }
    }

    /// One aggregate's samples per 5m window over a series' aggregate chunks; fails on two
    /// samples in one window.
    fn windows(s: &SeriesRecords, aggr: crate::downsample::AggrType) -> BTreeMap<i64, f64> {
        let mut out = BTreeMap::new();
        for (_, data) in &s.records {
            for (t, v) in AggrChunk::from_bytes(data.clone()).samples(aggr).unwrap() {
                let key = crate::downsample::window::current_window(t, RES_5M);
                assert!(out.insert(key, v).is_none(), "{aggr}: two samples at {key}");
            }
        }
        out
    }

    #[tokio::test]
    async fn overlapping_5m_blocks_keep_every_window_once() {
        use crate::downsample::AggrType;
        const H: i64 = 3_600_000;
        let b = bucket();
        let data = ten_hours();
        let metas = five_minute_blocks(&b, &data, &[(0, 6 * H), (3 * H, 10 * H)]).await;
        // The reference: the union of the raw samples downsampled in one go.
        let whole = five_minute_blocks(&b, &data, &[(0, 10 * H)]).await;
        let reference = records_of(&*open(&b, whole[0].clone()).await).await;
        for mode in [MergeMode::Union, MergeMode::Dedup] {
            let blocks = vec![
                open(&b, metas[0].clone()).await,
                open(&b, metas[1].clone()).await,
            ];
            let tmp = tempfile::tempdir().unwrap();
            let out = merge_blocks(&blocks, tmp.path(), &spec_5m(mode))
                .await
                .unwrap()
                .unwrap();
            assert_eq!((out.meta.min_time, out.meta.max_time), (0, 10 * H));
            assert_eq!(
                out.meta.stats.num_samples,
                2 * 120,
                "{mode:?}: 120 windows a series, once"
            );
            let got = records_of(&Block::open_dir(&out.dir).await.unwrap()).await;
            assert_eq!(got.len(), 2);
            for (g, r) in got.iter().zip(&reference) {
                assert_eq!(g.labels, r.labels);
                for aggr in [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max] {
                    assert_eq!(
                        windows(g, aggr),
                        windows(r, aggr),
                        "{mode:?} {} {aggr}",
                        g.labels
                    );
                }
                let counter = |s: &SeriesRecords| {
                    let per_chunk = s
                        .records
                        .iter()
                        .map(|(_, d)| {
                            AggrChunk::from_bytes(d.clone())
                                .samples(AggrType::Counter)
                                .unwrap()
                        })
                        .collect();
                    crate::downsample::apply_counter_resets(per_chunk)
                        .into_iter()
                        .map(|(t, v)| (crate::downsample::window::current_window(t, RES_5M), v))
                        .collect::<BTreeMap<i64, f64>>()
                };
                assert_eq!(counter(g), counter(r), "{mode:?} {} counter", g.labels);
            }
        }
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
