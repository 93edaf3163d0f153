//! Chunk segment files (`chunks/000001`, ...) and chunk references (reference section 5).
//!
//! A segment is an 8-byte header (magic, version, padding) then chunk records:
//! `uvarint len | encoding | data[len] | BE32 CRC-32C(encoding, data)`. A chunk reference
//! is `(0-based index into the sorted segment list) << 32 | offset in that segment`.

use crate::block::error::{BlockError, FileLocation};
use crate::block::source::{LocalFile, RangeSource};
use crate::chunkenc::{Chunk, Encoding};
use crate::encoding::{crc32c, put_uvarint, uvarint_len, Decbuf};
use bytes::Bytes;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// First four bytes of every segment file.
pub const SEGMENT_MAGIC: u32 = 0x85BD_40DD;
/// The only segment format version.
pub const SEGMENT_VERSION: u8 = 1;
/// Bytes of the segment header; the first chunk of a segment sits at this offset.
pub const SEGMENT_HEADER_SIZE: u64 = 8;
/// Prometheus' default `--storage.tsdb.max-block-chunk-segment-size` (512 MiB).
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;
/// Directory of the segment files inside a block.
pub const CHUNKS_DIR: &str = "chunks";
/// Bytes read speculatively for one chunk: most 120-sample chunks fit, so one range read.
const FIRST_READ: u64 = 512;
/// Worst-case record overhead Prometheus assumes when cutting segments: 5-byte length,
/// encoding byte, CRC.
const MAX_RECORD_OVERHEAD: u64 = 5 + 1 + 4;

/// A chunk reference: segment index in the high 32 bits, byte offset in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRef(pub u64);

impl ChunkRef {
    /// The reference of the chunk at `offset` in the segment with 0-based `segment` index.
    pub fn new(segment: u32, offset: u32) -> Self {
        ChunkRef((u64::from(segment) << 32) | u64::from(offset))
    }

    /// 0-based index into the sorted segment files (0 is `000001`).
    pub fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Byte offset of the record in its segment.
    pub fn offset(self) -> u32 {
        self.0 as u32
    }
}

/// File name of the segment with 0-based `index`: 0 gives `000001`.
pub fn segment_file_name(index: u32) -> String {
    format!("{:06}", u64::from(index) + 1)
}

/// Keeps the names whose last `/`-separated part parses as an integer and sorts them
/// numerically, as Prometheus orders segment files. Works for directory entries and for
/// bucket keys such as `01H.../chunks/000002`.
pub fn sort_segment_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Vec<S> {
    let mut keyed: Vec<(u64, S)> = names
        .into_iter()
        .filter_map(|n| {
            let base = n.as_ref().rsplit('/').next().unwrap_or_default();
            base.parse::<u64>().ok().map(|k| (k, n))
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, n)| n).collect()
}

/// The segment files of a local block directory, in reference order.
pub fn list_local_segments(block_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = block_dir.join(CHUNKS_DIR);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    Ok(sort_segment_names(names)
        .into_iter()
        .map(|n| dir.join(n))
        .collect())
}

fn block_name(block_dir: &Path) -> String {
    block_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| block_dir.display().to_string())
}

/// One segment file written by [`SegmentWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Path relative to the block, such as `chunks/000001`.
    pub name: String,
    /// Full path on disk.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// Writes chunk records into `<block>/chunks/000001`, `000002`, ..., cutting a new segment
/// when the next chunk would not fit; a chunk never spans segments.
#[derive(Debug)]
pub struct SegmentWriter {
    block: String,
    dir: PathBuf,
    max_size: u64,
    current: Option<(BufWriter<File>, FileLocation)>,
    /// Bytes in the current segment, header included.
    offset: u64,
    done: Vec<SegmentFile>,
    record: Vec<u8>,
}

impl SegmentWriter {
    /// A writer for `<block_dir>/chunks` with the default 512 MiB segments.
    pub fn new(block_dir: &Path) -> Result<Self, BlockError> {
        Self::with_max_segment_size(block_dir, DEFAULT_MAX_SEGMENT_SIZE)
    }

