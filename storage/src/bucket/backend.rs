//! `ObjectStoreBucket`: the one backend, over any `object_store::ObjectStore` (S3, a local
//! directory, memory).

use super::config::DEFAULT_PART_SIZE;
use super::errors::{from_object_store, Identity};
use super::{Bucket, BucketError, ErrorKind, ObjectInfo};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Parts of one multipart upload in flight at once; bounds memory to about
/// `(MULTIPART_CONCURRENCY + 1) * part_size`.
const MULTIPART_CONCURRENCY: usize = 2;
/// Read buffer for streaming a local file into an upload.
const READ_BUF: usize = 1 << 20;

/// A `Bucket` over an `object_store::ObjectStore`.
#[derive(Debug, Clone)]
pub struct ObjectStoreBucket {
    store: Arc<dyn ObjectStore>,
    description: String,
    part_size: u64,
    multipart: bool,
    identity: Identity,
    /// The directory objects live in, for a local-directory store.
    local_root: Option<PathBuf>,
}

impl ObjectStoreBucket {
    /// Wraps a store; `description` is what `describe()` returns (`s3://bucket`, ...).
    pub fn new(store: Arc<dyn ObjectStore>, description: impl Into<String>) -> Self {
        ObjectStoreBucket {
            store,
            description: description.into(),
            part_size: DEFAULT_PART_SIZE,
            multipart: true,
            identity: Identity::None,
            local_root: None,
        }
    }

    /// An empty bucket in memory, for tests.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), "memory://")
    }

    /// Uploads files larger than `part_size` in parts of that size; `multipart: false` always
    /// uploads whole objects.
    pub fn with_part_size(mut self, part_size: u64, multipart: bool) -> Self {
        self.part_size = part_size.max(1);
        self.multipart = multipart;
        self
    }

    /// Records the access key id so refused-credential errors can name it.
    pub(crate) fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Marks the store as a local directory whose objects are the files under `root`.
    pub(crate) fn with_local_root(mut self, root: PathBuf) -> Self {
        self.local_root = Some(root);
        self
    }

    /// The same bucket over another store (a prefixed view of it, say); a local root moves
    /// to `root/prefix`.
    pub(crate) fn with_store(
        mut self,
        store: Arc<dyn ObjectStore>,
        description: String,
        prefix: &str,
    ) -> Self {
        self.store = store;
        self.description = description;
        self.local_root = self.local_root.take().and_then(|root| {
            let p = object_path("open", prefix).ok()?;
            Some(p.parts().fold(root, |dir, part| dir.join(part.as_ref())))
        });
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn map(&self, op: &'static str, path: &str, err: object_store::Error) -> BucketError {
        from_object_store(op, path, err, &self.identity)
    }

    async fn upload_multipart(
        &self,
        location: &ObjectPath,
        path: &str,
        file: &mut tokio::fs::File,
    ) -> Result<u64, BucketError> {
        let upload = self
            .store
            .put_multipart(location)
            .await
            .map_err(|e| self.map("upload", path, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size as usize);
        let mut buf = vec![0u8; READ_BUF];
        let mut written = 0u64;
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(local_io("upload", path, e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(MULTIPART_CONCURRENCY).await {
                // The writer's drop aborts nothing on its own; abort so no parts linger.
                let _ = writer.abort().await;
                return Err(self.map("upload", path, e));
            }
            writer.write(buf.get(..n).unwrap_or_default());
            written += n as u64;
        }
        writer
            .finish()
            .await
            .map_err(|e| self.map("upload", path, e))?;
        Ok(written)
    }
}

fn local_io(op: &'static str, path: &str, e: std::io::Error) -> BucketError {
    BucketError {
        kind: ErrorKind::LocalIo,
        op,
        path: path.to_string(),
        message: format!("local file: {e}"),
        source: Some(Box::new(e)),
    }
}

/// Copies `local` to `dest` in a local-directory bucket: into a temporary name (`#<n>`, which
/// listings skip, as object_store's own uploads do), then renamed into place. The kernel copies
/// (`copy_file_range`), instead of reading the whole file into memory and writing it out.
fn copy_into(local: &Path, dest: &Path) -> std::io::Result<u64> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!("#{}", rand::random::<u32>()));
    let tmp = PathBuf::from(tmp);
    let copied = std::fs::copy(local, &tmp).and_then(|n| std::fs::rename(&tmp, dest).map(|()| n));
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

/// Validates a bucket path: `/`-separated, no empty segments, no `.`/`..`.
pub(crate) fn object_path(op: &'static str, path: &str) -> Result<ObjectPath, BucketError> {
    ObjectPath::parse(path).map_err(|e| {
        BucketError::new(
            ErrorKind::Other,
            op,
            path,
            format!("invalid object path: {e}"),
        )
    })
}

fn info(meta: ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        path: meta.location.to_string(),
        size: meta.size,
        last_modified_ms: meta.last_modified.timestamp_millis(),
    }
}

