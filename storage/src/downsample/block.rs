//! Downsampling one block of the bucket into a new block of aggregate chunks, as Thanos'
//! compactor does (`downsample.Downsample` then `block.Upload`): the series keep their labels
//! and order, each series gets aggregate chunks (encoding 0xff) that the index references,
//! meta.json keeps the time range, compaction level and sources and gets the new resolution
//! and `thanos.source: compactor`; the block goes up chunks first, then index, meta.json last.

use super::aggr::{expand_xor, AggrChunk, CHUNK_ENC_AGGR};
use super::window::{downsample_aggr, downsample_raw, AggrChunkMeta, WindowError};
use super::RES_5M;
use crate::block::index::{ChunkMeta, IndexWriter};
use crate::block::meta::META_FILENAME;
use crate::block::reader::{INDEX_FILENAME, TOMBSTONES_FILENAME};
use crate::block::segments::SegmentWriter;
use crate::block::tombstones::Tombstones;
use crate::block::{Block, BlockError, BlockMeta, FileLocation};
use crate::bucket::blocks::upload_block;
use crate::bucket::Bucket;
use crate::chunkenc::{Chunk, Encoding};
use crate::compact::download::open_sources;
use crate::compact::merge::MergeError;
use crate::labels::Labels;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use ulid::Ulid;

/// Thanos' `thanos.source` of blocks the compactor writes.
pub const COMPACTOR_SOURCE: &str = "compactor";

/// Why a block could not be downsampled.
#[derive(Debug, thiserror::Error)]
pub enum DownsampleError {
    /// The target resolution is not coarser than the block's.
    #[error(
        "block {block}: target resolution {target} ms is not coarser than the block's {current} ms"
    )]
    ResolutionNotLower {
        /// The input block.
        block: Ulid,
        /// Its resolution.
        current: i64,
        /// The requested one.
        target: i64,
    },
    /// Reading the input, writing the output or uploading it failed.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A series' chunks overlap in time (Thanos refuses these too).
    #[error("block {block}: found overlapping chunks within series {series}: chunk [{prev_min}, {prev_max}] then [{min}, {max}]; chunks must be ordered by min time and not overlap")]
    OverlappingChunks {
        /// The input block.
        block: Ulid,
        /// The series' labels.
        series: String,
        /// Range of the earlier chunk.
        prev_min: i64,
        /// End of the earlier chunk.
        prev_max: i64,
        /// Start of the later chunk.
        min: i64,
        /// End of the later chunk.
        max: i64,
    },
    /// A chunk Strata cannot downsample (native histograms, or an encoding that does not
    /// belong at the block's resolution).
    #[error("block {block}: series {series}: {reason}")]
    Unsupported {
        /// The input block.
        block: Ulid,
        /// The series' labels.
        series: String,
        /// What was found.
        reason: String,
    },
    /// Aggregating a series failed.
    #[error("block {block}: series {series}: {source}")]
    Series {
        /// The input block.
        block: Ulid,
        /// The series' labels.
        series: String,
        /// The aggregation error.
        source: WindowError,
    },
}

/// Downsamples block `meta` of `bucket` to `resolution` (ms), building the new block under
/// `tmp_dir` (with a copy of the input unless the bucket is a local directory) and uploading
/// it; returns the new block's ULID. A remote input is downloaded whole first, by the code that
/// brings a merge's sources down ([`crate::compact::download`]). The local copies are removed
/// afterwards, also on failure. A failed upload leaves a partial block without meta.json.
pub async fn downsample_block(
    bucket: Arc<dyn Bucket>,
    meta: &BlockMeta,
    resolution: i64,
    tmp_dir: &Path,
) -> Result<Ulid, DownsampleError> {
    let current = meta.resolution();
    if current >= resolution {
        return Err(DownsampleError::ResolutionNotLower {
            block: meta.ulid,
            current,
            target: resolution,
        });
    }
    let id = Ulid::new();
    let in_dir = tmp_dir.join(format!("{}.source", meta.ulid));
    let dir = tmp_dir.join(id.to_string());
    let result = async {
        // A FILESYSTEM bucket is read in place; any other is downloaded whole first, as the
        // sources of a merge are (removed again when `sources` is dropped).
        let sources = open_sources(&bucket, std::slice::from_ref(meta), &in_dir)
            .await
            .map_err(|e| match e {
                MergeError::Source { source, .. } | MergeError::Output(source) => source,
            })?;
        let Some(input) = sources.blocks.first() else {
            return Err(FileLocation::new(meta.ulid.to_string(), "")
                .missing()
                .into());
        };
        let out_meta = write_downsampled(input, id, &dir, resolution).await?;
        drop(sources);
        upload_block(bucket.as_ref(), &dir, &out_meta, None).await?;
        Ok(id)
    }
    .await;
    for d in [&in_dir, &dir] {
        if let Err(e) = std::fs::remove_dir_all(d) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %d.display(), error = %e, "could not remove a local block copy");
            }
        }
    }
    if result.is_ok() {
        tracing::info!(from = %meta.ulid, to = %id, resolution, "downsampled block");
    }
    result
}

