//! Writes a complete block (chunks, index, tombstones, meta.json) from series given in label
//! order, cutting chunks where Prometheus' head would.

use super::cut::{chunk_ranges, DEFAULT_CHUNK_RANGE_MS};
use super::error::{BlockError, FileLocation};
use super::index::{ChunkMeta, IndexWriter};
use super::meta::{BlockMeta, ThanosMeta};
use super::reader::{INDEX_FILENAME, TOMBSTONES_FILENAME};
use super::segments::{SegmentWriter, DEFAULT_MAX_SEGMENT_SIZE};
use super::tombstones::Tombstones;
use crate::chunkenc::{Chunk, XorAppender};
use crate::labels::Labels;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use ulid::Ulid;

/// Options of the block writer.
#[derive(Debug, Clone)]
pub struct BlockWriterOptions {
    /// Range that chunks are aligned to (Prometheus' min block duration), in ms.
    pub chunk_range_ms: i64,
    /// Largest chunk segment file.
    pub max_segment_size: u64,
}

impl Default for BlockWriterOptions {
    fn default() -> Self {
        BlockWriterOptions {
            chunk_range_ms: DEFAULT_CHUNK_RANGE_MS,
            max_segment_size: DEFAULT_MAX_SEGMENT_SIZE,
        }
    }
}

/// One chunk record to write as it is: time range, encoding byte, data, and the samples it
/// counts for in meta.json (an aggregate chunk counts its count aggregate's samples).
#[derive(Debug, Clone, PartialEq)]
pub struct RawChunk {
    /// First timestamp (inclusive).
    pub min_time: i64,
    /// Last timestamp (inclusive).
    pub max_time: i64,
    /// The record's encoding byte.
    pub encoding: u8,
    /// The record's data.
    pub data: bytes::Bytes,
    /// Samples counted in the block's stats.
    pub num_samples: u64,
}

/// Writes one block under a parent directory, in `<ULID>.tmp-for-creation` until finished.
#[derive(Debug)]
pub struct BlockWriter {
    ulid: Ulid,
    parent: PathBuf,
    tmp_dir: PathBuf,
    options: BlockWriterOptions,
    segments: SegmentWriter,
    series: Vec<(Labels, Vec<ChunkMeta>)>,
    symbols: BTreeSet<String>,
    num_samples: u64,
    num_chunks: u64,
    time_range: Option<(i64, i64)>,
}

