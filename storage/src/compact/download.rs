//! The source blocks of a merge or a downsampling, opened for reading. Over a remote bucket
//! each source block is first fetched whole (its files at the same time, in parts fetched in
//! parallel), as Thanos' compactor does: a merge reads every byte of every source, and one
//! request per few hundred kilobytes while merging, one block after another, leaves the merge
//! waiting on round trips (and on s3s-fs, which streams a response 4 KiB per file read, on
//! the server). Sources of up to [`IN_MEMORY_MAX`] bytes are held in memory; larger ones are
//! written into the work directory. A bucket that is a local directory is read in place.

use super::merge::MergeError;
use crate::block::error::{BlockError, FileLocation};
use crate::block::meta::BlockMeta;
use crate::block::reader::{block_files, INDEX_FILENAME};
use crate::block::Block;
use crate::bucket::Bucket;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ulid::Ulid;

/// Bytes fetched by one range request.
const PART_SIZE: u64 = 8 << 20;
/// Range requests in flight at once.
const CONCURRENCY: usize = 8;
/// Bytes fetched by one range request into memory: with several files fetched at once,
/// larger parts cost no parallelism and spare the copy that joins parts.
const MEMORY_PART_SIZE: u64 = 64 << 20;
/// The sources of one merge whose files add up to at most this many bytes are fetched into
/// memory and read from there, rather than written to local disk and read back: that write
/// and read were most of a merge's kernel time over S3 (a day of the bench's 2h blocks, four
/// 19 MB sources per merge). Memory held for one merge's sources stays below this plus
/// `CONCURRENCY * PART_SIZE` of parts in flight.
pub const IN_MEMORY_MAX: u64 = 256 << 20;

/// Opened source blocks; downloaded copies are removed when this is dropped.
#[derive(Debug)]
pub struct Sources {
    /// The blocks, in the order of the metas given.
    pub blocks: Vec<Arc<Block>>,
    downloaded: Option<PathBuf>,
}

