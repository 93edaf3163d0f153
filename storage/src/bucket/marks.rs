//! Thanos' marker files next to a block: `deletion-mark.json` and `no-compact-mark.json`.
//!
//! Field names and order follow Thanos' Go structs, written compact like `json.Marshal`.

use super::{Bucket, BucketError};
use crate::block::error::{BlockError, FileLocation};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// File name of a deletion mark.
pub const DELETION_MARK_FILENAME: &str = "deletion-mark.json";
/// File name of a no-compact mark.
pub const NO_COMPACT_MARK_FILENAME: &str = "no-compact-mark.json";
/// The only marker format version.
pub const MARK_VERSION: u32 = 1;

/// No-compact reason: set by an operator.
pub const REASON_MANUAL: &str = "manual";
/// No-compact reason: the output index would exceed the size limit.
pub const REASON_INDEX_SIZE_EXCEEDING: &str = "index-size-exceeding";
/// No-compact reason: the block's index has out-of-order chunks.
pub const REASON_OUT_OF_ORDER_CHUNK: &str = "block-index-out-of-order-chunk";
/// No-compact reason: vertical compaction of downsampled blocks.
pub const REASON_DOWNSAMPLE_VERTICAL_COMPACTION: &str = "downsample-vertical-compaction";

/// `deletion-mark.json`: the block is to be deleted after the delete delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionMark {
    /// The block.
    pub id: Ulid,
    /// When it was marked, unix seconds.
    pub deletion_time: i64,
    /// Always 1.
    pub version: u32,
    /// Free text, omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// `no-compact-mark.json`: the compactor must leave the block alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoCompactMark {
    /// The block.
    pub id: Ulid,
    /// Always 1.
    pub version: u32,
    /// Free text, omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
    /// When it was marked, unix seconds.
    pub no_compact_time: i64,
    /// Why: `manual`, `index-size-exceeding`, ...
    pub reason: String,
}

/// A marker file kind.
pub trait Mark: Serialize + DeserializeOwned {
    /// Its file name inside the block directory.
    const FILENAME: &'static str;
    /// The block it names.
    fn id(&self) -> Ulid;
    /// Its format version.
    fn version(&self) -> u32;
}

impl Mark for DeletionMark {
    const FILENAME: &'static str = DELETION_MARK_FILENAME;
    fn id(&self) -> Ulid {
        self.id
    }
    fn version(&self) -> u32 {
        self.version
    }
}

impl Mark for NoCompactMark {
    const FILENAME: &'static str = NO_COMPACT_MARK_FILENAME;
    fn id(&self) -> Ulid {
        self.id
    }
    fn version(&self) -> u32 {
        self.version
    }
}

impl DeletionMark {
    /// A mark for `id` made at `deletion_time` (unix seconds).
    pub fn new(id: Ulid, deletion_time: i64, details: impl Into<String>) -> Self {
        DeletionMark {
            id,
            deletion_time,
            version: MARK_VERSION,
            details: details.into(),
        }
    }
}

impl NoCompactMark {
    /// A mark for `id` made at `no_compact_time` (unix seconds).
    pub fn new(
        id: Ulid,
        no_compact_time: i64,
        reason: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        NoCompactMark {
            id,
            version: MARK_VERSION,
            details: details.into(),
            no_compact_time,
            reason: reason.into(),
        }
    }
}

/// The current unix time in seconds, for new marks.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn mark_path<M: Mark>(block: Ulid) -> String {
    format!("{block}/{}", M::FILENAME)
}

/// Parses a mark of `block`, checking its version and that it names the block.
pub fn parse_mark<M: Mark>(block: Ulid, data: &[u8]) -> Result<M, BlockError> {
    let loc = FileLocation::new(block.to_string(), M::FILENAME);
    let mark: M =
        serde_json::from_slice(data).map_err(|e| loc.corrupt(format!("invalid JSON: {e}")))?;
    if mark.version() != MARK_VERSION {
        return Err(loc.unsupported(format!(
            "version {} (only {MARK_VERSION} is known)",
            mark.version()
        )));
    }
    if mark.id() != block {
        return Err(loc.corrupt(format!("names block {} instead", mark.id())));
    }
    Ok(mark)
}

/// Reads `block`'s mark of type `M`; `None` when there is none.
pub async fn read_mark<M: Mark>(bucket: &dyn Bucket, block: Ulid) -> Result<Option<M>, BlockError> {
    let loc = FileLocation::new(block.to_string(), M::FILENAME);
    match bucket.get(&mark_path::<M>(block)).await {
        Ok(data) => parse_mark(block, &data).map(Some),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(loc.io(e)),
    }
}

