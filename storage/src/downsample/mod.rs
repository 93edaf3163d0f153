//! Downsampling into Thanos' aggregate chunks, byte-compatible with Thanos: the chunk codec,
//! the per-series aggregation, whole blocks in the bucket, which blocks qualify, and the
//! merge of overlapping aggregate chunks that vertical compaction of downsampled blocks uses.
//!
//! Reading (wired in the node's store role and querier): a downsampled block's chunk records
//! have encoding byte 0xff, so [`crate::block::segments::SegmentReader::chunk_record`] reads them (its `chunk` refuses
//! them) and [`AggrChunk::get`] / [`AggrChunk::samples`] give one aggregate. A store serving
//! `max_source_resolution` answers a `SeriesRequest` from the coarsest blocks not coarser than
//! `max_resolution_window`, filling gaps with finer ones, and returns for downsampled blocks a
//! `storepb.AggrChunk` whose `count`/`sum`/`min`/`max`/`counter` fields are the requested
//! `aggregates` (each the sub-chunk's XOR bytes) instead of `raw`. The querier asks for the
//! aggregates the PromQL function needs (Thanos' `aggrsFromFunc`: `min`/`min_*` -> min,
//! `max`/`max_*` -> max, `count`/`count_*` -> count, `sum_*` -> sum, `rate`, `increase`,
//! `irate`, `resets` -> counter, anything else, `sum` included, -> count and sum for an average)
//! and reads the counter through [`apply_counter_resets`], averages as sum / count.

pub mod aggr;
pub mod block;
pub mod merge;
pub mod plan;
pub mod window;

pub use aggr::{AggrChunk, AggrError, AggrType, CHUNK_ENC_AGGR};
pub use block::{downsample_block, DownsampleError};
pub use merge::{merge_aggr, AggrSource, MergeAggrError};
pub use plan::{plan_downsampling, DownsampleTask};
pub use window::{
    apply_counter_resets, downsample_aggr, downsample_raw, AggrChunkMeta, WindowError,
};

/// Raw data (Thanos' `ResLevel0`).
pub const RES_RAW: i64 = crate::block::meta::RESOLUTION_RAW;
/// Five minutes, in ms (Thanos' `ResLevel1`).
pub const RES_5M: i64 = crate::block::meta::RESOLUTION_5M;
/// One hour, in ms (Thanos' `ResLevel2`).
pub const RES_1H: i64 = crate::block::meta::RESOLUTION_1H;
/// Raw blocks spanning at least this (ms) are downsampled to 5m.
pub const RES_5M_MIN_SPAN: i64 = 40 * 60 * 60 * 1000;
/// 5m blocks spanning at least this (ms) are downsampled to 1h.
pub const RES_1H_MIN_SPAN: i64 = 10 * 24 * 60 * 60 * 1000;