/// Writes the downsampled block `id` into `dir` and returns its meta.
async fn write_downsampled(
    input: &Block,
    id: Ulid,
    dir: &Path,
    resolution: i64,
) -> Result<BlockMeta, DownsampleError> {
    let name = id.to_string();
    std::fs::create_dir_all(dir).map_err(|e| FileLocation::new(&name, "").io(e))?;
    let mut segments = SegmentWriter::new(dir)?;
    let mut series: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
    let mut symbols = BTreeSet::new();
    let (mut num_chunks, mut num_samples) = (0u64, 0u64);
    for series_ref in input.index().all_postings().await? {
        let (labels, metas) = input.index().series(series_ref).await?;
        let out = downsample_series(input, &labels, &metas, resolution).await?;
        if out.is_empty() {
            // Thanos' writer skips a series left without chunks.
            tracing::warn!(series = %labels, block = %input.meta().ulid, "series has no samples to downsample; skipped");
            continue;
        }
        let mut written = Vec::with_capacity(out.len());
        for c in &out {
            let r = segments.write_record(CHUNK_ENC_AGGR, c.chunk.bytes())?;
            written.push(ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk_ref: r.0,
            });
            num_samples += c.chunk.num_samples() as u64;
        }
        num_chunks += written.len() as u64;
        for l in labels.iter() {
            symbols.insert(l.name.clone());
            symbols.insert(l.value.clone());
        }
        series.push((labels, written));
    }
    let segment_files: Vec<String> = segments
        .finish()?
        .iter()
        .filter_map(|f| f.path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();

    let mut index = IndexWriter::create(
        &dir.join(INDEX_FILENAME),
        FileLocation::new(&name, INDEX_FILENAME),
        &symbols,
    )?;
    for (labels, chunks) in &series {
        index.add_series(labels, chunks)?;
    }
    index.finish()?;
    // Not uploaded (Thanos does not ship tombstones), but promtool expects one locally.
    Tombstones::new().write(
        &dir.join(TOMBSTONES_FILENAME),
        &FileLocation::new(&name, TOMBSTONES_FILENAME),
    )?;

    let mut meta = input.meta().clone();
    meta.ulid = id;
    meta.stats.num_series = series.len() as u64;
    meta.stats.num_chunks = num_chunks;
    meta.stats.num_samples = num_samples;
    meta.stats.num_tombstones = 0;
    meta.stats.num_float_samples = 0;
    meta.stats.num_histogram_samples = 0;
    let thanos = meta.thanos_mut();
    thanos.downsample.resolution = resolution;
    thanos.source = COMPACTOR_SOURCE.to_string();
    thanos.files.clear();
    // Deprecated but still written by Thanos' downsampler: the segment file names.
    thanos.segment_files = segment_files;
    meta.write_to_dir(dir)
        .map_err(|e| FileLocation::new(&name, META_FILENAME).io(e))?;
    Ok(meta)
}

/// The aggregate chunks of one series of `input`.
async fn downsample_series(
    input: &Block,
    labels: &Labels,
    metas: &[ChunkMeta],
    resolution: i64,
) -> Result<Vec<AggrChunkMeta>, DownsampleError> {
    let block = input.meta().ulid;
    let series_err = |source| DownsampleError::Series {
        block,
        series: labels.to_string(),
        source,
    };
    let unsupported = |reason: String| DownsampleError::Unsupported {
        block,
        series: labels.to_string(),
        reason,
    };
    if let Some(w) = metas.windows(2).find(|w| w[0].max_time >= w[1].min_time) {
        return Err(DownsampleError::OverlappingChunks {
            block,
            series: labels.to_string(),
            prev_min: w[0].min_time,
            prev_max: w[0].max_time,
            min: w[1].min_time,
            max: w[1].max_time,
        });
    }
    let raw_input = input.meta().resolution() == 0;
    let mut samples = Vec::new();
    let mut aggrs: Vec<AggrChunk> = Vec::new();
    let mut run = (i64::MAX, i64::MIN);
    for m in metas {
        let (enc, data) = input.chunks().chunk_record(m.chunk_ref).await?;
        if enc == CHUNK_ENC_AGGR {
            if raw_input {
                return Err(unsupported(format!(
                    "aggregate chunk at [{}, {}] in a raw block",
                    m.min_time, m.max_time
                )));
            }
            aggrs.push(AggrChunk::from_bytes(data));
            run = (run.0.min(m.min_time), m.max_time);
            continue;
        }
        let encoding = Encoding::from_byte(enc).map_err(|e| unsupported(e.to_string()))?;
        let chunk = Chunk::new(encoding, data);
        let decoded = chunk
            .samples()
            .map_err(|e| unsupported(format!("chunk at [{}, {}]: {e}", m.min_time, m.max_time)))?;
        if raw_input {
            expand_xor(&decoded, &mut samples);
            continue;
        }
        // A downsampled block may hold plain XOR chunks (thanos#5272): empty ones are
        // dropped, others are first brought to 5m aggregates, as Thanos does.
        if decoded.is_empty() {
            tracing::warn!(series = %labels, %block, "empty XOR chunk in a downsampled block; skipped");
            continue;
        }
        let mut raw = Vec::new();
        expand_xor(&decoded, &mut raw);
        for c in downsample_raw(&raw, RES_5M).map_err(series_err)? {
            run = (run.0.min(c.min_time), c.max_time);
            aggrs.push(c.chunk);
        }
    }
    if raw_input {
        return downsample_raw(&samples, resolution).map_err(series_err);
    }
    if aggrs.is_empty() {
        return Ok(Vec::new());
    }
    downsample_aggr(&aggrs, run.0, run.1, input.meta().resolution(), resolution).map_err(series_err)
}

#[cfg(test)]
#[path = "block_tests.rs"]
mod tests;