/// Writes a mark, replacing any existing one.
pub async fn write_mark<M: Mark>(bucket: &dyn Bucket, mark: &M) -> Result<(), BlockError> {
    let loc = FileLocation::new(mark.id().to_string(), M::FILENAME);
    let data = serde_json::to_vec(mark).map_err(|e| loc.io(e))?;
    bucket
        .put(&mark_path::<M>(mark.id()), Bytes::from(data))
        .await
        .map_err(|e| loc.io(e))
}

/// Marks `block` for deletion now unless it already is; returns whether a mark was written.
/// The block must exist (have meta.json), as in Thanos.
pub async fn mark_for_deletion(
    bucket: &dyn Bucket,
    block: Ulid,
    details: &str,
) -> Result<bool, BlockError> {
    require_block(bucket, block).await?;
    if read_mark::<DeletionMark>(bucket, block).await?.is_some() {
        return Ok(false);
    }
    write_mark(bucket, &DeletionMark::new(block, unix_now(), details)).await?;
    Ok(true)
}

/// Marks `block` as not to be compacted unless it already is; returns whether a mark was written.
pub async fn mark_no_compact(
    bucket: &dyn Bucket,
    block: Ulid,
    reason: &str,
    details: &str,
) -> Result<bool, BlockError> {
    require_block(bucket, block).await?;
    if read_mark::<NoCompactMark>(bucket, block).await?.is_some() {
        return Ok(false);
    }
    write_mark(
        bucket,
        &NoCompactMark::new(block, unix_now(), reason, details),
    )
    .await?;
    Ok(true)
}

async fn require_block(bucket: &dyn Bucket, block: Ulid) -> Result<(), BlockError> {
    let loc = FileLocation::new(block.to_string(), crate::block::meta::META_FILENAME);
    match bucket.exists(&format!("{block}/{}", loc.file)).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(loc.missing()),
        Err(e) => Err(loc.io(e)),
    }
}

/// The bucket error inside a block error, if that is what it wraps: callers branch on its kind.
pub fn bucket_error(e: &BlockError) -> Option<&BucketError> {
    match e {
        BlockError::Io { source, .. } => source.downcast_ref::<BucketError>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::ObjectStoreBucket;

    const ID: &str = "01HQ0000000000000000000000";

    #[test]
    fn serialises_with_thanos_field_names_and_order() {
        let id: Ulid = ID.parse().unwrap();
        let d = DeletionMark::new(id, 1700000000, "");
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&d).unwrap()).unwrap(),
            format!(r#"{{"id":"{ID}","deletion_time":1700000000,"version":1}}"#)
        );
        let n = NoCompactMark::new(id, 1700000001, REASON_MANUAL, "why");
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&n).unwrap()).unwrap(),
            format!(
                r#"{{"id":"{ID}","version":1,"details":"why","no_compact_time":1700000001,"reason":"manual"}}"#
            )
        );
    }

    #[test]
    fn parses_thanos_written_marks_and_rejects_bad_ones() {
        let id: Ulid = ID.parse().unwrap();
        let d: DeletionMark = parse_mark(
            id,
            format!(r#"{{"id":"{ID}","deletion_time":5,"version":1,"details":"x"}}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(d.details, "x");
        let v2 = format!(r#"{{"id":"{ID}","deletion_time":5,"version":2}}"#);
        let e = parse_mark::<DeletionMark>(id, v2.as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("deletion-mark.json: unsupported"),
            "{e}"
        );
        let other = Ulid::from_parts(1, 1);
        let e = parse_mark::<DeletionMark>(other, v2.replace(":2", ":1").as_bytes()).unwrap_err();
        assert!(e.to_string().contains("names block"), "{e}");
        let e = parse_mark::<NoCompactMark>(id, b"{").unwrap_err();
        assert!(e.is_corrupt() && e.to_string().contains(ID), "{e}");
    }

    #[tokio::test]
    async fn marking_needs_the_block_and_is_idempotent() {
        let b = ObjectStoreBucket::in_memory();
        let id: Ulid = ID.parse().unwrap();
        let e = mark_for_deletion(&b, id, "").await.unwrap_err();
        assert!(matches!(e, BlockError::Missing { .. }), "{e}");
        b.put(&format!("{ID}/meta.json"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert!(mark_for_deletion(&b, id, "retention").await.unwrap());
        assert!(!mark_for_deletion(&b, id, "again").await.unwrap());
        let m = read_mark::<DeletionMark>(&b, id).await.unwrap().unwrap();
        assert_eq!(m.details, "retention");
        assert!(mark_no_compact(&b, id, REASON_MANUAL, "").await.unwrap());
        let n = read_mark::<NoCompactMark>(&b, id).await.unwrap().unwrap();
        assert_eq!(n.reason, REASON_MANUAL);
    }
}
