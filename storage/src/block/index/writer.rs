//! Writes an index file byte-identical to Prometheus 2.42's `index.Writer`.
//!
//! Series are streamed to the file as they are added; postings are kept in memory and written
//! by `finish`, followed by the label indices, the offset tables and the TOC.

use super::toc::Toc;
use super::{ChunkMeta, HEADER_LEN, INDEX_MAGIC, INDEX_VERSION, MAX_INDEX_SIZE, SERIES_ALIGN};
use crate::block::error::{BlockError, FileLocation};
use crate::encoding::{crc32c, Encbuf};
use crate::labels::Labels;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Streams an index file: create with every symbol, add series in label order, then finish.
#[derive(Debug)]
pub struct IndexWriter {
    loc: FileLocation,
    out: BufWriter<File>,
    pos: u64,
    /// Largest file size allowed; the format limit, lowered only by tests.
    limit: u64,
    /// Set after a failed write: the file is then in an unknown state.
    poisoned: bool,
    toc: Toc,
    symbols: Vec<String>,
    symbol_refs: HashMap<String, u32>,
    last_series: Option<Labels>,
    last_chunk_ref: u64,
    all: Vec<u32>,
    /// name symbol -> value symbol -> series refs; symbol order is string order.
    postings: BTreeMap<u32, BTreeMap<u32, Vec<u32>>>,
    buf: Encbuf,
}

impl IndexWriter {
    /// Creates (or truncates) the file at `path` and writes the header and symbol table.
    ///
    /// `symbols` must hold every label name and value of the series to come; the empty string
    /// is added if absent so it is symbol 0, as in every index Prometheus writes from its head.
    pub fn create(
        path: &Path,
        loc: FileLocation,
        symbols: &BTreeSet<String>,
    ) -> Result<Self, BlockError> {
        let file = File::create(path).map_err(|e| loc.io(e))?;
        let mut syms: Vec<String> = Vec::with_capacity(symbols.len() + 1);
        if !symbols.contains("") {
            syms.push(String::new());
        }
        syms.extend(symbols.iter().cloned());
        let symbol_refs = syms
            .iter()
            .enumerate()
            .map(|(i, s)| u32::try_from(i).map(|i| (s.clone(), i)))
            .collect::<Result<HashMap<_, _>, _>>()
            .map_err(|_| invalid(&loc, "more than 2^32 symbols"))?;
        let mut w = IndexWriter {
            loc,
            out: BufWriter::with_capacity(1 << 20, file),
            pos: 0,
            limit: MAX_INDEX_SIZE,
            poisoned: false,
            toc: Toc::default(),
            symbols: syms,
            symbol_refs,
            last_series: None,
            last_chunk_ref: 0,
            all: Vec::new(),
            postings: BTreeMap::new(),
            buf: Encbuf::new(),
        };
        let mut header = Encbuf::new();
        header.put_be32(INDEX_MAGIC);
        header.put_u8(INDEX_VERSION);
        w.write(header.get())?;
        debug_assert_eq!(w.pos, HEADER_LEN);
        w.write_symbols()?;
        Ok(w)
    }

    #[cfg(test)]
    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    fn write_symbols(&mut self) -> Result<(), BlockError> {
        self.toc.symbols = self.pos;
        let mut e = Encbuf::new();
        let count = u32::try_from(self.symbols.len())
            .map_err(|_| invalid(&self.loc, "more than 2^32 symbols"))?;
        e.put_be32(count);
        for s in &self.symbols {
            e.put_uvarint_str(s);
        }
        self.write_section(e.get(), "symbol table")?;
        self.toc.series = self.pos;
        Ok(())
    }