    /// A writer with segments of at most `max_size` bytes (capped so offsets fit 32 bits);
    /// a chunk larger than that still gets a segment of its own.
    pub fn with_max_segment_size(block_dir: &Path, max_size: u64) -> Result<Self, BlockError> {
        let block = block_name(block_dir);
        let dir = block_dir.join(CHUNKS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| FileLocation::new(block.clone(), CHUNKS_DIR).io(e))?;
        Ok(SegmentWriter {
            block,
            dir,
            max_size: max_size.min(u64::from(u32::MAX)),
            current: None,
            offset: 0,
            done: Vec::new(),
            record: Vec::with_capacity(256),
        })
    }

    /// Appends one chunk and returns its reference.
    pub fn write_chunk(&mut self, chunk: &Chunk) -> Result<ChunkRef, BlockError> {
        self.write_record(chunk.encoding.as_byte(), &chunk.data)
    }

    /// Appends one chunk record with any encoding byte (Thanos' aggregate chunks use 0xff,
    /// which [`Encoding`] does not model) and returns its reference.
    pub fn write_record(&mut self, encoding: u8, data: &[u8]) -> Result<ChunkRef, BlockError> {
        let len = data.len() as u64;
        if len >= 1 << 32 {
            return Err(BlockError::InvalidInput {
                block: self.block.clone(),
                reason: format!("chunk of {len} bytes exceeds the 4 GiB record limit"),
            });
        }
        let needed = MAX_RECORD_OVERHEAD + len;
        let has_chunks = self.offset > SEGMENT_HEADER_SIZE;
        if self.current.is_none() || (has_chunks && self.offset + needed > self.max_size) {
            self.cut()?;
        }
        // max_size fits 32 bits and a segment is cut before passing it, so this holds.
        let Ok(at) = u32::try_from(self.offset) else {
            return Err(BlockError::InvalidInput {
                block: self.block.clone(),
                reason: format!("segment offset {} exceeds 32 bits", self.offset),
            });
        };
        self.record.clear();
        put_uvarint(&mut self.record, len);
        let body = self.record.len();
        self.record.push(encoding);
        self.record.extend_from_slice(data);
        let crc = crc32c(&self.record[body..]);
        self.record.extend_from_slice(&crc.to_be_bytes());
        let index = self.done.len() as u32;
        let Some((file, loc)) = self.current.as_mut() else {
            return Err(FileLocation::new(self.block.clone(), CHUNKS_DIR).io("no open segment"));
        };
        file.write_all(&self.record).map_err(|e| loc.io(e))?;
        self.offset += self.record.len() as u64;
        Ok(ChunkRef::new(index, at))
    }

    /// Closes the current segment (if any) and opens the next one with its header.
    fn cut(&mut self) -> Result<(), BlockError> {
        self.close_current()?;
        let name = segment_file_name(self.done.len() as u32);
        let loc = FileLocation::new(self.block.clone(), format!("{CHUNKS_DIR}/{name}"));
        let file = File::create(self.dir.join(&name)).map_err(|e| loc.io(e))?;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        let mut header = [0u8; SEGMENT_HEADER_SIZE as usize];
        header[..4].copy_from_slice(&SEGMENT_MAGIC.to_be_bytes());
        header[4] = SEGMENT_VERSION;
        file.write_all(&header).map_err(|e| loc.io(e))?;
        self.current = Some((file, loc));
        self.offset = SEGMENT_HEADER_SIZE;
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), BlockError> {
        let Some((file, loc)) = self.current.take() else {
            return Ok(());
        };
        let file = file.into_inner().map_err(|e| loc.io(e.into_error()))?;
        file.sync_all().map_err(|e| loc.io(e))?;
        let name = loc.file.clone();
        let base = name.rsplit('/').next().unwrap_or_default();
        self.done.push(SegmentFile {
            path: self.dir.join(base),
            name,
            size: self.offset,
        });
        Ok(())
    }

    /// Flushes and fsyncs every segment and the directory; returns the files written.
    /// A writer that received no chunk writes no segment, as Prometheus.
    pub fn finish(mut self) -> Result<Vec<SegmentFile>, BlockError> {
        self.close_current()?;
        let loc = FileLocation::new(self.block.clone(), CHUNKS_DIR);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| loc.io(e))?;
        Ok(self.done)
    }
}

/// One segment file to read: where it is and how errors should name it.
#[derive(Debug, Clone)]
pub struct SegmentSource {
    /// Block and file (`chunks/000001`) for errors.
    pub loc: FileLocation,
    /// The file's bytes.
    pub source: Arc<dyn RangeSource>,
}