impl Drop for Sources {
    fn drop(&mut self) {
        if let Some(dir) = &self.downloaded {
            // The work directory is cleaned before each job anyway; a leftover is harmless.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Bytes per range request, by where the sources go.
#[derive(Debug, Clone, Copy)]
struct PartSizes {
    disk: u64,
    memory: u64,
}

/// One range of one file to fetch; `file` indexes the list of files being fetched.
struct Part {
    block: Ulid,
    rel: String,
    file: usize,
    range: std::ops::Range<u64>,
}

/// A source block's files to fetch: (path relative to the block, size).
type Listed = Vec<(BlockMeta, Vec<(String, u64)>)>;

/// Opens `metas`' blocks: in place when the bucket is a local directory, else fetched first
/// (into memory up to [`IN_MEMORY_MAX`] bytes in all, else into `dir`). Errors name the
/// source block, so that the caller can mark it.
pub async fn open_sources(
    bucket: &Arc<dyn Bucket>,
    metas: &[BlockMeta],
    dir: &Path,
) -> Result<Sources, MergeError> {
    let parts = PartSizes {
        disk: PART_SIZE,
        memory: MEMORY_PART_SIZE,
    };
    open_sources_with(bucket, metas, dir, parts, IN_MEMORY_MAX).await
}

async fn open_sources_with(
    bucket: &Arc<dyn Bucket>,
    metas: &[BlockMeta],
    dir: &Path,
    parts: PartSizes,
    in_memory_max: u64,
) -> Result<Sources, MergeError> {
    let source = |block: Ulid| move |source: BlockError| MergeError::Source { block, source };
    let remote = metas.iter().any(|m| {
        bucket
            .local_path(&format!("{}/{INDEX_FILENAME}", m.ulid))
            .is_none()
    });
    if !remote {
        let mut blocks = Vec::with_capacity(metas.len());
        for m in metas {
            let b = Block::open_bucket(bucket.clone(), m.clone())
                .await
                .map_err(source(m.ulid))?;
            blocks.push(Arc::new(b));
        }
        return Ok(Sources {
            blocks,
            downloaded: None,
        });
    }
    let mut listed: Listed = Vec::with_capacity(metas.len());
    for m in metas {
        let files = block_files(bucket.as_ref(), m)
            .await
            .map_err(source(m.ulid))?
            .into_iter()
            // meta.json is the one given (already read and checked by the caller); anything
            // else outside the block's own files is not read.
            .filter(|(rel, _)| rel != crate::block::meta::META_FILENAME && !rel.contains(".."))
            .collect();
        listed.push((m.clone(), files));
    }
    let total = listed
        .iter()
        .flat_map(|(_, files)| files.iter().map(|f| f.1))
        .fold(0u64, u64::saturating_add);
    if total <= in_memory_max {
        fetch_into_memory(bucket, listed, parts.memory.max(1)).await
    } else {
        fetch_into_dir(bucket, listed, dir, parts.disk.max(1)).await
    }
}

/// The parts of `listed`'s files, and the files in the order `Part::file` indexes them.
fn split(listed: &Listed, part_size: u64) -> (Vec<Part>, Vec<(usize, String, u64)>) {
    let mut parts = Vec::new();
    let mut files = Vec::new();
    for (b, (m, fs)) in listed.iter().enumerate() {
        for (rel, size) in fs {
            let file = files.len();
            files.push((b, rel.clone(), *size));
            let mut at = 0;
            while at < *size {
                let end = (at + part_size).min(*size);
                parts.push(Part {
                    block: m.ulid,
                    rel: rel.clone(),
                    file,
                    range: at..end,
                });
                at = end;
            }
        }
    }
    (parts, files)
}

/// Fetches every file into memory and opens the blocks from there.
async fn fetch_into_memory(
    bucket: &Arc<dyn Bucket>,
    listed: Listed,
    part_size: u64,
) -> Result<Sources, MergeError> {
    let (parts, files) = split(&listed, part_size);
    // A file fetched in one part is kept as received; one in several is joined into a
    // buffer allocated when its first part arrives.
    let mut whole: Vec<Option<Bytes>> = vec![None; files.len()];
    let mut joined: Vec<Vec<u8>> = vec![Vec::new(); files.len()];
    let mut fetched = futures::stream::iter(parts)
        .map(|p| async move {
            let bytes = get_part(bucket, &p).await?;
            Ok::<_, MergeError>((p, bytes))
        })
        .buffer_unordered(CONCURRENCY);
    while let Some((p, bytes)) = fetched.try_next().await? {
        let size = files.get(p.file).map_or(0, |f| f.2);
        if p.range.start == 0 && p.range.end == size {
            if let Some(w) = whole.get_mut(p.file) {
                *w = Some(bytes);
            }
            continue;
        }
        let Some(buf) = joined.get_mut(p.file) else {
            continue;
        };
        if buf.is_empty() {
            *buf = vec![0u8; size as usize];
        }
        let at = p.range.start as usize..p.range.end as usize;
        if let Some(dest) = buf.get_mut(at) {
            dest.copy_from_slice(&bytes);
        }
    }
    drop(fetched);
    let mut by_block: Vec<BTreeMap<String, Bytes>> = vec![BTreeMap::new(); listed.len()];
    for (((b, rel, _), w), j) in files.into_iter().zip(whole).zip(joined) {
        let data = w.unwrap_or_else(|| Bytes::from(j));
        if let Some(map) = by_block.get_mut(b) {
            map.insert(rel, data);
        }
    }
    let mut blocks = Vec::with_capacity(listed.len());
    for ((m, _), files) in listed.into_iter().zip(by_block) {
        let id = m.ulid;
        let b = Block::open_memory(m, &files)
            .await
            .map_err(|source| MergeError::Source { block: id, source })?;
        blocks.push(Arc::new(b));
    }
    Ok(Sources {
        blocks,
        downloaded: None,
    })
}

/// Fetches every file into `dir` (one directory per block) and opens the blocks from there.
async fn fetch_into_dir(
    bucket: &Arc<dyn Bucket>,
    listed: Listed,
    dir: &Path,
    part_size: u64,
) -> Result<Sources, MergeError> {
    let mut sources = Sources {
        blocks: Vec::with_capacity(listed.len()),
        downloaded: Some(dir.to_path_buf()),
    };
    let (parts, files) = split(&listed, part_size);
    let mut locals = Vec::with_capacity(files.len());
    for (m, _) in &listed {
        let id = m.ulid.to_string();
        let block_dir = dir.join(&id);
        let local_err = |e: std::io::Error| MergeError::Output(FileLocation::new(&id, "").io(e));
        std::fs::create_dir_all(block_dir.join("chunks")).map_err(local_err)?;
        m.write_to_dir(&block_dir).map_err(local_err)?;
    }
    for (b, rel, size) in &files {
        let Some((m, _)) = listed.get(*b) else {
            continue;
        };
        let id = m.ulid.to_string();
        let local = dir.join(&id).join(rel);
        local
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(&local))
            .and_then(|f| f.set_len(*size))
            .map_err(|e| MergeError::Output(FileLocation::new(&id, rel).io(e)))?;
        locals.push(local);
    }
    let locals = &locals;
    futures::stream::iter(parts)
        .map(|p| async move {
            let bytes = get_part(bucket, &p).await?;
            let loc = FileLocation::new(p.block.to_string(), &p.rel);
            let local = locals.get(p.file).cloned().unwrap_or_default();
            let start = p.range.start;
            tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&local)
                    .and_then(|f| f.write_all_at(&bytes, start))
            })
            .await
            .map_err(|e| MergeError::Output(loc.io(e)))?
            .map_err(|e| MergeError::Output(loc.io(e)))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    for (m, _) in &listed {
        let b = Block::open_dir(&dir.join(m.ulid.to_string()))
            .await
            .map_err(|source| MergeError::Source {
                block: m.ulid,
                source,
            })?;
        sources.blocks.push(Arc::new(b));
    }
    Ok(sources)
}

/// Fetches one part, checking that all of it came.
async fn get_part(bucket: &Arc<dyn Bucket>, p: &Part) -> Result<Bytes, MergeError> {
    let id = p.block.to_string();
    let loc = FileLocation::new(&id, &p.rel);
    let fail = |source: BlockError| MergeError::Source {
        block: p.block,
        source,
    };
    let want = p.range.end - p.range.start;
    let bytes = bucket
        .get_range(&format!("{id}/{}", p.rel), p.range.clone())
        .await
        .map_err(|e| {
            fail(if e.is_not_found() {
                loc.missing()
            } else {
                loc.io(e)
            })
        })?;
    if bytes.len() as u64 != want {
        return Err(fail(loc.io(format!(
            "short read at offset {}: wanted {want} bytes, got {}",
            p.range.start,
            bytes.len()
        ))));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::{bucket, put_block, samples, series_labels};

    fn parts(n: u64) -> PartSizes {
        PartSizes { disk: n, memory: n }
    }

    #[tokio::test]
    async fn remote_sources_are_downloaded_whole_and_read_as_in_the_bucket() {
        let b = bucket();
        let series = (0..50)
            .map(|i| (series_labels("up", i), samples(0, 300, 15_000)))
            .collect();
        let m = put_block(b.as_ref(), series, 0, 300 * 15_000, &[]).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sources");
        // Parts of 1000 bytes: every file comes in many pieces that must join up. A memory
        // bound of 0 sends them to disk.
        let sources = open_sources_with(&b, std::slice::from_ref(&m), &dir, parts(1000), 0)
            .await
            .unwrap();
        assert!(dir.join(m.ulid.to_string()).join("index").is_file());
        let remote = Block::open_bucket(b.clone(), m.clone()).await.unwrap();
        assert_eq!(
            sources.blocks[0].all_series().await.unwrap(),
            remote.all_series().await.unwrap()
        );
        drop(sources);
        assert!(!dir.exists(), "downloaded sources are removed when dropped");
    }

    #[tokio::test]
    async fn small_remote_sources_are_read_from_memory_as_in_the_bucket() {
        let b = bucket();
        let mut metas = Vec::new();
        for k in 0..2i64 {
            let series = (0..40)
                .map(|i| {
                    (
                        series_labels("up", i),
                        samples(k * 300 * 15_000, 300, 15_000),
                    )
                })
                .collect();
            let (lo, hi) = (k * 300 * 15_000, (k + 1) * 300 * 15_000);
            metas.push(put_block(b.as_ref(), series, lo, hi, &[]).await);
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sources");
        // Parts of 700 bytes, some files in one part and most in many: both must come whole.
        let sources = open_sources_with(&b, &metas, &dir, parts(700), u64::MAX)
            .await
            .unwrap();
        assert!(
            !dir.exists(),
            "sources within the memory bound never touch disk"
        );
        assert_eq!(sources.blocks.len(), 2);
        for (m, got) in metas.iter().zip(&sources.blocks) {
            assert_eq!(got.meta().ulid, m.ulid, "blocks come in the order given");
            let remote = Block::open_bucket(b.clone(), m.clone()).await.unwrap();
            assert_eq!(
                got.all_series().await.unwrap(),
                remote.all_series().await.unwrap()
            );
        }
    }

    /// `err` names `file` of `block` as missing.
    fn assert_missing(err: MergeError, want_block: Ulid, want_file: &str) {
        match err {
            MergeError::Source {
                block,
                source: BlockError::Missing { file, .. },
            } => {
                assert_eq!(block, want_block);
                assert_eq!(file, want_file);
            }
            other => panic!("expected a missing source file, got {other}"),
        }
    }

    #[tokio::test]
    async fn impossible_sizes_in_meta_json_give_way_to_the_listing() {
        let (b, real) = one_small_block().await;
        let mut m = real.clone();
        // Sizes no TSDB file can have, whose sum would also wrap around.
        for f in &mut m.thanos_mut().files {
            if f.size_bytes.is_some() {
                f.size_bytes = Some(u64::MAX / 2 + 7);
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sources");
        let sources = open_sources_with(
            &b,
            std::slice::from_ref(&m),
            &dir,
            parts(1000),
            IN_MEMORY_MAX,
        )
        .await
        .unwrap();
        let remote = Block::open_bucket(b.clone(), real).await.unwrap();
        assert_eq!(
            sources.blocks[0].all_series().await.unwrap(),
            remote.all_series().await.unwrap()
        );
    }

    /// A bucket holding one block of one short series.
    async fn one_small_block() -> (Arc<dyn Bucket>, BlockMeta) {
        let b = bucket();
        let m = put_block(
            b.as_ref(),
            vec![(series_labels("up", 1), samples(0, 10, 1000))],
            0,
            10_000,
            &[],
        )
        .await;
        (b, m)
    }

    #[tokio::test]
    async fn a_missing_file_of_a_source_held_in_memory_names_the_block() {
        let (b, m) = one_small_block().await;
        b.delete(&format!("{}/index", m.ulid)).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let err = open_sources_with(
            &b,
            std::slice::from_ref(&m),
            tmp.path(),
            parts(1000),
            u64::MAX,
        )
        .await
        .unwrap_err();
        assert_missing(err, m.ulid, "index");
    }

    #[tokio::test]
    async fn a_missing_source_file_names_the_block_and_file() {
        let (b, m) = one_small_block().await;
        b.delete(&format!("{}/chunks/000001", m.ulid))
            .await
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let err = open_sources(&b, std::slice::from_ref(&m), tmp.path())
            .await
            .unwrap_err();
        assert_missing(err, m.ulid, "chunks/000001");
    }
}
