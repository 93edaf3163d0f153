//! Deleting what compaction leaves behind (Thanos' `BlocksCleaner` and
//! `BestEffortCleanAbortedPartialUploads`): blocks marked for deletion longer ago than the
//! delete delay, and partial uploads (no meta.json) whose files are all older than a safe age.

use crate::block::error::BlockError;
use crate::bucket::blocks::delete_block;
use crate::bucket::marks::DeletionMark;
use crate::bucket::{Bucket, BucketError};
use futures::StreamExt;
use std::collections::BTreeMap;
use ulid::Ulid;

/// Thanos' `PartialUploadThresholdAge`: a directory without meta.json whose newest file is
/// older than this is an abandoned upload, not one in progress.
pub const PARTIAL_UPLOAD_THRESHOLD_MS: i64 = 48 * 3600 * 1000;

/// The blocks whose deletion mark is older than `delete_delay_ms` at `now_ms`.
pub fn due_for_deletion(
    marks: &BTreeMap<Ulid, DeletionMark>,
    delete_delay_ms: i64,
    now_ms: i64,
) -> Vec<Ulid> {
    marks
        .values()
        .filter(|m| now_ms / 1000 - m.deletion_time >= delete_delay_ms / 1000)
        .map(|m| m.id)
        .collect()
}

/// Blocks deleted at once: each deletion is a few requests that mostly wait on the bucket.
const DELETE_CONCURRENCY: usize = 8;

/// Deletes `ids` (each meta.json first, mark last; up to [`DELETE_CONCURRENCY`] blocks at
/// once); returns how many went and the failures.
pub async fn delete_blocks(bucket: &dyn Bucket, ids: &[Ulid]) -> (usize, Vec<(Ulid, BlockError)>) {
    // Futures collected first: a stream mapping to borrowing futures trips the compiler's
    // Send check where callers spawn a pass.
    let deletions: Vec<_> = ids
        .iter()
        .map(|&id| async move { (id, delete_block(bucket, id).await) })
        .collect();
    let results: Vec<(Ulid, Result<(), BlockError>)> = futures::stream::iter(deletions)
        .buffer_unordered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let mut done = 0;
    let mut failed = Vec::new();
    for (id, r) in results {
        match r {
            Ok(()) => {
                tracing::info!(block = %id, "deleted block marked for deletion");
                done += 1;
            }
            Err(e) => failed.push((id, e)),
        }
    }
    (done, failed)
}

/// Removes the partial uploads among `partial` whose files were all last modified more than
/// `threshold_ms` before `now_ms` (and whose ULID is that old too); returns those removed.
pub async fn clean_partial_uploads(
    bucket: &dyn Bucket,
    partial: &[Ulid],
    threshold_ms: i64,
    now_ms: i64,
) -> Result<Vec<Ulid>, BucketError> {
    let mut removed = Vec::new();
    for &id in partial {
        if now_ms - (id.timestamp_ms() as i64) <= threshold_ms {
            continue;
        }
        let objects = bucket.list_recursive(&format!("{id}/")).await?;
        if objects
            .iter()
            .any(|o| now_ms - o.last_modified_ms <= threshold_ms)
        {
            continue;
        }
        for o in &objects {
            bucket.delete(&o.path).await?;
        }
        tracing::info!(block = %id, files = objects.len(), "removed abandoned partial upload");
        removed.push(id);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::bucket;
    use bytes::Bytes;

    #[test]
    fn only_marks_older_than_the_delay_are_due() {
        let a = Ulid(1);
        let b = Ulid(2);
        let marks: BTreeMap<Ulid, DeletionMark> = [
            (a, DeletionMark::new(a, 1_000, "")),
            (b, DeletionMark::new(b, 5_000, "")),
        ]
        .into();
        assert_eq!(due_for_deletion(&marks, 2_000_000, 5_500_000), vec![a]);
        assert_eq!(due_for_deletion(&marks, 0, 5_000_000), vec![a, b]);
    }

    #[tokio::test]
    async fn removes_only_old_partial_uploads() {
        let bkt = bucket();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // An old ULID, but its file was just written: maybe a slow upload, keep it.
        let old = Ulid::from_parts(1_000, 1);
        bkt.put(&format!("{old}/index"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let kept = clean_partial_uploads(bkt.as_ref(), &[old], PARTIAL_UPLOAD_THRESHOLD_MS, now)
            .await
            .unwrap();
        assert!(kept.is_empty());
        // Seen from three days later, it is abandoned.
        let later = now + 3 * 24 * 3600 * 1000;
        let removed =
            clean_partial_uploads(bkt.as_ref(), &[old], PARTIAL_UPLOAD_THRESHOLD_MS, later)
                .await
                .unwrap();
        assert_eq!(removed, vec![old]);
        assert!(bkt
            .list_recursive(&format!("{old}/"))
            .await
            .unwrap()
            .is_empty());
        // A young ULID is never touched.
        let young = Ulid::from_parts(now as u64, 2);
        bkt.put(&format!("{young}/index"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let removed = clean_partial_uploads(
            bkt.as_ref(),
            &[young],
            PARTIAL_UPLOAD_THRESHOLD_MS,
            now + 1000,
        )
        .await
        .unwrap();
        assert!(removed.is_empty());
    }
}
