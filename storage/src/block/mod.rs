//! Prometheus TSDB blocks: metadata, index, chunk segments, tombstones, and whole-block
//! reading and writing.

pub mod cut;
pub mod error;
pub mod index;
pub mod meta;
pub mod reader;
pub mod segments;
pub mod source;
pub mod tombstones;
pub mod writer;
pub mod verify;

pub use error::{BlockError, FileLocation};
pub use meta::BlockMeta;
pub use source::{LocalFile, RangeSource};
pub use reader::{Block, SeriesSamples};
pub use writer::{write_block, BlockWriter, BlockWriterOptions};
