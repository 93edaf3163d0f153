//! A whole block opened for reading: meta.json, index, chunk segments and tombstones, from a
//! local directory or from the bucket by range reads.

use super::error::{BlockError, FileLocation};
use super::index::{ChunkMeta, IndexReader, MAX_INDEX_SIZE};
use super::meta::BlockMeta;
use super::segments::{segment_file_name, sort_segment_names, SegmentReader, SegmentSource};
use super::source::{InMemory, LocalFile, RangeSource};
use super::tombstones::Tombstones;
use crate::bucket::{Bucket, BucketObject};
use crate::chunkenc::{Chunk, ChunkError};
use crate::labels::Labels;
use crate::matcher::Matcher;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// Index file name.
pub const INDEX_FILENAME: &str = "index";
/// Largest local index file held in memory whole (the bench's 10,000-series blocks have
/// 0.9 MB indexes); larger ones are read by range.
const INDEX_IN_MEMORY_MAX: u64 = 64 << 20;
/// Largest remote index fetched whole at open (then dropped): one request instead of four,
/// and at most this much memory per block being opened.
const INDEX_PREFETCH_MAX: u64 = 1 << 20;
/// Tombstones file name.
pub const TOMBSTONES_FILENAME: &str = "tombstones";

/// A block ready for queries.
#[derive(Debug)]
pub struct Block {
    meta: BlockMeta,
    index: IndexReader,
    chunks: SegmentReader,
    tombstones: Tombstones,
}

/// One series' index entry and its chunks as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesChunks {
    /// The series' reference in its block's index (tombstones are keyed by it).
    pub series_ref: u32,
    /// The series' labels.
    pub labels: Labels,
    /// Its chunks' index entries, in index order.
    pub metas: Vec<ChunkMeta>,
    /// The chunks of `metas`, one each.
    pub chunks: Vec<Chunk>,
}

/// One series' index entry and its chunk records as stored: encoding byte and data, whatever
/// the encoding (Thanos' aggregate chunks, 0xff, included).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRecords {
    /// The series' reference in its block's index (tombstones are keyed by it).
    pub series_ref: u32,
    /// The series' labels.
    pub labels: Labels,
    /// Its chunks' index entries, in index order.
    pub metas: Vec<ChunkMeta>,
    /// The records of `metas`, one each.
    pub records: Vec<(u8, Bytes)>,
}

/// One series' labels and its samples in a time range, with deleted samples removed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// Samples in time order.
    pub samples: Vec<(i64, f64)>,
}

fn open_local(dir: &Path, loc: &FileLocation) -> Result<LocalFile, BlockError> {
    LocalFile::open(&dir.join(&loc.file)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => loc.missing(),
        _ => loc.io(e),
    })
}

fn bucket_failure(loc: &FileLocation, e: crate::bucket::BucketError) -> BlockError {
    if e.is_not_found() {
        loc.missing()
    } else {
        loc.io(e)
    }
}

impl Block {
    /// Opens a block directory on local disk (a Prometheus data dir's block, or one Strata
    /// wrote). A missing tombstones file counts as no deletions.
    pub async fn open_dir(dir: &Path) -> Result<Self, BlockError> {
        let meta = BlockMeta::read_from_dir(dir)?;
        let id = meta.ulid.to_string();
        let index_loc = FileLocation::new(&id, INDEX_FILENAME);
        let index_file = open_local(dir, &index_loc)?;
        let index = IndexReader::open(Arc::new(index_file), index_loc).await?;
        let chunks = SegmentReader::open_local(dir).await?;
        let ts_loc = FileLocation::new(&id, TOMBSTONES_FILENAME);
        let tombstones = match open_local(dir, &ts_loc) {
            Ok(f) => Tombstones::read(&f, &ts_loc).await?,
            Err(BlockError::Missing { .. }) => Tombstones::new(),
            Err(e) => return Err(e),
        };
        Ok(Block {
            meta,
            index,
            chunks,
            tombstones,
        })
    }

