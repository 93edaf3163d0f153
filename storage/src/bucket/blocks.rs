//! Blocks in the bucket, laid out as Thanos does:
//!
//! ```text
//! [prefix/]<ULID>/chunks/000001…  [prefix/]<ULID>/index  [prefix/]<ULID>/meta.json (last)
//! ```
//!
//! meta.json is written last and deleted first: a block without it is a partial upload that
//! readers never see.

use super::marks::DELETION_MARK_FILENAME;
use super::{Bucket, BucketError};
use crate::block::error::{BlockError, FileLocation};
use crate::block::meta::{BlockFile, BlockMeta, META_FILENAME};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use ulid::Ulid;

/// Name of the index file.
pub const INDEX_FILENAME: &str = "index";
/// Name of the chunk segment directory.
pub const CHUNKS_DIRNAME: &str = "chunks";

/// Data files of one block uploaded at once. Each upload holds up to a part in memory (and a
/// multipart upload a few), so this stays small.
const UPLOAD_CONCURRENCY: usize = 2;
/// Files of one block deleted at once: each deletion only waits on the bucket.
const DELETE_CONCURRENCY: usize = 4;

/// Progress of `upload_block`, reported after each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes uploaded so far.
    pub bytes_done: u64,
    /// Bytes the whole block will take, meta.json included.
    pub bytes_total: u64,
    /// The file just finished (`chunks/000001`, `index`, `meta.json`); empty at the start.
    pub file: String,
}

/// A callback for upload progress (a CLI progress bar, say).
pub type ProgressFn<'a> = &'a (dyn Fn(&UploadProgress) + Send + Sync);

