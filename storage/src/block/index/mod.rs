//! The index file, format v2: symbols, series, postings, offset tables and TOC.
//!
//! [`IndexWriter`] writes files byte-identical to Prometheus 2.42's; [`IndexReader`] reads them
//! by range reads (local file or bucket object) and answers postings and series lookups.
//! Layout facts: `tsdb-format.md` section 4.

pub mod cache;
mod layout;
mod postings;
mod reader;
mod select;
mod toc;
mod verify;
mod writer;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod promtool_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use cache::{IndexCache, SeriesEntry};
pub use postings::{intersect, merge_union, without};
pub use reader::IndexReader;
pub use toc::Toc;
pub use writer::IndexWriter;

/// Magic number at the start of an index file.
pub const INDEX_MAGIC: u32 = 0xBAAA_D700;
/// The index format version written and read.
pub const INDEX_VERSION: u8 = 2;
/// Magic plus version byte.
pub const HEADER_LEN: u64 = 5;
/// Series entries start at multiples of this; a series ref is `offset / 16`.
pub const SERIES_ALIGN: u64 = 16;
/// Largest index file the v2 format can address (series refs are 32-bit in 16-byte units).
pub const MAX_INDEX_SIZE: u64 = 16 * (u32::MAX as u64);

/// One chunk of a series as the index records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ChunkMeta {
    /// Timestamp of the chunk's first sample (inclusive).
    pub min_time: i64,
    /// Timestamp of the chunk's last sample (inclusive).
    pub max_time: i64,
    /// Chunk reference as stored: segment sequence in the upper 32 bits, offset in the lower.
    pub chunk_ref: u64,
}