    /// Opens a block whose files are held in memory, keyed by path relative to the block
    /// (`index`, `chunks/000001`, `tombstones`): a merge's sources fetched from a remote
    /// bucket, read without a round trip through local disk. A missing tombstones file counts
    /// as no deletions, as in [`Block::open_dir`].
    pub async fn open_memory(
        meta: BlockMeta,
        files: &std::collections::BTreeMap<String, Bytes>,
    ) -> Result<Self, BlockError> {
        let id = meta.ulid.to_string();
        let index_loc = FileLocation::new(&id, INDEX_FILENAME);
        let index = files
            .get(INDEX_FILENAME)
            .ok_or_else(|| index_loc.missing())?;
        let index = IndexReader::open(Arc::new(InMemory(index.clone())), index_loc).await?;
        let segments = sort_segment_names(files.keys().filter(|p| p.starts_with("chunks/")))
            .into_iter()
            .filter_map(|rel| {
                let data = files.get(rel)?.clone();
                Some(SegmentSource {
                    loc: FileLocation::new(&id, rel),
                    source: Arc::new(InMemory(data)),
                })
            })
            .collect();
        let chunks = SegmentReader::open(&id, segments).await?;
        let tombstones = match files.get(TOMBSTONES_FILENAME) {
            Some(data) => read_tombstones(&InMemory(data.clone()), &id).await?,
            None => Tombstones::new(),
        };
        Ok(Block {
            meta,
            index,
            chunks,
            tombstones,
        })
    }

    /// Opens block `meta.ulid` in the bucket. File sizes come from meta.json's `thanos.files`
    /// when present, else from one listing of the block's directory.
    pub async fn open_bucket(bucket: Arc<dyn Bucket>, meta: BlockMeta) -> Result<Self, BlockError> {
        Self::open_bucket_with_header(bucket, meta, None).await
    }

    /// [`Block::open_bucket`], with the index opened through the local index header at
    /// `header` when given ([`super::index_header`]): a remote index is then never held whole
    /// in memory and reopening reads none of it, and a local one is read by range.
    pub async fn open_bucket_with_header(
        bucket: Arc<dyn Bucket>,
        meta: BlockMeta,
        header: Option<&Path>,
    ) -> Result<Self, BlockError> {
        let id = meta.ulid.to_string();
        let files = block_files(bucket.as_ref(), &meta).await?;
        let size_of = |rel: &str| files.iter().find(|(p, _)| p == rel).map(|(_, s)| *s);

        let index_loc = FileLocation::new(&id, INDEX_FILENAME);
        let index_size = size_of(INDEX_FILENAME).ok_or_else(|| index_loc.missing())?;
        let index_obj = bucket_source(&bucket, &id, INDEX_FILENAME, index_size, &index_loc)?;
        let local = bucket
            .local_path(&format!("{id}/{INDEX_FILENAME}"))
            .is_some();

        let chunk_names = sort_segment_names(
            files
                .iter()
                .filter(|(p, _)| p.starts_with("chunks/"))
                .map(|(p, _)| p.clone()),
        );
        let segments = chunk_names
            .into_iter()
            .map(|rel| {
                let size = size_of(&rel).unwrap_or(0);
                let loc = FileLocation::new(&id, &rel);
                let source = bucket_source(&bucket, &id, &rel, size, &loc)?;
                Ok(SegmentSource { loc, source })
            })
            .collect::<Result<Vec<_>, BlockError>>()?;
        // Over S3 each read is a round trip: the index and the segment headers are read at
        // the same time rather than one after another.
        let index = async {
            match header {
                Some(_) if local => IndexReader::open(index_obj, index_loc).await,
                Some(path) => {
                    super::index_header::open_with_header(index_obj, index_loc, path).await
                }
                None => open_index(index_obj, index_loc, local).await,
            }
        };
        let (index, chunks) = futures::try_join!(index, SegmentReader::open(&id, segments))?;

        // Thanos' shipper does not upload tombstones; read them only where a writer put them.
        let tombstones = match size_of(TOMBSTONES_FILENAME) {
            Some(size) => {
                let path = format!("{id}/{TOMBSTONES_FILENAME}");
                read_tombstones(&BucketObject::with_size(bucket.clone(), &path, size), &id).await?
            }
            None => Tombstones::new(),
        };
        Ok(Block {
            meta,
            index,
            chunks,
            tombstones,
        })
    }