/// Reads chunks by reference from a block's segment files with range reads.
#[derive(Debug, Clone)]
pub struct SegmentReader {
    block: String,
    segments: Vec<SegmentSource>,
}

impl SegmentReader {
    /// Opens segments given in reference order (see [`sort_segment_names`]), checking each
    /// header.
    pub async fn open(
        block: impl Into<String>,
        segments: Vec<SegmentSource>,
    ) -> Result<Self, BlockError> {
        // Concurrently: over S3 each header is a round trip.
        futures::future::try_join_all(segments.iter().map(check_header)).await?;
        Ok(SegmentReader {
            block: block.into(),
            segments,
        })
    }

    /// Opens the segment files of a local block directory.
    pub async fn open_local(block_dir: &Path) -> Result<Self, BlockError> {
        let block = block_name(block_dir);
        let paths = list_local_segments(block_dir).map_err(|e| {
            let loc = FileLocation::new(block.clone(), CHUNKS_DIR);
            if e.kind() == std::io::ErrorKind::NotFound {
                loc.missing()
            } else {
                loc.io(e)
            }
        })?;
        let mut segments = Vec::with_capacity(paths.len());
        for path in paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let loc = FileLocation::new(
                block.clone(),
                format!("{CHUNKS_DIR}/{}", name.unwrap_or_default()),
            );
            let file = LocalFile::open(&path).map_err(|e| loc.io(e))?;
            segments.push(SegmentSource {
                loc,
                source: Arc::new(file),
            });
        }
        Self::open(block, segments).await
    }

    /// Number of segment files.
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }

    /// The segment files, in reference order.
    pub fn segments(&self) -> &[SegmentSource] {
        &self.segments
    }

    /// Reads the chunk at `chunk_ref`, checking bounds and the CRC; one range read for most
    /// chunks, two for chunks longer than 512 bytes (16,000 from a bucket object).
    pub async fn chunk(&self, chunk_ref: u64) -> Result<Chunk, BlockError> {
        let (enc_byte, data) = self.chunk_record(chunk_ref).await?;
        self.to_chunk(chunk_ref, enc_byte, data)
    }

    /// A record's encoding byte and data as a [`Chunk`]; encodings it does not model (Thanos'
    /// aggregate chunks) are unsupported, naming the segment and offset.
    fn to_chunk(&self, chunk_ref: u64, enc_byte: u8, data: Bytes) -> Result<Chunk, BlockError> {
        let r = ChunkRef(chunk_ref);
        let encoding = Encoding::from_byte(enc_byte).map_err(|e| {
            let file = format!("{CHUNKS_DIR}/{}", segment_file_name(r.segment()));
            FileLocation::new(self.block.clone(), file)
                .unsupported(format!("chunk at offset {}: {e}", r.offset()))
        })?;
        Ok(Chunk::new(encoding, data))
    }

    /// Reads the chunk record at `chunk_ref` as its encoding byte and data, whatever the
    /// encoding (Thanos' aggregate chunks, 0xff, included); bounds and CRC checked.
    pub async fn chunk_record(&self, chunk_ref: u64) -> Result<(u8, Bytes), BlockError> {
        let r = ChunkRef(chunk_ref);
        let offset = u64::from(r.offset());
        let Some(seg) = self.segments.get(r.segment() as usize) else {
            let file = format!("{CHUNKS_DIR}/{}", segment_file_name(r.segment()));
            return Err(FileLocation::new(self.block.clone(), file).corrupt_at(
                offset,
                format!(
                    "chunk ref {chunk_ref:#x} points into segment index {} but the block has {} segment files",
                    r.segment(),
                    self.segments.len()
                ),
            ));
        };
        let size = seg.source.size();
        if offset < SEGMENT_HEADER_SIZE || offset >= size {
            return Err(seg.loc.corrupt_at(
                offset,
                format!("chunk ref {chunk_ref:#x} outside the chunk area of a {size}-byte segment"),
            ));
        }
        let first = if seg.source.is_remote() {
            TAIL_READ_REMOTE
        } else {
            FIRST_READ
        };
        let first_end = (offset + first).min(size);
        let mut bytes = read(seg, offset..first_end).await?;
        let (len, len_size) = {
            let mut d = Decbuf::new(&bytes, offset);
            let len = d.uvarint32().map_err(|e| seg.loc.decode(e))?;
            (u64::from(len), uvarint_len(u64::from(len)) as u64)
        };
        let record = len_size + 1 + len + 4;
        if offset + record > size {
            return Err(seg.loc.corrupt_at(
                offset,
                format!(
                    "chunk record of {record} bytes runs past the end of the {size}-byte segment"
                ),
            ));
        }
        if record > bytes.len() as u64 {
            bytes = read(seg, offset..offset + record).await?;
        }
        parse_raw_record(&bytes, offset, &seg.loc).map(|(enc, data, _)| (enc, data))
    }
}