    /// Appends one series; series must come in strictly ascending label order, and chunk refs
    /// must not decrease (within and across series). Returns the series ref (offset / 16).
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<u32, BlockError> {
        self.check_usable()?;
        self.check_series(labels, chunks)?;
        let pad = (SERIES_ALIGN - self.pos % SERIES_ALIGN) % SERIES_ALIGN;
        let start = self.pos + pad;
        let series_ref = u32::try_from(start / SERIES_ALIGN)
            .map_err(|_| invalid(&self.loc, "series ref exceeds 32 bits (index over 64 GiB)"))?;

        let mut body = std::mem::take(&mut self.buf);
        body.reset();
        body.put_uvarint(labels.len() as u64);
        for l in labels {
            // check_series verified both symbols exist.
            let n = self.symbol_refs.get(&l.name).copied().unwrap_or_default();
            let v = self.symbol_refs.get(&l.value).copied().unwrap_or_default();
            body.put_uvarint(u64::from(n));
            body.put_uvarint(u64::from(v));
            self.postings
                .entry(n)
                .or_default()
                .entry(v)
                .or_default()
                .push(series_ref);
        }
        encode_chunk_metas(&mut body, chunks);
        let mut framed = Encbuf::new();
        framed.put_bytes(&[0u8; SERIES_ALIGN as usize][..pad as usize]);
        framed.put_uvarint(body.len() as u64);
        framed.put_bytes(body.get());
        framed.put_be32(crc32c(body.get()));
        self.buf = body;
        self.write(framed.get())?;

        self.all.push(series_ref);
        self.last_series = Some(labels.clone());
        if let Some(c) = chunks.last() {
            self.last_chunk_ref = c.chunk_ref;
        }
        Ok(series_ref)
    }

    fn check_series(&self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<(), BlockError> {
        if labels.is_empty() {
            return Err(invalid(&self.loc, "series with no labels"));
        }
        if !Labels::is_sorted_unique(labels.as_slice()) {
            return Err(invalid(
                &self.loc,
                format!("labels of {labels} not sorted or not unique"),
            ));
        }
        if let Some(last) = &self.last_series {
            if labels <= last {
                return Err(invalid(
                    &self.loc,
                    format!("out-of-order series {labels} after {last}"),
                ));
            }
        }
        for l in labels {
            if l.name.is_empty() {
                return Err(invalid(&self.loc, format!("empty label name in {labels}")));
            }
            for s in [&l.name, &l.value] {
                if !self.symbol_refs.contains_key(s) {
                    return Err(invalid(
                        &self.loc,
                        format!("symbol {s:?} of {labels} not in the symbol table"),
                    ));
                }
            }
        }
        let mut last_ref = self.last_chunk_ref;
        let mut last_max: Option<i64> = None;
        for c in chunks {
            if c.chunk_ref < last_ref {
                return Err(invalid(
                    &self.loc,
                    format!(
                        "{labels}: chunk ref {} below previous {last_ref}",
                        c.chunk_ref
                    ),
                ));
            }
            if c.max_time < c.min_time {
                return Err(invalid(
                    &self.loc,
                    format!(
                        "{labels}: chunk maxt {} below mint {}",
                        c.max_time, c.min_time
                    ),
                ));
            }
            if last_max.is_some_and(|m| c.min_time <= m) {
                return Err(invalid(
                    &self.loc,
                    format!(
                        "{labels}: chunk mint {} not after previous maxt {last_max:?}",
                        c.min_time
                    ),
                ));
            }
            last_ref = c.chunk_ref;
            last_max = Some(c.max_time);
        }
        Ok(())
    }

    /// Writes postings, label indices, the offset tables and the TOC, then syncs the file.
    /// Returns the file size.
    pub fn finish(mut self) -> Result<u64, BlockError> {
        self.check_usable()?;
        self.toc.label_indices = self.pos;
        let label_indices = self.write_label_indices()?;

        self.toc.postings = self.pos;
        self.pad(4)?;
        let mut table = Encbuf::new();
        let mut count: u32 = 0;
        let all = std::mem::take(&mut self.all);
        self.write_postings_list("", "", &all, &mut table, &mut count)?;
        let postings = std::mem::take(&mut self.postings);
        for (name, values) in &postings {
            let name = self.symbol(*name).to_owned();
            for (value, refs) in values {
                let value = self.symbol(*value).to_owned();
                self.write_postings_list(&name, &value, refs, &mut table, &mut count)?;
            }
        }

        self.toc.label_offset_table = self.pos;
        let mut e = Encbuf::new();
        e.put_be32(len32(&self.loc, label_indices.len(), "label offset table")?);
        for (name, off) in &label_indices {
            e.put_uvarint(1);
            e.put_uvarint_str(name);
            e.put_uvarint(*off);
        }
        self.write_section(e.get(), "label offset table")?;

        self.toc.postings_offset_table = self.pos;
        let mut e = Encbuf::new();
        e.put_be32(count);
        e.put_bytes(table.get());
        self.write_section(e.get(), "postings offset table")?;

        let toc = self.toc.encode();
        self.write(&toc)?;
        let loc = self.loc.clone();
        self.out.flush().map_err(|e| loc.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| loc.io(e))?;
        Ok(self.pos)
    }

    /// One label index per label name, in name order, each 4-byte aligned.
    fn write_label_indices(&mut self) -> Result<Vec<(String, u64)>, BlockError> {
        let mut written = Vec::with_capacity(self.postings.len());
        let postings = std::mem::take(&mut self.postings);
        for (name, values) in &postings {
            self.pad(4)?;
            written.push((self.symbol(*name).to_owned(), self.pos));
            let mut e = Encbuf::new();
            e.put_be32(1);
            e.put_be32(len32(&self.loc, values.len(), "label index")?);
            for v in values.keys() {
                e.put_be32(*v);
            }
            self.write_section(e.get(), "label index")?;
        }
        self.postings = postings;
        Ok(written)
    }

    fn write_postings_list(
        &mut self,
        name: &str,
        value: &str,
        refs: &[u32],
        table: &mut Encbuf,
        count: &mut u32,
    ) -> Result<(), BlockError> {
        // Every list is a multiple of 4 bytes, so after the first pad this never pads; it
        // stays to mirror Prometheus should that ever change.
        self.pad(4)?;
        table.put_uvarint(2);
        table.put_uvarint_str(name);
        table.put_uvarint_str(value);
        table.put_uvarint(self.pos);
        *count = count
            .checked_add(1)
            .ok_or_else(|| invalid(&self.loc, "more than 2^32 postings lists"))?;
        let mut e = Encbuf::new();
        e.put_be32(len32(&self.loc, refs.len(), "postings list")?);
        for r in refs {
            e.put_be32(*r);
        }
        self.write_section(e.get(), "postings list")
    }

    /// Writes `BE32 len`, `body`, `BE32 crc32c(body)`.
    fn write_section(&mut self, body: &[u8], what: &str) -> Result<(), BlockError> {
        let len = len32(&self.loc, body.len(), what)?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c(body).to_be_bytes())
    }