    /// Looks postings lists and series entries up in `cache` before reading them from the
    /// index, and remembers what it reads there (keyed by this block's ULID).
    pub fn set_index_cache(&mut self, cache: Arc<dyn super::index::IndexCache>) {
        self.index.set_cache(self.meta.ulid, cache);
    }

    /// The block's metadata.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's index.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// The block's chunk segments.
    pub fn chunks(&self) -> &SegmentReader {
        &self.chunks
    }

    /// The block's deletions.
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Reads one chunk by its index reference.
    pub async fn chunk(&self, meta: &ChunkMeta) -> Result<Chunk, BlockError> {
        self.chunks.chunk(meta.chunk_ref).await
    }

    /// Decodes the float samples of `chunk`, naming block, segment file and offset on error.
    pub fn decode_chunk(
        &self,
        series: &Labels,
        meta: &ChunkMeta,
        chunk: &Chunk,
    ) -> Result<Vec<(i64, f64)>, BlockError> {
        let mut out = Vec::new();
        self.decode_chunk_into(series, meta, chunk, &mut out)?;
        Ok(out)
    }

    /// Appends the float samples of `chunk` to `out`; errors as [`Block::decode_chunk`].
    fn decode_chunk_into(
        &self,
        series: &Labels,
        meta: &ChunkMeta,
        chunk: &Chunk,
        out: &mut Vec<(i64, f64)>,
    ) -> Result<(), BlockError> {
        let segment = (meta.chunk_ref >> 32) as u32;
        let loc = || {
            FileLocation::new(
                self.meta.ulid.to_string(),
                format!("chunks/{}", segment_file_name(segment)),
            )
        };
        let offset = meta.chunk_ref & 0xffff_ffff;
        chunk
            .float_iter()
            .and_then(|it| it.decode_into(out))
            .map_err(|e| match e {
                ChunkError::Unsupported(enc) => loc().unsupported(format!(
                    "series {series} has a chunk at offset {offset} with encoding {}: native histograms are not supported yet",
                    enc.name()
                )),
                other => loc().corrupt_at(offset, format!("series {series}: {other}")),
            })
    }

    /// Labels and samples in `[mint, maxt]` (inclusive) of one series, deletions applied.
    pub async fn series_samples(
        &self,
        series_ref: u32,
        mint: i64,
        maxt: i64,
    ) -> Result<SeriesSamples, BlockError> {
        let (labels, metas) = self.index.series(series_ref).await?;
        let wanted: Vec<ChunkMeta> = metas
            .into_iter()
            .filter(|m| m.max_time >= mint && m.min_time <= maxt)
            .collect();
        let refs: Vec<u64> = wanted.iter().map(|m| m.chunk_ref).collect();
        let chunks = self.chunks.chunks(&refs).await?;
        let samples = self.samples_of(series_ref, &labels, &wanted, &chunks, mint, maxt)?;
        Ok(SeriesSamples { labels, samples })
    }

    /// The samples of one series' `chunks` (read for `metas`) in `[mint, maxt]`, deletions
    /// applied; decoded straight into one buffer and filtered in place.
    fn samples_of(
        &self,
        series_ref: u32,
        labels: &Labels,
        metas: &[ChunkMeta],
        chunks: &[Chunk],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<(i64, f64)>, BlockError> {
        let deleted = self.tombstones.get(u64::from(series_ref));
        let keep = |t: i64| t >= mint && t <= maxt && !deleted.is_some_and(|d| d.contains(t));
        let mut samples = Vec::with_capacity(metas.len() * 120);
        for (meta, chunk) in metas.iter().zip(chunks) {
            let start = samples.len();
            self.decode_chunk_into(labels, meta, chunk, &mut samples)?;
            let mut w = start;
            for r in start..samples.len() {
                let s = samples[r];
                if keep(s.0) {
                    samples[w] = s;
                    w += 1;
                }
            }
            samples.truncate(w);
        }
        Ok(samples)
    }

    /// Every sample of `series` (read by [`Block::select_chunks`]), deletions applied.
    pub fn decode_series(&self, series: &SeriesChunks) -> Result<Vec<(i64, f64)>, BlockError> {
        self.samples_of(
            series.series_ref,
            &series.labels,
            &series.metas,
            &series.chunks,
            i64::MIN,
            i64::MAX,
        )
    }

    /// True when the tombstones delete some of series `series_ref`'s samples.
    pub fn has_deletions(&self, series_ref: u32) -> bool {
        self.tombstones
            .get(u64::from(series_ref))
            .is_some_and(|d| !d.is_empty())
    }

    /// Every series the matchers select, with its samples in `[mint, maxt]`; series left with
    /// no samples are omitted.
    pub async fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        let refs = if matchers.is_empty() {
            self.index.all_postings().await?
        } else {
            self.index.postings_for_matchers(matchers).await?
        };
        self.select_refs(&refs, mint, maxt).await
    }