/// Largest span read at once for a run of chunks; farther apart they are read one by one.
const MAX_RUN_SPAN: u64 = 8 << 20;
/// Largest distance between the starts of two chunks read in one run from a local file:
/// reading a few unwanted chunks in between is cheaper than another read.
const MAX_RUN_GAP: u64 = 16 << 10;
/// The same for a bucket object, where every read is a round trip: Thanos' store gateway
/// merges chunk reads up to 512 KiB apart (its partitioner's `maxGapSize`).
const MAX_RUN_GAP_REMOTE: u64 = 512 << 10;
/// Bytes read past the last chunk of a run from a bucket object: Thanos' estimate of the
/// largest chunk (`maxChunkSize`), so that the last record rarely needs a second request.
const TAIL_READ_REMOTE: u64 = 16_000;
/// Runs read at once from a bucket object.
const REMOTE_READ_CONCURRENCY: usize = 8;

impl SegmentReader {
    /// Reads several chunks, in order. A run of ascending refs in one segment lying close
    /// together (a series' chunks, which writers store back to back, or the chunks of series
    /// that are neighbours in the index) costs one range read instead of one per chunk; from
    /// a bucket object runs may lie farther apart and several are read at once.
    pub async fn chunks(&self, refs: &[u64]) -> Result<Vec<Chunk>, BlockError> {
        let records = self.records(refs).await?;
        refs.iter()
            .zip(records)
            .map(|(&r, (enc, data))| self.to_chunk(r, enc, data))
            .collect()
    }

    /// As [`SegmentReader::chunks`], but each record as its encoding byte and data, whatever
    /// the encoding (a compactor copies Thanos' aggregate chunks through as they are).
    pub async fn records(&self, refs: &[u64]) -> Result<Vec<(u8, Bytes)>, BlockError> {
        let remote = self.segments.iter().any(|s| s.source.is_remote());
        let max_gap = if remote {
            MAX_RUN_GAP_REMOTE
        } else {
            MAX_RUN_GAP
        };
        let mut runs = Vec::new();
        let mut i = 0;
        while i < refs.len() {
            let segment = ChunkRef(refs[i]).segment();
            let mut j = i + 1;
            while j < refs.len()
                && ChunkRef(refs[j]).segment() == segment
                && refs[j] > refs[j - 1]
                && refs[j] - refs[j - 1] <= max_gap
                && u64::from(ChunkRef(refs[j]).offset() - ChunkRef(refs[i]).offset()) < MAX_RUN_SPAN
            {
                j += 1;
            }
            runs.push(&refs[i..j]);
            i = j;
        }
        let mut out = Vec::with_capacity(refs.len());
        if !remote || runs.len() == 1 {
            for run in runs {
                out.extend(self.read_run(run).await?);
            }
            return Ok(out);
        }
        // Batches rather than a buffered stream: a stream of futures borrowing `self` makes
        // the callers' futures fail the `Send` check (a higher-ranked lifetime).
        for batch in runs.chunks(REMOTE_READ_CONCURRENCY) {
            let reads: Vec<_> = batch.iter().map(|run| self.read_run(run)).collect();
            for chunks in futures::future::try_join_all(reads).await? {
                out.extend(chunks);
            }
        }
        Ok(out)
    }

