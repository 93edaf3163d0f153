//! Reads an index file by range reads: the TOC, symbols and postings offset table at open,
//! postings lists and series entries on demand.

use super::cache::{IndexCache, SeriesEntry};
use super::postings::decode_postings;
use super::toc::Toc;
use super::{ChunkMeta, HEADER_LEN, INDEX_MAGIC, INDEX_VERSION, SERIES_ALIGN};
use crate::block::error::{BlockError, FileLocation};
use crate::block::source::RangeSource;
use crate::encoding::{crc32c, Decbuf};
use crate::labels::{Label, Labels};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Bytes read for a series entry before its length is known; most entries fit.
const SERIES_WINDOW: u64 = 512;

/// Largest span of series entries read at once by [`IndexReader::series_many`].
const SERIES_RUN_SPAN: u64 = 1 << 20;

/// Largest distance between two wanted series entries read in one run: reading a few
/// unwanted entries in between is cheaper than another read.
const SERIES_RUN_GAP: u64 = 16 << 10;

/// Where one postings list starts, per label value.
#[derive(Clone, Debug)]
pub(crate) struct PostingsEntry {
    pub(crate) value: String,
    pub(crate) offset: u64,
}

/// An open index file. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct IndexReader {
    source: Arc<dyn RangeSource>,
    loc: FileLocation,
    toc: Toc,
    /// Start of the TOC: no section may reach past it.
    data_end: u64,
    symbols: Vec<String>,
    /// Label name -> values sorted bytewise with their list offsets.
    pub(crate) postings: BTreeMap<String, Vec<PostingsEntry>>,
    /// Every distinct list offset, sorted: the next one bounds a list's read.
    list_offsets: Vec<u64>,
    /// The postings offset table entries in file order, for `verify`.
    pub(crate) table_order: Vec<(String, String, u64)>,
    series_end: u64,
    /// Postings lists and series entries kept across requests, and this block's key there.
    cache: Option<(Arc<dyn IndexCache>, ulid::Ulid)>,
}

impl IndexReader {
    /// Opens an index: checks header and TOC, loads the symbol table and the postings offset
    /// table (each CRC-checked). Version 1 and unknown versions are rejected.
    pub async fn open(source: Arc<dyn RangeSource>, loc: FileLocation) -> Result<Self, BlockError> {
        let size = source.size();
        if size < HEADER_LEN + Toc::LEN {
            return Err(loc.corrupt_at(
                0,
                format!("file is {size} bytes, too small for header and TOC"),
            ));
        }
        let header = read(&*source, &loc, 0..HEADER_LEN).await?;
        let mut d = Decbuf::new(&header, 0);
        let magic = d.be32().map_err(|e| loc.decode(e))?;
        if magic != INDEX_MAGIC {
            return Err(loc.corrupt_at(
                0,
                format!("bad magic {magic:#010x}, want {INDEX_MAGIC:#010x}"),
            ));
        }
        let version = d.u8().map_err(|e| loc.decode(e))?;
        if version != INDEX_VERSION {
            return Err(loc.unsupported(format!(
                "index format version {version} at offset 4; only version {INDEX_VERSION} is read"
            )));
        }
        let data_end = size - Toc::LEN;
        let toc_bytes = read(&*source, &loc, data_end..size).await?;
        let toc = Toc::decode(&toc_bytes, data_end).map_err(|e| loc.decode(e))?;
        for (i, s) in toc.slots().into_iter().enumerate() {
            if s != 0 && !(HEADER_LEN..=data_end).contains(&s) {
                return Err(loc.corrupt_at(
                    data_end,
                    format!("TOC entry {i} points at {s}, outside the data [5, {data_end}]"),
                ));
            }
        }
        if toc.symbols == 0 || toc.postings_offset_table == 0 {
            return Err(loc.corrupt_at(
                data_end,
                "TOC lacks the symbol table or postings offset table",
            ));
        }
        let series_end = match toc.series {
            0 => 0,
            s => toc.next_section_after(s, data_end),
        };
        let mut r = IndexReader {
            source,
            loc,
            toc,
            data_end,
            symbols: Vec::new(),
            postings: BTreeMap::new(),
            list_offsets: Vec::new(),
            table_order: Vec::new(),
            series_end,
            cache: None,
        };
        r.load_symbols().await?;
        r.load_postings_table().await?;
        Ok(r)
    }