/// `dir` as a listing prefix: `None` for the top.
fn dir_prefix(op: &'static str, dir: &str) -> Result<Option<ObjectPath>, BucketError> {
    let trimmed = dir.trim_matches('/');
    if trimmed.is_empty() {
        Ok(None)
    } else {
        object_path(op, trimmed).map(Some)
    }
}

#[async_trait]
impl Bucket for ObjectStoreBucket {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn local_path(&self, path: &str) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        // The same validation as every other operation: no `..` can leave the root.
        let p = object_path("local_path", path).ok()?;
        Some(
            p.parts()
                .fold(root.clone(), |dir, part| dir.join(part.as_ref())),
        )
    }

    async fn get(&self, path: &str) -> Result<Bytes, BucketError> {
        let loc = object_path("get", path)?;
        let res = self
            .store
            .get(&loc)
            .await
            .map_err(|e| self.map("get", path, e))?;
        res.bytes().await.map_err(|e| self.map("get", path, e))
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        let loc = object_path("get_range", path)?;
        if range.start > range.end {
            return Err(BucketError::new(
                ErrorKind::Other,
                "get_range",
                path,
                format!("empty range {}..{}", range.start, range.end),
            ));
        }
        if range.start == range.end {
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let data = self
            .store
            .get_range(&loc, range.clone())
            .await
            .map_err(|e| self.map("get_range", path, e))?;
        if data.len() as u64 != want {
            return Err(BucketError::new(
                ErrorKind::Other,
                "get_range",
                path,
                format!(
                    "short read: asked for {}..{} ({want} bytes), got {}",
                    range.start,
                    range.end,
                    data.len()
                ),
            ));
        }
        Ok(data)
    }

    async fn head(&self, path: &str) -> Result<ObjectInfo, BucketError> {
        let loc = object_path("head", path)?;
        let meta = self
            .store
            .head(&loc)
            .await
            .map_err(|e| self.map("head", path, e))?;
        Ok(info(meta))
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<(), BucketError> {
        let loc = object_path("put", path)?;
        self.store
            .put(&loc, PutPayload::from(data))
            .await
            .map_err(|e| self.map("put", path, e))?;
        Ok(())
    }

    async fn upload_file(&self, path: &str, local: &Path) -> Result<u64, BucketError> {
        let loc = object_path("upload", path)?;
        if let Some(dest) = self.local_path(path) {
            let (local, owned) = (local.to_path_buf(), path.to_string());
            return tokio::task::spawn_blocking(move || copy_into(&local, &dest))
                .await
                .map_err(|e| local_io("upload", path, std::io::Error::other(e)))?
                .map_err(|e| local_io("upload", &owned, e));
        }
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| local_io("upload", path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| local_io("upload", path, e))?
            .len();
        if self.multipart && size > self.part_size {
            return self.upload_multipart(&loc, path, &mut file).await;
        }
        let mut data = Vec::with_capacity(size as usize);
        file.read_to_end(&mut data)
            .await
            .map_err(|e| local_io("upload", path, e))?;
        let n = data.len() as u64;
        self.store
            .put(&loc, PutPayload::from(data))
            .await
            .map_err(|e| self.map("upload", path, e))?;
        Ok(n)
    }

    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        let loc = object_path("delete", path)?;
        match self.store.delete(&loc).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map("delete", path, e)),
        }
    }

    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        let prefix = dir_prefix("list_dir", dir)?;
        let res = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| self.map("list_dir", dir, e))?;
        let mut out: Vec<String> = res
            .objects
            .into_iter()
            .map(|o| o.location.to_string())
            .chain(res.common_prefixes.into_iter().map(|p| format!("{p}/")))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn list_recursive(&self, prefix: &str) -> Result<Vec<ObjectInfo>, BucketError> {
        let p = dir_prefix("list", prefix)?;
        let mut out: Vec<ObjectInfo> = self
            .store
            .list(p.as_ref())
            .map_ok(info)
            .try_collect()
            .await
            .map_err(|e| self.map("list", prefix, e))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}