    async fn read_run(&self, run: &[u64]) -> Result<Vec<(u8, Bytes)>, BlockError> {
        let seg = self.segments.get(ChunkRef(run[0]).segment() as usize);
        let (first, last) = (
            u64::from(ChunkRef(run[0]).offset()),
            u64::from(ChunkRef(run[run.len() - 1]).offset()),
        );
        let mut out = Vec::with_capacity(run.len());
        let Some(seg) = seg.filter(|s| {
            (run.len() > 1 || s.source.is_remote())
                && first >= SEGMENT_HEADER_SIZE
                && last < s.source.size()
        }) else {
            // Single local chunks and bad refs take the one-chunk path, which names the problem.
            for &r in run {
                out.push(self.chunk_record(r).await?);
            }
            return Ok(out);
        };
        let tail = if seg.source.is_remote() {
            TAIL_READ_REMOTE
        } else {
            FIRST_READ
        };
        let end = (last + tail).min(seg.source.size());
        let buf = read(seg, first..end).await?;
        for &r in run {
            let offset = u64::from(ChunkRef(r).offset());
            let rel = (offset - first) as usize;
            match parse_raw_record(&buf.slice(rel..), offset, &seg.loc) {
                Ok((enc, data, _)) => out.push((enc, data)),
                // The last record may extend past the read; the precise path also reports
                // real corruption with its offset.
                Err(_) => out.push(self.chunk_record(r).await?),
            }
        }
        Ok(out)
    }
}

async fn read(seg: &SegmentSource, range: std::ops::Range<u64>) -> Result<Bytes, BlockError> {
    let start = range.start;
    let want = range.end - range.start;
    let b = seg.source.read_range(range).await.map_err(|e| {
        seg.loc
            .io(format!("reading {want} bytes at offset {start}: {e}"))
    })?;
    if b.len() as u64 != want {
        return Err(seg.loc.io(format!(
            "short read at offset {start}: wanted {want} bytes, got {}",
            b.len()
        )));
    }
    Ok(b)
}

async fn check_header(s: &SegmentSource) -> Result<(), BlockError> {
    let size = s.source.size();
    if size < SEGMENT_HEADER_SIZE {
        return Err(s.loc.corrupt_at(
            0,
            format!("segment of {size} bytes is shorter than its 8-byte header"),
        ));
    }
    let h = read(s, 0..SEGMENT_HEADER_SIZE).await?;
    let mut d = Decbuf::new(&h, 0);
    let magic = d.be32().map_err(|e| s.loc.decode(e))?;
    if magic != SEGMENT_MAGIC {
        return Err(s.loc.corrupt_at(
            0,
            format!("bad segment magic {magic:#010x}, expected {SEGMENT_MAGIC:#010x}"),
        ));
    }
    let version = d.u8().map_err(|e| s.loc.decode(e))?;
    if version != SEGMENT_VERSION {
        return Err(s.loc.unsupported(format!(
            "segment format version {version} at offset 4 (only 1 is known)"
        )));
    }
    Ok(())
}

/// Parses the chunk record at the start of `buf`, which sits at `offset` in the file named by
/// `loc`; returns the chunk (sharing `buf`'s memory) and the record's length. For callers that
/// fetch a range holding many records.
pub fn parse_record(
    buf: &Bytes,
    offset: u64,
    loc: &FileLocation,
) -> Result<(Chunk, usize), BlockError> {
    let (enc_byte, data, end) = parse_raw_record(buf, offset, loc)?;
    let encoding = Encoding::from_byte(enc_byte)
        .map_err(|e| loc.unsupported(format!("chunk at offset {offset}: {e}")))?;
    Ok((Chunk::new(encoding, data), end))
}

/// As [`parse_record`], but returns the encoding byte unparsed with the data and the record's
/// length, for encodings [`Encoding`] does not model (Thanos' aggregate chunks).
pub fn parse_raw_record(
    buf: &Bytes,
    offset: u64,
    loc: &FileLocation,
) -> Result<(u8, Bytes, usize), BlockError> {
    let mut d = Decbuf::new(buf, offset);
    let len = d.uvarint32().map_err(|e| loc.decode(e))? as usize;
    let body = buf.len() - d.remaining();
    let enc_byte = d.u8().map_err(|e| loc.decode(e))?;
    d.skip(len).map_err(|e| loc.decode(e))?;
    let crc_at = d.offset();
    let stored = d.be32().map_err(|e| loc.decode(e))?;
    let end = buf.len() - d.remaining();
    let computed = crc32c(&buf[body..end - 4]);
    if stored != computed {
        return Err(loc.corrupt_at(
            crc_at,
            format!(
                "chunk at offset {offset}: CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        ));
    }
    Ok((enc_byte, buf.slice(body + 1..end - 4), end))
}

#[cfg(test)]
#[path = "segments_tests.rs"]
mod tests;
