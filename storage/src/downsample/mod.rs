//! Downsampling into Thanos' aggregate chunks, byte-compatible with Thanos: the chunk codec,
//! the per-series aggregation, whole blocks in the bucket, and which blocks qualify.

pub mod aggr;
pub mod block;
pub mod plan;
pub mod window;

pub use aggr::{AggrChunk, AggrError, AggrType, CHUNK_ENC_AGGR};
pub use block::{downsample_block, DownsampleError};
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