impl BlockWriter {
    /// Starts block `ulid` under `parent`.
    pub fn new(parent: &Path, ulid: Ulid, options: BlockWriterOptions) -> Result<Self, BlockError> {
        let tmp_dir = parent.join(format!("{ulid}.tmp-for-creation"));
        let loc = FileLocation::new(ulid.to_string(), "");
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir).map_err(|e| loc.io(e))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(|e| loc.io(e))?;
        let segments = SegmentWriter::with_max_segment_size(&tmp_dir, options.max_segment_size)?;
        Ok(BlockWriter {
            ulid,
            parent: parent.to_path_buf(),
            tmp_dir,
            options,
            segments,
            series: Vec::new(),
            symbols: BTreeSet::new(),
            num_samples: 0,
            num_chunks: 0,
            time_range: None,
        })
    }

    fn invalid(&self, reason: String) -> BlockError {
        BlockError::InvalidInput {
            block: self.ulid.to_string(),
            reason,
        }
    }

    /// Adds a series. Series must come in strictly increasing label order and timestamps must
    /// strictly increase; a series without samples is skipped, as Prometheus does.
    pub fn add_series(&mut self, labels: Labels, samples: &[(i64, f64)]) -> Result<(), BlockError> {
        if let Some((last, _)) = self.series.last() {
            if labels <= *last {
                return Err(self.invalid(format!(
                    "series {labels} does not sort after {last}: series must be added in label order"
                )));
            }
        }
        if samples.is_empty() {
            return Ok(());
        }
        if let Some(w) = samples.windows(2).find(|w| w[1].0 <= w[0].0) {
            return Err(self.invalid(format!(
                "series {labels}: timestamp {} does not increase after {}",
                w[1].0, w[0].0
            )));
        }
        let timestamps: Vec<i64> = samples.iter().map(|s| s.0).collect();
        let mut metas = Vec::new();
        for range in chunk_ranges(&timestamps, self.options.chunk_range_ms) {
            let part = &samples[range];
            let mut app = XorAppender::new();
            for &(t, v) in part {
                app.append(t, v)
                    .map_err(|e| self.invalid(format!("series {labels}: {e}")))?;
            }
            let chunk_ref = self.segments.write_chunk(&app.finish())?;
            let (Some(first), Some(last)) = (part.first(), part.last()) else {
                continue;
            };
            metas.push(ChunkMeta {
                min_time: first.0,
                max_time: last.0,
                chunk_ref: chunk_ref.0,
            });
        }
        let span = (timestamps[0], timestamps[timestamps.len() - 1]);
        self.record(labels, metas, samples.len() as u64, span);
        Ok(())
    }

    /// Adds a series from chunks already encoded, each with its first and last timestamp
    /// (a compactor copying chunks through): in time order, none overlapping the next, none
    /// empty. Series order as for [`BlockWriter::add_series`].
    pub fn add_series_chunks(
        &mut self,
        labels: Labels,
        chunks: &[(i64, i64, Chunk)],
    ) -> Result<(), BlockError> {
        let mut raw = Vec::with_capacity(chunks.len());
        for (min, max, chunk) in chunks {
            let n = chunk
                .num_samples()
                .map_err(|e| self.invalid(format!("series {labels}: {e}")))?;
            raw.push(RawChunk {
                min_time: *min,
                max_time: *max,
                encoding: chunk.encoding.as_byte(),
                data: chunk.data.clone(),
                num_samples: u64::from(n),
            });
        }
        self.add_series_raw(labels, &raw)
    }

    /// Adds a series from chunk records of any encoding (Thanos' aggregate chunks included),
    /// under the same rules as [`BlockWriter::add_series_chunks`].
    pub fn add_series_raw(
        &mut self,
        labels: Labels,
        chunks: &[RawChunk],
    ) -> Result<(), BlockError> {
        if let Some((last, _)) = self.series.last() {
            if labels <= *last {
                return Err(self.invalid(format!(
                    "series {labels} does not sort after {last}: series must be added in label order"
                )));
            }
        }
        let (Some(first), Some(last)) = (chunks.first(), chunks.last()) else {
            return Ok(());
        };
        if let Some(c) = chunks.iter().find(|c| c.min_time > c.max_time) {
            return Err(self.invalid(format!(
                "series {labels}: chunk ends at {} before it starts at {}",
                c.max_time, c.min_time
            )));
        }
        if let Some(w) = chunks.windows(2).find(|w| w[1].min_time <= w[0].max_time) {
            return Err(self.invalid(format!(
                "series {labels}: chunk starting at {} overlaps the one ending at {}",
                w[1].min_time, w[0].max_time
            )));
        }
        // Checked before writing, so that a refused series leaves no chunk behind.
        if let Some(c) = chunks.iter().find(|c| c.num_samples == 0) {
            return Err(self.invalid(format!(
                "series {labels}: empty chunk for [{}, {}]",
                c.min_time, c.max_time
            )));
        }
        let samples = chunks.iter().map(|c| c.num_samples).sum();
        let mut metas = Vec::with_capacity(chunks.len());
        for c in chunks {
            let chunk_ref = self.segments.write_record(c.encoding, &c.data)?;
            metas.push(ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk_ref: chunk_ref.0,
            });
        }
        self.record(labels, metas, samples, (first.min_time, last.max_time));
        Ok(())
    }

    /// Books a written series: its index entry, symbols, counts and time range.
    fn record(&mut self, labels: Labels, metas: Vec<ChunkMeta>, samples: u64, span: (i64, i64)) {
        self.time_range = Some(match self.time_range {
            Some((lo, hi)) => (lo.min(span.0), hi.max(span.1)),
            None => span,
        });
        self.num_samples += samples;
        self.num_chunks += metas.len() as u64;
        for l in labels.iter() {
            if !self.symbols.contains(&l.name) {
                self.symbols.insert(l.name.clone());
            }
            if !self.symbols.contains(&l.value) {
                self.symbols.insert(l.value.clone());
            }
        }
        self.series.push((labels, metas));
    }

    /// Writes the index, an empty tombstones file and meta.json (with `thanos` when given),
    /// then renames the directory to `<parent>/<ULID>`. The block covers
    /// `[first sample, last sample + 1)` unless `time_range` overrides it.
    pub fn finish(
        self,
        thanos: Option<ThanosMeta>,
        time_range: Option<(i64, i64)>,
    ) -> Result<(PathBuf, BlockMeta), BlockError> {
        let id = self.ulid.to_string();
        let Some((first, last)) = self.time_range else {
            return Err(self.invalid("a block needs at least one sample".into()));
        };
        let (min_time, max_time) = time_range.unwrap_or((first, last + 1));
        if first < min_time || last >= max_time {
            return Err(self.invalid(format!(
                "samples span [{first}, {last}], outside the block range [{min_time}, {max_time})"
            )));
        }
        self.segments.finish()?;

        let index_loc = FileLocation::new(&id, INDEX_FILENAME);
        let mut index =
            IndexWriter::create(&self.tmp_dir.join(INDEX_FILENAME), index_loc, &self.symbols)?;
        for (labels, metas) in &self.series {
            index.add_series(labels, metas)?;
        }
        index.finish()?;

        let ts_loc = FileLocation::new(&id, TOMBSTONES_FILENAME);
        Tombstones::new().write(&self.tmp_dir.join(TOMBSTONES_FILENAME), &ts_loc)?;

        let mut meta = BlockMeta::new_level1(self.ulid, min_time, max_time);
        meta.stats.num_series = self.series.len() as u64;
        meta.stats.num_samples = self.num_samples;
        meta.stats.num_chunks = self.num_chunks;
        meta.thanos = thanos;
        let meta_loc = FileLocation::new(&id, super::meta::META_FILENAME);
        meta.write_to_dir(&self.tmp_dir)
            .map_err(|e| meta_loc.io(e))?;

        let final_dir = self.parent.join(&id);
        let dir_loc = FileLocation::new(&id, "");
        std::fs::rename(&self.tmp_dir, &final_dir).map_err(|e| dir_loc.io(e))?;
        if let Ok(parent) = std::fs::File::open(&self.parent) {
            // Makes the rename durable; a failure here only loses durability, not data.
            let _ = parent.sync_all();
        }
        Ok((final_dir, meta))
    }
}

/// Writes `series` (any order) as one block under `parent`; returns its directory and meta.
pub fn write_block(
    parent: &Path,
    mut series: Vec<(Labels, Vec<(i64, f64)>)>,
    thanos: Option<ThanosMeta>,
    options: BlockWriterOptions,
) -> Result<(PathBuf, BlockMeta), BlockError> {
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut w = BlockWriter::new(parent, Ulid::new(), options)?;
    for (labels, samples) in series {
        w.add_series(labels, &samples)?;
    }
    w.finish(thanos, None)
}
