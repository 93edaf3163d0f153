//! Index headers: the few parts of a block's index that opening it needs (the first bytes, the
//! symbol table, the postings offset table and the TOC), copied to local disk the first time
//! the block is opened, so that reopening it (after a restart, or after a cache dropped it)
//! reads no index bytes from the bucket. Everything else (postings lists, series entries) is
//! still read from the bucket by range, on demand.
//!
//! File layout (big-endian): magic `0x5354_4948`, version 1, the index file's size (u64), the
//! number of extents (u32), then per extent its offset and length in the index file (u64
//! each) and its bytes, and a CRC-32C of everything before it. The extents are exactly the
//! ranges [`IndexReader::open`] read, recorded while it read them, so the header holds what
//! the reader checks (CRCs included) and nothing more.

use super::error::{BlockError, FileLocation};
use super::index::IndexReader;
use super::source::{InMemory, RangeSource};
use crate::encoding::crc32c;
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Magic number at the start of an index header file ("STIH").
pub const INDEX_HEADER_MAGIC: u32 = 0x5354_4948;
/// The header format version written and read.
const VERSION: u8 = 1;
/// Largest index fetched whole to build its header: one request instead of four.
const WHOLE_FETCH_MAX: u64 = 1 << 20;

/// Opens the index in `source` (the bucket's index object) through the header at `path`:
/// from the header when it is there and matches the index's size, else by reading the index
/// (whole when small, else by range), writing the header for next time. The reader returned
/// reads everything else from `source`. A damaged header is rebuilt; a header that cannot be
/// written is logged and the index served anyway.
pub async fn open_with_header(
    source: Arc<dyn RangeSource>,
    loc: FileLocation,
    path: &Path,
) -> Result<IndexReader, BlockError> {
    match read_header(path, source.size()) {
        Ok(Some(extents)) => {
            let sparse = Arc::new(Extents {
                size: source.size(),
                extents,
            });
            match IndexReader::open(sparse, loc.clone()).await {
                Ok(r) => return switch(r, source, &loc),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "index header unusable; rebuilding it")
                }
            }
        }
        Ok(None) => {}
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "index header damaged; rebuilding it")
        }
    }
    let size = source.size();
    let inner: Arc<dyn RangeSource> = if size <= WHOLE_FETCH_MAX {
        let whole = source.read_range(0..size).await.map_err(|e| loc.io(e))?;
        if whole.len() as u64 != size {
            return Err(loc.io(format!("short read: {} of {size} bytes", whole.len())));
        }
        Arc::new(InMemory(whole))
    } else {
        source.clone()
    };
    let recording = Arc::new(Recording {
        inner,
        reads: Mutex::default(),
    });
    let reader = IndexReader::open(recording.clone(), loc.clone()).await?;
    let extents = recording.take();
    if let Err(e) = write_header(path, size, &extents) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write index header; serving without it");
    }
    switch(reader, source, &loc)
}

fn switch(
    r: IndexReader,
    source: Arc<dyn RangeSource>,
    loc: &FileLocation,
) -> Result<IndexReader, BlockError> {
    r.with_source(source)
        .ok_or_else(|| loc.io("index size changed while opening"))
}

/// Bytes of the index file at known offsets; reading anything else is an error (the header
/// lacks it, so it is rebuilt).
#[derive(Debug)]
struct Extents {
    size: u64,
    extents: Vec<(u64, Bytes)>,
}

#[async_trait]
impl RangeSource for Extents {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_range(
        &self,
        range: Range<u64>,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        for (off, b) in &self.extents {
            let end = off + b.len() as u64;
            if *off <= range.start && range.end <= end && range.start <= range.end {
                return Ok(b.slice((range.start - off) as usize..(range.end - off) as usize));
            }
        }
        Err(format!("index header lacks bytes {}..{}", range.start, range.end).into())
    }
}

/// A source that remembers every range read from it, with its bytes.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn RangeSource>,
    reads: Mutex<Vec<(u64, Bytes)>>,
}

impl Recording {
    fn take(&self) -> Vec<(u64, Bytes)> {
        let mut v = std::mem::take(&mut *self.reads.lock().unwrap_or_else(|p| p.into_inner()));
        v.sort_by_key(|(off, _)| *off);
        v
    }
}

#[async_trait]
impl RangeSource for Recording {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn read_range(
        &self,
        range: Range<u64>,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        let b = self.inner.read_range(range.clone()).await?;
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((range.start, b.clone()));
        Ok(b)
    }
}

fn encode(index_size: u64, extents: &[(u64, Bytes)]) -> Bytes {
    let data: usize = extents.iter().map(|(_, b)| b.len() + 16).sum();
    let mut out = BytesMut::with_capacity(4 + 1 + 8 + 4 + data + 4);
    out.put_u32(INDEX_HEADER_MAGIC);
    out.put_u8(VERSION);
    out.put_u64(index_size);
    out.put_u32(extents.len() as u32);
    for (off, b) in extents {
        out.put_u64(*off);
        out.put_u64(b.len() as u64);
        out.put_slice(b);
    }
    let crc = crc32c(&out);
    out.put_u32(crc);
    out.freeze()
}

/// Parses a header file's bytes; `Err` names what is wrong.
fn decode(data: Bytes, index_size: u64) -> Result<Vec<(u64, Bytes)>, String> {
    let body_len = data
        .len()
        .checked_sub(4)
        .ok_or("file too short for its CRC")?;
    let (body, crc) = data.split_at(body_len);
    let stored = u32::from_be_bytes(crc.try_into().map_err(|_| "bad CRC field")?);
    if crc32c(body) != stored {
        return Err("CRC mismatch".into());
    }
    let mut c = Cursor { body, at: 0 };
    let magic = c.be32()?;
    if magic != INDEX_HEADER_MAGIC {
        return Err(format!("bad magic {magic:#010x}"));
    }
    let version = c.take(1)?[0];
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let size = c.be64()?;
    if size != index_size {
        return Err(format!(
            "made for an index of {size} bytes, the index has {index_size}"
        ));
    }
    let n = c.be32()?;
    let mut extents = Vec::new();
    for _ in 0..n {
        let off = c.be64()?;
        let len = usize::try_from(c.be64()?).map_err(|_| "extent too long")?;
        let start = c.at;
        c.take(len)?;
        extents.push((off, data.slice(start..start + len)));
    }
    if c.at != body.len() {
        return Err(format!("{} bytes after the last extent", body.len() - c.at));
    }
    Ok(extents)
}

/// Reads a header body front to back; running past its end is an error, never a panic.
struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let s = self
            .body
            .get(self.at..end)
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at = end;
        Ok(s)
    }

    fn be32(&mut self) -> Result<u32, String> {
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| "short field")?;
        Ok(u32::from_be_bytes(b))
    }

    fn be64(&mut self) -> Result<u64, String> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "short field")?;
        Ok(u64::from_be_bytes(b))
    }
}

/// The header at `path`: `None` when there is none, `Err` when it is damaged or stale.
fn read_header(path: &Path, index_size: u64) -> Result<Option<Vec<(u64, Bytes)>>, String> {
    match std::fs::read(path) {
        Ok(data) => decode(Bytes::from(data), index_size).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the header next to its final path and renames it there, so that a crash never
/// leaves half a header.
fn write_header(path: &Path, index_size: u64, extents: &[(u64, Bytes)]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, encode(index_size, extents))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "index_header_tests.rs"]
mod tests;