    /// The series `refs` (as postings give them) with their samples in `[mint, maxt]`, in the
    /// order given; series left with no samples are omitted. Callers split a large postings
    /// list into parts to decode them on several cores.
    pub async fn select_refs(
        &self,
        refs: &[u32],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        let mut out = Vec::with_capacity(refs.len());
        for s in self.chunks_in(refs, mint, maxt).await? {
            let samples =
                self.samples_of(s.series_ref, &s.labels, &s.metas, &s.chunks, mint, maxt)?;
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: s.labels,
                    samples,
                });
            }
        }
        Ok(out)
    }

    /// The series `refs` with every chunk as stored, not decoded, in the order given (a
    /// compactor copies chunks of blocks that do not overlap as they are, as Prometheus does).
    pub async fn select_chunks(&self, refs: &[u32]) -> Result<Vec<SeriesChunks>, BlockError> {
        self.chunks_in(refs, i64::MIN, i64::MAX).await
    }

    /// [`Block::select_chunks`] with each chunk as its record's encoding byte and data, so
    /// that encodings [`Chunk`] does not model (Thanos' aggregate chunks) can be copied.
    pub async fn select_records(&self, refs: &[u32]) -> Result<Vec<SeriesRecords>, BlockError> {
        let (entries, chunk_refs) = self.entries(refs, i64::MIN, i64::MAX).await?;
        let mut records = self.chunks.records(&chunk_refs).await?.into_iter();
        Ok(entries
            .into_iter()
            .map(|(series_ref, labels, metas)| SeriesRecords {
                series_ref,
                labels,
                records: records.by_ref().take(metas.len()).collect(),
                metas,
            })
            .collect())
    }

    /// Index entries of `refs` with their chunks overlapping `[mint, maxt]`, and those chunks'
    /// references in order.
    async fn entries(
        &self,
        refs: &[u32],
        mint: i64,
        maxt: i64,
    ) -> Result<(Vec<(u32, Labels, Vec<ChunkMeta>)>, Vec<u64>), BlockError> {
        let mut entries = Vec::with_capacity(refs.len());
        let mut chunk_refs = Vec::new();
        for (&r, (labels, metas)) in refs.iter().zip(self.index.series_many(refs).await?) {
            let wanted: Vec<ChunkMeta> = metas
                .into_iter()
                .filter(|m| m.max_time >= mint && m.min_time <= maxt)
                .collect();
            chunk_refs.extend(wanted.iter().map(|m| m.chunk_ref));
            entries.push((r, labels, wanted));
        }
        Ok((entries, chunk_refs))
    }

    /// Index entries first, then the chunks overlapping `[mint, maxt]` of all these series
    /// together: series selected by one matcher sit side by side in the segment files, so
    /// their chunks come in a few range reads instead of one per series.
    async fn chunks_in(
        &self,
        refs: &[u32],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesChunks>, BlockError> {
        let (entries, chunk_refs) = self.entries(refs, mint, maxt).await?;
        let mut chunks = self.chunks.chunks(&chunk_refs).await?.into_iter();
        Ok(entries
            .into_iter()
            .map(|(series_ref, labels, metas)| SeriesChunks {
                series_ref,
                labels,
                chunks: chunks.by_ref().take(metas.len()).collect(),
                metas,
            })
            .collect())
    }

    /// Every sample of every series (deletions applied); for tools and tests.
    pub async fn all_series(&self) -> Result<Vec<SeriesSamples>, BlockError> {
        self.select(&[], i64::MIN, i64::MAX).await
    }
}

