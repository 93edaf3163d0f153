//! The source blocks of a merge or a downsampling, opened for reading. Over a remote bucket
//! each source block is first downloaded whole into the work directory (its files at the same
//! parts fetched in parallel), as Thanos' compactor does: a merge reads every byte of every
//! source, and one request per few hundred kilobytes while merging, one block after another,
//! leaves the merge waiting on round trips (and on s3s-fs, which streams a response 4 KiB per
//! file read, on the server). A bucket that is a local directory is read in place.

use super::merge::MergeError;
use crate::block::error::{BlockError, FileLocation};
use crate::block::meta::BlockMeta;
use crate::block::reader::{block_files, INDEX_FILENAME};
use crate::block::Block;
use crate::bucket::Bucket;
use futures::{StreamExt, TryStreamExt};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ulid::Ulid;

/// Bytes fetched by one range request.
const PART_SIZE: u64 = 8 << 20;
/// Range requests in flight at once.
const CONCURRENCY: usize = 8;

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

/// One range of one file to fetch.
struct Part {
    block: Ulid,
    rel: String,
    local: PathBuf,
    range: std::ops::Range<u64>,
}

/// Opens `metas`' blocks: in place when the bucket is a local directory, else downloaded
/// into `dir` first. Errors name the source block, so that the caller can mark it.
pub async fn open_sources(
    bucket: &Arc<dyn Bucket>,
    metas: &[BlockMeta],
    dir: &Path,
) -> Result<Sources, MergeError> {
    open_sources_in_parts(bucket, metas, dir, PART_SIZE).await
}

async fn open_sources_in_parts(
    bucket: &Arc<dyn Bucket>,
    metas: &[BlockMeta],
    dir: &Path,
    part_size: u64,
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
    let mut sources = Sources {
        blocks: Vec::with_capacity(metas.len()),
        downloaded: Some(dir.to_path_buf()),
    };
    let mut parts = Vec::new();
    for m in metas {
        let id = m.ulid.to_string();
        let block_dir = dir.join(&id);
        let loc = FileLocation::new(&id, "");
        let files = block_files(bucket.as_ref(), m)
            .await
            .map_err(source(m.ulid))?;
        let local_err = |e: std::io::Error| MergeError::Output(loc.io(e));
        std::fs::create_dir_all(block_dir.join("chunks")).map_err(local_err)?;
        m.write_to_dir(&block_dir).map_err(local_err)?;
        for (rel, size) in files {
            // meta.json is the one given (already read and checked by the caller); anything
            // else outside the block's own files is not read.
            if rel == crate::block::meta::META_FILENAME || rel.contains("..") {
                continue;
            }
            let local = block_dir.join(&rel);
            let file_loc = FileLocation::new(&id, &rel);
            local
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::File::create(&local))
                .and_then(|f| f.set_len(size))
                .map_err(|e| MergeError::Output(file_loc.io(e)))?;
            let mut at = 0;
            while at < size {
                let end = (at + part_size.max(1)).min(size);
                parts.push(Part {
                    block: m.ulid,
                    rel: rel.clone(),
                    local: local.clone(),
                    range: at..end,
                });
                at = end;
            }
        }
    }
    futures::stream::iter(parts)
        .map(|p| fetch(bucket, p))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    for m in metas {
        let b = Block::open_dir(&dir.join(m.ulid.to_string()))
            .await
            .map_err(source(m.ulid))?;
        sources.blocks.push(Arc::new(b));
    }
    Ok(sources)
}

/// Fetches one part and writes it at its offset.
async fn fetch(bucket: &Arc<dyn Bucket>, p: Part) -> Result<(), MergeError> {
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
    let (local, start) = (p.local, p.range.start);
    tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&local)
            .and_then(|f| f.write_all_at(&bytes, start))
    })
    .await
    .map_err(|e| MergeError::Output(loc.io(e)))?
    .map_err(|e| MergeError::Output(loc.io(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::{bucket, put_block, samples, series_labels};

    #[tokio::test]
    async fn remote_sources_are_downloaded_whole_and_read_as_in_the_bucket() {
        let b = bucket();
        let series = (0..50)
            .map(|i| (series_labels("up", i), samples(0, 300, 15_000)))
            .collect();
        let m = put_block(b.as_ref(), series, 0, 300 * 15_000, &[]).await;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sources");
        // Parts of 1000 bytes: every file comes in many pieces that must join up.
        let sources = open_sources_in_parts(&b, std::slice::from_ref(&m), &dir, 1000)
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
    async fn a_missing_source_file_names_the_block_and_file() {
        let b = bucket();
        let m = put_block(
            b.as_ref(),
            vec![(series_labels("up", 1), samples(0, 10, 1000))],
            0,
            10_000,
            &[],
        )
        .await;
        b.delete(&format!("{}/chunks/000001", m.ulid))
            .await
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let err = open_sources(&b, std::slice::from_ref(&m), tmp.path())
            .await
            .unwrap_err();
        match err {
            MergeError::Source {
                block,
                source: BlockError::Missing { file, .. },
            } => {
                assert_eq!(block, m.ulid);
                assert_eq!(file, "chunks/000001");
            }
            other => panic!("expected a missing source file, got {other}"),
        }
    }
}
