//! Brings an input block to local disk before downsampling, as Thanos' compactor does: reading
//! every chunk through ranged GETs would cost a request per chunk on a remote bucket.

use crate::block::meta::META_FILENAME;
use crate::block::{BlockError, BlockMeta, FileLocation};
use crate::bucket::Bucket;
use std::io::Write;
use std::path::Path;

/// Bytes fetched per GET; bounds memory while copying large segments.
const PIECE: u64 = 8 << 20;

/// Copies block `meta.ulid`'s index, chunk segments and tombstones (when present) into `dir`
/// and writes `meta` there as meta.json.
pub async fn download_block(
    bucket: &dyn Bucket,
    meta: &BlockMeta,
    dir: &Path,
) -> Result<(), BlockError> {
    let id = meta.ulid.to_string();
    let prefix = format!("{id}/");
    let objects = bucket
        .list_recursive(&prefix)
        .await
        .map_err(|e| FileLocation::new(&id, "").io(e))?;
    let mut have_index = false;
    for o in objects {
        let Some(rel) = o.path.strip_prefix(&prefix) else {
            continue;
        };
        let wanted = rel == "index" || rel == "tombstones" || rel.starts_with("chunks/");
        // Names come from the bucket: nothing may climb out of `dir`.
        if !wanted
            || rel
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            continue;
        }
        have_index |= rel == "index";
        let loc = FileLocation::new(&id, rel);
        let local = dir.join(rel);
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent).map_err(|e| loc.io(e))?;
        }
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&local).map_err(|e| loc.io(e))?);
        let mut at = 0;
        while at < o.size {
            let end = (at + PIECE).min(o.size);
            let bytes = bucket
                .get_range(&o.path, at..end)
                .await
                .map_err(|e| loc.io(e))?;
            if bytes.len() as u64 != end - at {
                return Err(loc.io(format!(
                    "short read at offset {at}: wanted {} bytes, got {}",
                    end - at,
                    bytes.len()
                )));
            }
            file.write_all(&bytes).map_err(|e| loc.io(e))?;
            at = end;
        }
        file.flush().map_err(|e| loc.io(e))?;
    }
    if !have_index {
        return Err(FileLocation::new(&id, "index").missing());
    }
    meta.write_to_dir(dir)
        .map_err(|e| FileLocation::new(&id, META_FILENAME).io(e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bucket::backend::ObjectStoreBucket;
    use bytes::Bytes;
    use ulid::Ulid;

    #[tokio::test]
    async fn copies_index_segments_and_tombstones_only_and_writes_meta() {
        let bucket = ObjectStoreBucket::in_memory();
        let meta = BlockMeta::new_level1(Ulid(42), 0, 10);
        let id = meta.ulid.to_string();
        let big = Bytes::from(
            (0..(PIECE + 1234))
                .map(|i| (i % 253) as u8)
                .collect::<Vec<u8>>(),
        );
        for (rel, data) in [
            ("index", Bytes::from_static(b"index-bytes")),
            ("chunks/000001", big.clone()),
            ("chunks/000002", Bytes::from_static(b"seg2")),
            ("tombstones", Bytes::from_static(b"ts")),
            ("deletion-mark.json", Bytes::from_static(b"{}")),
            ("meta.json", Bytes::from_static(b"not this one")),
        ] {
            bucket.put(&format!("{id}/{rel}"), data).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        download_block(&bucket, &meta, dir.path()).await.unwrap();
        let read = |rel: &str| std::fs::read(dir.path().join(rel)).unwrap();
        assert_eq!(read("index"), b"index-bytes");
        assert_eq!(read("chunks/000001"), big.to_vec());
        assert_eq!(read("chunks/000002"), b"seg2");
        assert_eq!(read("tombstones"), b"ts");
        assert!(!dir.path().join("deletion-mark.json").exists());
        assert_eq!(BlockMeta::read_from_dir(dir.path()).unwrap(), meta);
    }

    #[tokio::test]
    async fn a_block_without_index_is_missing() {
        let bucket = ObjectStoreBucket::in_memory();
        let meta = BlockMeta::new_level1(Ulid(42), 0, 10);
        bucket
            .put(
                &format!("{}/chunks/000001", meta.ulid),
                Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let e = download_block(&bucket, &meta, dir.path())
            .await
            .unwrap_err();
        assert!(matches!(e, BlockError::Missing { .. }), "{e}");
    }
}