/// A block file as a range source: the file itself when the bucket is a local directory
/// (positional reads, no object-store round trip per read), else range reads of the object.
fn bucket_source(
    bucket: &Arc<dyn Bucket>,
    id: &str,
    rel: &str,
    size: u64,
    loc: &FileLocation,
) -> Result<Arc<dyn RangeSource>, BlockError> {
    let path = format!("{id}/{rel}");
    match bucket.local_path(&path) {
        Some(local) => Ok(Arc::new(LocalFile::open(&local).map_err(
            |e| match e.kind() {
                std::io::ErrorKind::NotFound => loc.missing(),
                _ => loc.io(e),
            },
        )?)),
        None => Ok(Arc::new(BucketObject::with_size(
            bucket.clone(),
            &path,
            size,
        ))),
    }
}

/// Opens the index from `source`. A local index up to [`INDEX_IN_MEMORY_MAX`] is held in
/// memory; a remote one up to [`INDEX_PREFETCH_MAX`] is fetched whole in one request (instead
/// of four range reads for header, TOC, symbols and postings table, which dominate the
/// opening of a small block over S3) and then read by range again, so memory stays as before.
async fn open_index(
    source: Arc<dyn RangeSource>,
    loc: FileLocation,
    local: bool,
) -> Result<IndexReader, BlockError> {
    let size = source.size();
    let limit = if local {
        INDEX_IN_MEMORY_MAX
    } else {
        INDEX_PREFETCH_MAX
    };
    if size > limit {
        return IndexReader::open(source, loc).await;
    }
    let whole = source.read_range(0..size).await.map_err(|e| loc.io(e))?;
    if whole.len() as u64 != size {
        return Err(loc.io(format!("short read: {} of {size} bytes", whole.len())));
    }
    let index = IndexReader::open(Arc::new(InMemory(whole)), loc.clone()).await?;
    if local {
        // Every series lookup reads the index; a local index this small is cheaper held
        // in memory (slices, no system call per read) than read by range each time.
        return Ok(index);
    }
    index
        .with_source(source)
        .ok_or_else(|| loc.io("index size changed while opening"))
}

/// The block's files as (path relative to the block, size).
pub(crate) async fn block_files(
    bucket: &dyn Bucket,
    meta: &BlockMeta,
) -> Result<Vec<(String, u64)>, BlockError> {
    let id = meta.ulid.to_string();
    if let Some(files) = meta.thanos.as_ref().map(|t| &t.files) {
        let listed: Vec<(String, u64)> = files
            .iter()
            .filter_map(|f| f.size_bytes.map(|s| (f.rel_path.clone(), s)))
            .collect();
        // No file of a block can be larger than an index may be; a size beyond that is a
        // damaged meta.json, and the bucket's listing tells the real sizes.
        let plausible = listed.iter().all(|(_, s)| *s <= MAX_INDEX_SIZE);
        if !plausible {
            tracing::warn!(block = %id, "meta.json lists impossible file sizes; using the bucket's listing");
        } else if listed.iter().any(|(p, _)| p == INDEX_FILENAME) {
            return Ok(listed);
        }
    }
    let prefix = format!("{id}/");
    let objects = bucket
        .list_recursive(&prefix)
        .await
        .map_err(|e| bucket_failure(&FileLocation::new(&id, ""), e))?;
    Ok(objects
        .into_iter()
        .filter_map(|o| {
            o.path
                .strip_prefix(&prefix)
                .map(|rel| (rel.to_string(), o.size))
        })
        .collect())
}

/// The tombstones file of block `id` read from `source`.
async fn read_tombstones(source: &dyn RangeSource, id: &str) -> Result<Tombstones, BlockError> {
    Tombstones::read(source, &FileLocation::new(id, TOMBSTONES_FILENAME)).await
}