    async fn load_symbols(&mut self) -> Result<(), BlockError> {
        let off = self.toc.symbols;
        let hint = self.toc.next_section_after(off, self.data_end);
        let (body, base) = self.read_section(off, hint, "symbol table").await?;
        let loc = &self.loc;
        let mut d = Decbuf::new(&body, base);
        let n = d.be32().map_err(|e| loc.decode(e))? as usize;
        // Each symbol takes at least one byte: never trust the count for the allocation.
        let mut symbols = Vec::with_capacity(n.min(d.remaining()));
        for _ in 0..n {
            symbols.push(d.uvarint_str().map_err(|e| loc.decode(e))?.to_owned());
        }
        if d.remaining() != 0 {
            return Err(loc.corrupt_at(
                d.offset(),
                format!("{} bytes after the last symbol", d.remaining()),
            ));
        }
        self.symbols = symbols;
        Ok(())
    }

    async fn load_postings_table(&mut self) -> Result<(), BlockError> {
        let off = self.toc.postings_offset_table;
        let hint = self.toc.next_section_after(off, self.data_end);
        let (body, base) = self
            .read_section(off, hint, "postings offset table")
            .await?;
        let loc = &self.loc;
        let mut d = Decbuf::new(&body, base);
        let n = d.be32().map_err(|e| loc.decode(e))? as usize;
        let mut order = Vec::with_capacity(n.min(d.remaining()));
        for _ in 0..n {
            let at = d.offset();
            let keys = d.uvarint().map_err(|e| loc.decode(e))?;
            if keys != 2 {
                return Err(
                    loc.corrupt_at(at, format!("postings offset entry has {keys} keys, want 2"))
                );
            }
            let name = d.uvarint_str().map_err(|e| loc.decode(e))?.to_owned();
            let value = d.uvarint_str().map_err(|e| loc.decode(e))?.to_owned();
            let offset = d.uvarint().map_err(|e| loc.decode(e))?;
            order.push((name, value, offset));
        }
        if d.remaining() != 0 {
            return Err(loc.corrupt_at(
                d.offset(),
                format!("{} bytes after the last entry", d.remaining()),
            ));
        }
        let mut postings: BTreeMap<String, Vec<PostingsEntry>> = BTreeMap::new();
        for (name, value, offset) in &order {
            postings
                .entry(name.clone())
                .or_default()
                .push(PostingsEntry {
                    value: value.clone(),
                    offset: *offset,
                });
        }
        // Prometheus writes the table sorted; sort anyway so lookups can binary search.
        for values in postings.values_mut() {
            values.sort_by(|a, b| a.value.cmp(&b.value));
        }
        let mut offsets: Vec<u64> = order.iter().map(|e| e.2).collect();
        offsets.sort_unstable();
        offsets.dedup();
        self.postings = postings;
        self.list_offsets = offsets;
        self.table_order = order;
        Ok(())
    }

    /// The same index read from `source` from now on: an index opened from a whole-file copy
    /// in memory drops the copy and reads by range again. `None` if the sizes differ.
    pub fn with_source(mut self, source: Arc<dyn RangeSource>) -> Option<Self> {
        if source.size() != self.source.size() {
            return None;
        }
        self.source = source;
        Some(self)
    }

    /// Looks postings lists and series entries up in `cache` (as those of block `block`)
    /// before reading them, and remembers what it reads there.
    pub fn set_cache(&mut self, block: ulid::Ulid, cache: Arc<dyn IndexCache>) {
        self.cache = Some((cache, block));
    }

