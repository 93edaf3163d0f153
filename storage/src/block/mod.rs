//! Prometheus TSDB blocks: metadata, index, chunk segments, tombstones, and whole-block
//! reading and writing.

pub mod cut;
pub mod error;
pub mod index;
pub mod index_header;
pub mod meta;
pub mod reader;
pub mod segments;
pub mod source;
pub mod tombstones;
pub mod verify;
pub mod writer;

pub use error::{BlockError, FileLocation};
pub use meta::BlockMeta;
pub use reader::{Block, SeriesChunks, SeriesRecords, SeriesSamples};
pub use source::{LocalFile, RangeSource};
pub use writer::{write_block, BlockWriter, BlockWriterOptions, RawChunk};
