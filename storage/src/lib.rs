//! Prometheus TSDB blocks read and written byte-compatibly, and the object-store bucket.

pub mod block;
pub mod bucket;
pub mod chunkenc;
pub mod compact;
pub mod dedup;
pub mod downsample;
pub mod encoding;
pub mod labels;
pub mod matcher;

pub use labels::{Label, Labels};

#[cfg(feature = "testing")]
pub mod testing;