    /// Approximate bytes of memory this reader holds: its symbol table and postings offset
    /// table, parsed (for caches that bound memory by weight).
    pub fn memory_estimate(&self) -> usize {
        const PER_STRING: usize = std::mem::size_of::<String>();
        let symbols: usize = self.symbols.iter().map(|s| s.len() + PER_STRING).sum();
        let table: usize = self
            .table_order
            .iter()
            .map(|(n, v, _)| 2 * (n.len() + v.len()) + 4 * PER_STRING + 24)
            .sum();
        symbols + table + 8 * self.list_offsets.len() + std::mem::size_of::<Self>()
    }

    /// The file this reader names in errors.
    pub fn location(&self) -> &FileLocation {
        &self.loc
    }

    /// The index file's bytes.
    pub(super) fn source(&self) -> &dyn RangeSource {
        &*self.source
    }

    /// The table of contents.
    pub fn toc(&self) -> &Toc {
        &self.toc
    }

    /// The symbol table in file order (symbol ref = position).
    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// Label names with at least one postings list, sorted; the all-series key `""` excluded.
    pub fn label_names(&self) -> Vec<&str> {
        self.postings
            .keys()
            .filter(|n| !n.is_empty())
            .map(String::as_str)
            .collect()
    }

    /// Values of `name`, sorted; empty for an unknown name.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.postings
            .get(name)
            .map(|vs| vs.iter().map(|e| e.value.as_str()).collect())
            .unwrap_or_default()
    }

    /// Series refs of the series with label `name="value"`, ascending; empty when absent.
    pub async fn postings(&self, name: &str, value: &str) -> Result<Vec<u32>, BlockError> {
        let Some(off) = self.postings_offset(name, value) else {
            return Ok(Vec::new());
        };
        let Some((cache, block)) = &self.cache else {
            return self.read_postings_at(off).await;
        };
        if let Some(hit) = cache.postings(*block, name, value) {
            return Ok(hit.to_vec());
        }
        let refs = self.read_postings_at(off).await?;
        cache.store_postings(*block, name, value, Arc::from(refs.as_slice()));
        Ok(refs)
    }

    /// Every series ref in the index, ascending (the `("", "")` list).
    pub async fn all_postings(&self) -> Result<Vec<u32>, BlockError> {
        self.postings("", "").await
    }

    pub(crate) fn postings_offset(&self, name: &str, value: &str) -> Option<u64> {
        let values = self.postings.get(name)?;
        let i = values
            .binary_search_by(|e| e.value.as_str().cmp(value))
            .ok()?;
        values.get(i).map(|e| e.offset)
    }

    /// Reads and decodes the postings list whose `len` field is at `off`.
    pub(crate) async fn read_postings_at(&self, off: u64) -> Result<Vec<u32>, BlockError> {
        let i = self.list_offsets.partition_point(|&o| o <= off);
        let hint = match self.list_offsets.get(i) {
            Some(&next) => next,
            None => self.toc.next_section_after(off, self.data_end),
        };
        let (body, base) = self.read_section(off, hint, "postings list").await?;
        decode_postings(&body, base).map_err(|e| self.loc.decode(e))
    }

    /// The labels and chunk metas of the series `series_ref` (its offset / 16).
    pub async fn series(&self, series_ref: u32) -> Result<(Labels, Vec<ChunkMeta>), BlockError> {
        let Some((cache, block)) = &self.cache else {
            return self.series_uncached(series_ref).await;
        };
        if let Some(hit) = cache.series(*block, series_ref) {
            return Ok((*hit).clone());
        }
        let entry = self.series_uncached(series_ref).await?;
        cache.store_series(*block, series_ref, Arc::new(entry.clone()));
        Ok(entry)
    }

    async fn series_uncached(&self, series_ref: u32) -> Result<SeriesEntry, BlockError> {
        let (labels, chunks, _) = self.series_at(u64::from(series_ref) * SERIES_ALIGN).await?;
        Ok((labels, chunks))
    }

    /// The labels and chunk metas of each series of `refs`, in the order given. Entries of
    /// neighbouring refs (as a postings list gives them, ascending) come in one range read per
    /// run instead of one read per series: one system call locally, one request over S3.
    /// With a cache, only the entries it lacks are read (and then remembered).
    pub async fn series_many(
        &self,
        refs: &[u32],
    ) -> Result<Vec<(Labels, Vec<ChunkMeta>)>, BlockError> {
        if self.cache.is_none() {
            return self.series_many_uncached(refs).await;
        }
        Ok(self
            .series_many_shared(refs)
            .await?
            .into_iter()
            .map(|e| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
            .collect())
    }

    /// [`IndexReader::series_many`] as shared entries: those in the cache are not copied.
    pub async fn series_many_shared(
        &self,
        refs: &[u32],
    ) -> Result<Vec<Arc<SeriesEntry>>, BlockError> {
        let Some((cache, block)) = &self.cache else {
            let read = self.series_many_uncached(refs).await?;
            return Ok(read.into_iter().map(Arc::new).collect());
        };
        let hits = cache.series_batch(*block, refs);
        let missing: Vec<u32> = refs
            .iter()
            .zip(&hits)
            .filter(|(_, h)| h.is_none())
            .map(|(&r, _)| r)
            .collect();
        let mut read = self.series_many_uncached(&missing).await?.into_iter();
        let mut out = Vec::with_capacity(refs.len());
        for (&r, hit) in refs.iter().zip(hits) {
            match hit {
                Some(entry) => out.push(entry),
                None => {
                    let entry = read
                        .next()
                        .ok_or_else(|| self.loc.io("fewer series entries read than asked"))?;
                    let entry = Arc::new(entry);
                    cache.store_series(*block, r, entry.clone());
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }

    async fn series_many_uncached(&self, refs: &[u32]) -> Result<Vec<SeriesEntry>, BlockError> {
        let mut out = Vec::with_capacity(refs.len());
        let mut i = 0;
        while i < refs.len() {
            let start = u64::from(refs[i]) * SERIES_ALIGN;
            let mut j = i + 1;
            while j < refs.len() {
                let (prev, next) = (
                    u64::from(refs[j - 1]) * SERIES_ALIGN,
                    u64::from(refs[j]) * SERIES_ALIGN,
                );
                if next <= prev || next - prev > SERIES_RUN_GAP || next - start >= SERIES_RUN_SPAN {
                    break;
                }
                j += 1;
            }
            let last = u64::from(refs[j - 1]) * SERIES_ALIGN;
            let in_section =
                self.toc.series != 0 && start >= self.toc.series && last < self.series_end;
            if j - i == 1 || !in_section {
                // One entry, or refs outside the section: the one-entry path names the problem.
                for &r in &refs[i..j] {
                    out.push(self.series_uncached(r).await?);
                }
                i = j;
                continue;
            }
            let end = last.saturating_add(SERIES_WINDOW).min(self.series_end);
            let buf = read(&*self.source, &self.loc, start..end).await?;
            for &r in &refs[i..j] {
                let off = u64::from(r) * SERIES_ALIGN;
                let rel = (off - start) as usize;
                let window = buf.get(rel..).unwrap_or_default();
                match self.entry_in(window, off)? {
                    Some((labels, chunks, _)) => out.push((labels, chunks)),
                    // The entry runs past the read (a long last entry): read it alone.
                    None => out.push(self.series_uncached(r).await?),
                }
            }
            i = j;
        }
        Ok(out)
    }

    /// Decodes the series entry at `off`; also returns the offset just past its CRC.
    pub(crate) async fn series_at(
        &self,
        off: u64,
    ) -> Result<(Labels, Vec<ChunkMeta>, u64), BlockError> {
        let loc = &self.loc;
        if self.toc.series == 0 || off < self.toc.series || off >= self.series_end {
            return Err(loc.corrupt_at(
                off,
                format!(
                    "series ref {} is outside the series section [{}, {})",
                    off / SERIES_ALIGN,
                    self.toc.series,
                    self.series_end
                ),
            ));
        }
        let window_end = off.saturating_add(SERIES_WINDOW).min(self.series_end);
        let buf = read(&*self.source, loc, off..window_end).await?;
        if let Some(entry) = self.entry_in(&buf, off)? {
            return Ok(entry);
        }
        let end = self.entry_end(&buf, off)?;
        let buf = concat(buf, read(&*self.source, loc, window_end..end).await?);
        self.entry_in(&buf, off)?
            .ok_or_else(|| loc.io(format!("short read of the series entry at {off}")))
    }

    /// Where the series entry at `off` ends (just past its CRC), from its length prefix at
    /// the start of `buf`; an entry running past the series section is corrupt.
    fn entry_end(&self, buf: &[u8], off: u64) -> Result<u64, BlockError> {
        let loc = &self.loc;
        let mut d = Decbuf::new(buf, off);
        let len = d.uvarint().map_err(|e| loc.decode(e))?;
        let head = d.offset() - off;
        len.checked_add(head + 4)
            .and_then(|n| n.checked_add(off))
            .filter(|&end| end <= self.series_end)
            .ok_or_else(|| {
                loc.corrupt_at(
                    off,
                    format!(
                        "series entry of {len} bytes runs past the series section end {}",
                        self.series_end
                    ),
                )
            })
    }

    /// Decodes the series entry at `off` from `buf`, which holds the file's bytes from `off`
    /// on; `None` when the entry runs past the end of `buf`.
    fn entry_in(
        &self,
        buf: &[u8],
        off: u64,
    ) -> Result<Option<(Labels, Vec<ChunkMeta>, u64)>, BlockError> {
        let loc = &self.loc;
        let end = self.entry_end(buf, off)?;
        let total = (end - off) as usize;
        if total > buf.len() {
            return Ok(None);
        }
        let head = {
            let mut d = Decbuf::new(buf, off);
            d.uvarint().map_err(|e| loc.decode(e))?;
            d.offset() - off
        };
        let body = buf.get(head as usize..total - 4).unwrap_or_default();
        let stored = buf.get(total - 4..total).unwrap_or_default();
        let crc = crc32c(body);
        if stored != crc.to_be_bytes() {
            return Err(loc.corrupt_at(
                off,
                format!("series entry CRC mismatch (computed {crc:#010x})"),
            ));
        }
        let (labels, chunks) = self.decode_series(body, off + head)?;
        Ok(Some((labels, chunks, end)))
    }

    fn decode_series(
        &self,
        body: &[u8],
        base: u64,
    ) -> Result<(Labels, Vec<ChunkMeta>), BlockError> {
        let loc = &self.loc;
        let de = |e| loc.decode(e);
        let mut d = Decbuf::new(body, base);
        let n = d.uvarint().map_err(de)?;
        let mut labels = Vec::with_capacity((n as usize).min(d.remaining() / 2));
        for _ in 0..n {
            let name = self.lookup(&mut d)?;
            let value = self.lookup(&mut d)?;
            labels.push(Label::new(name, value));
        }
        if !Labels::is_sorted_unique(&labels) {
            return Err(loc.corrupt_at(base, "series labels are not sorted by name or not unique"));
        }
        let n = d.uvarint().map_err(de)?;
        // A chunk meta takes at least three bytes.
        let mut chunks = Vec::with_capacity((n as usize).min(d.remaining() / 3));
        let mut prev: Option<ChunkMeta> = None;
        for _ in 0..n {
            // Wrapping like Prometheus' int64 arithmetic: bad deltas give bad metas, not panics.
            let c = match prev {
                None => {
                    let min_time = d.varint().map_err(de)?;
                    let max_time = (d.uvarint().map_err(de)? as i64).wrapping_add(min_time);
                    let chunk_ref = d.uvarint().map_err(de)?;
                    ChunkMeta {
                        min_time,
                        max_time,
                        chunk_ref,
                    }
                }
                Some(p) => {
                    let min_time = (d.uvarint().map_err(de)? as i64).wrapping_add(p.max_time);
                    let max_time = (d.uvarint().map_err(de)? as i64).wrapping_add(min_time);
                    let chunk_ref = d.varint().map_err(de)?.wrapping_add(p.chunk_ref as i64) as u64;
                    ChunkMeta {
                        min_time,
                        max_time,
                        chunk_ref,
                    }
                }
            };
            chunks.push(c);
            prev = Some(c);
        }
        if d.remaining() != 0 {
            return Err(loc.corrupt_at(
                d.offset(),
                format!("{} bytes after the series' chunk metas", d.remaining()),
            ));
        }
        Ok((Labels::from_sorted(labels), chunks))
    }

    fn lookup(&self, d: &mut Decbuf<'_>) -> Result<String, BlockError> {
        let at = d.offset();
        let r = d.uvarint32().map_err(|e| self.loc.decode(e))?;
        self.symbols.get(r as usize).cloned().ok_or_else(|| {
            self.loc.corrupt_at(
                at,
                format!("unknown symbol ref {r} (table has {})", self.symbols.len()),
            )
        })
    }

    /// Reads a `BE32 len | body | BE32 crc` section at `off`, first trying `[off, hint)` in one
    /// read. Returns the body and its absolute offset.
    async fn read_section(
        &self,
        off: u64,
        hint: u64,
        what: &str,
    ) -> Result<(Bytes, u64), BlockError> {
        let loc = &self.loc;
        if off < HEADER_LEN || off.saturating_add(8) > self.data_end {
            return Err(loc.corrupt_at(
                off,
                format!("{what} at {off} is outside the data [5, {})", self.data_end),
            ));
        }
        let window_end = hint.clamp(off + 8, self.data_end);
        let mut buf = read(&*self.source, loc, off..window_end).await?;
        let len = Decbuf::new(&buf, off).be32().map_err(|e| loc.decode(e))? as u64;
        let end = off + 8 + len;
        if end > self.data_end {
            return Err(loc.corrupt_at(
                off,
                format!(
                    "{what} of {len} bytes runs past the data end {}",
                    self.data_end
                ),
            ));
        }
        if end > window_end {
            buf = concat(buf, read(&*self.source, loc, window_end..end).await?);
        }
        let body = buf.slice(4..4 + len as usize);
        let stored = buf
            .get(4 + len as usize..8 + len as usize)
            .unwrap_or_default();
        let crc = crc32c(&body);
        if stored != crc.to_be_bytes() {
            return Err(loc.corrupt_at(off, format!("{what} CRC mismatch (computed {crc:#010x})")));
        }
        Ok((body, off + 4))
    }

    /// Start of the series section's first entry and the end of the section.
    pub(crate) fn series_section(&self) -> (u64, u64) {
        (
            self.toc.series.next_multiple_of(SERIES_ALIGN),
            self.series_end,
        )
    }
}

pub(super) async fn read(
    src: &dyn RangeSource,
    loc: &FileLocation,
    range: std::ops::Range<u64>,
) -> Result<Bytes, BlockError> {
    let want = range.end.saturating_sub(range.start);
    let b = src.read_range(range.clone()).await.map_err(|e| loc.io(e))?;
    if b.len() as u64 != want {
        return Err(loc.io(format!(
            "short read of {}..{}: got {} bytes",
            range.start,
            range.end,
            b.len()
        )));
    }
    Ok(b)
}

fn concat(a: Bytes, b: Bytes) -> Bytes {
    let mut m = BytesMut::with_capacity(a.len() + b.len());
    m.extend_from_slice(&a);
    m.extend_from_slice(&b);
    m.freeze()
}