/// Uploads the block in `dir` (whose name must be `meta.ulid`, as in Thanos): `chunks/*` and
/// `index` (two at a time, started in that order), then meta.json with `thanos.files` filled
/// in. Returns the meta as uploaded. A failure leaves a partial upload without meta.json,
/// invisible to readers; a retry overwrites it.
pub async fn upload_block(
    bucket: &dyn Bucket,
    dir: &Path,
    meta: &BlockMeta,
    progress: Option<ProgressFn<'_>>,
) -> Result<BlockMeta, BlockError> {
    let block = meta.ulid.to_string();
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if dir_name.as_deref() != Some(block.as_str()) {
        return Err(BlockError::InvalidInput {
            block,
            reason: format!("directory {} is not named after the block", dir.display()),
        });
    }
    let files = local_files(&block, dir)?;
    let mut meta = meta.clone();
    let mut listed: Vec<BlockFile> = files
        .iter()
        .map(|(rel, _, size)| BlockFile {
            rel_path: rel.clone(),
            size_bytes: Some(*size),
            hash: None,
        })
        .collect();
    listed.push(BlockFile {
        rel_path: META_FILENAME.to_string(),
        size_bytes: None,
        hash: None,
    });
    listed.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    meta.thanos_mut().files = listed;
    let meta_json = meta.to_json();

    let mut p = UploadProgress {
        bytes_done: 0,
        bytes_total: files.iter().map(|f| f.2).sum::<u64>() + meta_json.len() as u64,
        file: String::new(),
    };
    let report = |p: &UploadProgress| {
        if let Some(f) = progress {
            f(p)
        }
    };
    report(&p);
    // Readers see nothing before meta.json, so the data files need no order among
    // themselves: two at a time (a block's chunks and its index, in the common case of one
    // segment file), which keeps the upload's own hashing on both cores of a small machine.
    let uploads: Vec<_> = files
        .iter()
        .map(|(rel, local, _)| {
            let (block, rel, local) = (block.clone(), rel.clone(), local.clone());
            async move {
                match bucket.upload_file(&format!("{block}/{rel}"), &local).await {
                    Ok(n) => Ok((rel, n)),
                    Err(e) => Err(FileLocation::new(&block, &rel).io(e)),
                }
            }
        })
        .collect();
    let mut uploads = futures::stream::iter(uploads).buffer_unordered(UPLOAD_CONCURRENCY);
    // After a failure the others still run to their end: a multipart upload dropped midway
    // would leave its parts behind in the bucket, unaborted.
    let mut failed = None;
    while let Some(r) = uploads.next().await {
        match r {
            Ok((rel, n)) => {
                p.bytes_done += n;
                p.file = rel;
                report(&p);
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    drop(uploads);
    if let Some(e) = failed {
        return Err(e);
    }
    bucket
        .put(
            &format!("{block}/{META_FILENAME}"),
            Bytes::from(meta_json.clone()),
        )
        .await
        .map_err(|e| FileLocation::new(&block, META_FILENAME).io(e))?;
    p.bytes_done += meta_json.len() as u64;
    p.file = META_FILENAME.to_string();
    report(&p);
    tracing::info!(%block, bytes = p.bytes_done, "uploaded block");
    Ok(meta)
}

/// The block's data files in upload order: sorted `chunks/*`, then `index`.
fn local_files(block: &str, dir: &Path) -> Result<Vec<(String, PathBuf, u64)>, BlockError> {
    let chunks_dir = dir.join(CHUNKS_DIRNAME);
    let loc = FileLocation::new(block, CHUNKS_DIRNAME);
    let entries = match std::fs::read_dir(&chunks_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(loc.missing()),
        Err(e) => return Err(loc.io(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| loc.io(e))?;
        let md = entry.metadata().map_err(|e| loc.io(e))?;
        if md.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((format!("{CHUNKS_DIRNAME}/{name}"), entry.path(), md.len()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let index = dir.join(INDEX_FILENAME);
    let iloc = FileLocation::new(block, INDEX_FILENAME);
    let md = match std::fs::metadata(&index) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(iloc.missing()),
        Err(e) => return Err(iloc.io(e)),
    };
    out.push((INDEX_FILENAME.to_string(), index, md.len()));
    Ok(out)
}

/// ULIDs of the top-level directories that parse as ULIDs, sorted.
pub async fn list_block_ids(bucket: &dyn Bucket) -> Result<Vec<Ulid>, BucketError> {
    let mut ids: Vec<Ulid> = bucket
        .list_dir("")
        .await?
        .iter()
        .filter_map(|e| e.strip_suffix('/'))
        .filter_map(|d| Ulid::from_string(d).ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// What `fetch_metas` found.
#[derive(Debug, Default)]
pub struct FetchedMetas {
    /// Blocks with a readable meta.json, by ULID.
    pub metas: BTreeMap<Ulid, BlockMeta>,
    /// Directories without meta.json: uploads in progress or abandoned.
    pub partial: Vec<Ulid>,
    /// Blocks whose meta.json is unreadable, with the error naming the block.
    pub corrupt: Vec<(Ulid, BlockError)>,
}

/// Reads every block's meta.json, without filters: [`super::fetcher::MetaFetcher`] in the
/// shape older callers use. A bucket failure fails the whole fetch (so a flaky listing never
/// looks like missing blocks); a damaged meta.json only lands its block in `corrupt`.
pub async fn fetch_metas(bucket: &dyn Bucket) -> Result<FetchedMetas, BucketError> {
    let f = super::fetcher::read_all(bucket).await?;
    Ok(FetchedMetas {
        metas: f.metas,
        partial: f.partial,
        corrupt: f.failed.into_iter().collect(),
    })
}

/// Reads one block's meta.json.
pub async fn read_meta(bucket: &dyn Bucket, id: Ulid) -> Result<BlockMeta, BlockError> {
    let block = id.to_string();
    let loc = FileLocation::new(&block, META_FILENAME);
    match bucket.get(&format!("{block}/{META_FILENAME}")).await {
        Ok(d) => BlockMeta::parse(&block, &d),
        Err(e) if e.is_not_found() => Err(loc.missing()),
        Err(e) => Err(loc.io(e)),
    }
}

/// Deletes a block in Thanos' order: meta.json first (the block disappears for readers at
/// once), then its other files, the deletion mark last (so an interrupted delete is still
/// marked and gets finished).
pub async fn delete_block(bucket: &dyn Bucket, id: Ulid) -> Result<(), BlockError> {
    let block = id.to_string();
    let io = |file: &str, e: BucketError| FileLocation::new(&block, file).io(e);
    bucket
        .delete(&format!("{block}/{META_FILENAME}"))
        .await
        .map_err(|e| io(META_FILENAME, e))?;
    let objects = bucket
        .list_recursive(&block)
        .await
        .map_err(|e| io("(listing)", e))?;
    let mark = format!("{block}/{DELETION_MARK_FILENAME}");
    let dir = format!("{block}/");
    // The files between meta.json and the mark in any order, a few at a time.
    let block_name = &block;
    let deletions: Vec<_> = objects
        .iter()
        .filter(|o| o.path != mark)
        .map(|o| {
            let path = o.path.clone();
            let file = path.strip_prefix(&dir).unwrap_or(&path).to_string();
            async move {
                bucket
                    .delete(&path)
                    .await
                    .map_err(|e| FileLocation::new(block_name, &file).io(e))
            }
        })
        .collect();
    futures::stream::iter(deletions)
        .buffer_unordered(DELETE_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    bucket
        .delete(&mark)
        .await
        .map_err(|e| io(DELETION_MARK_FILENAME, e))
}

#[cfg(test)]
#[path = "blocks_tests.rs"]
mod tests;