    fn pad(&mut self, align: u64) -> Result<(), BlockError> {
        let n = (align - self.pos % align) % align;
        self.write(&[0u8; 16][..n as usize])
    }

    fn write(&mut self, b: &[u8]) -> Result<(), BlockError> {
        if self.pos + b.len() as u64 > self.limit {
            self.poisoned = true;
            return Err(invalid(
                &self.loc,
                format!("index would exceed the v2 limit of {} bytes", self.limit),
            ));
        }
        if let Err(e) = self.out.write_all(b) {
            self.poisoned = true;
            return Err(self.loc.io(e));
        }
        self.pos += b.len() as u64;
        Ok(())
    }

    fn check_usable(&self) -> Result<(), BlockError> {
        if self.poisoned {
            return Err(invalid(
                &self.loc,
                "index writer failed earlier; file is incomplete",
            ));
        }
        Ok(())
    }

    fn symbol(&self, r: u32) -> &str {
        self.symbols
            .get(r as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Chunk metas as Prometheus writes them: the first absolute, the rest as deltas (section 4.3).
fn encode_chunk_metas(e: &mut Encbuf, chunks: &[ChunkMeta]) {
    e.put_uvarint(chunks.len() as u64);
    let Some((first, rest)) = chunks.split_first() else {
        return;
    };
    e.put_varint(first.min_time);
    e.put_uvarint(first.max_time.wrapping_sub(first.min_time) as u64);
    e.put_uvarint(first.chunk_ref);
    let mut t0 = first.max_time;
    let mut ref0 = first.chunk_ref as i64;
    for c in rest {
        e.put_uvarint(c.min_time.wrapping_sub(t0) as u64);
        e.put_uvarint(c.max_time.wrapping_sub(c.min_time) as u64);
        e.put_varint((c.chunk_ref as i64).wrapping_sub(ref0));
        t0 = c.max_time;
        ref0 = c.chunk_ref as i64;
    }
}

/// Length field of a section holding `n` 4-byte items or `n` bytes, checked against BE32.
fn len32(loc: &FileLocation, n: usize, what: &str) -> Result<u32, BlockError> {
    u32::try_from(n).map_err(|_| invalid(loc, format!("{what} exceeds the 4 GiB v2 limit")))
}

fn invalid(loc: &FileLocation, reason: impl Into<String>) -> BlockError {
    BlockError::InvalidInput {
        block: loc.block.clone(),
        reason: format!("{}: {}", loc.file, reason.into()),
    }
}
