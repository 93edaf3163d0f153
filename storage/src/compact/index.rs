//! The bucket index: one gzipped JSON object, `bucket-index.json.gz` at the bucket's root (the
//! name Cortex and Mimir use), listing every block and every mark. The compactor writes it
//! after each pass; readers load it with one GET instead of listing the bucket and reading
//! every meta.json, and fall back to listing when it is missing, unreadable or too old.
//!
//! Format (version 1; Strata's own field set, close to Cortex's):
//! `{"version":1,"updated_at":<unix s>,"blocks":[{"block_id","min_time","max_time",
//! "labels":{..},"resolution","size_bytes","level","source","sources"?,"num_series"?,
//! "num_tombstones"?,"compaction_failed"?}],
//! "block_deletion_marks":[{"block_id","deletion_time"}],
//! "no_compact_marks":[{"block_id","no_compact_time","reason"}]}`. `sources` (compaction
//! sources) is written only when they are not just the block itself, so that readers can
//! drop blocks a compacted one holds (the fetcher's `DeduplicateFilter`); an index without it
//! reads as every block being its own source.

use crate::block::meta::{BlockMeta, Downsample, ThanosMeta};
use crate::bucket::fetcher::Fetched;
use crate::bucket::marks::{DeletionMark, NoCompactMark};
use crate::bucket::{Bucket, BucketError};
use bytes::Bytes;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use ulid::Ulid;

/// Object name of the bucket index.
pub const BUCKET_INDEX_FILENAME: &str = "bucket-index.json.gz";
/// The only bucket index version.
pub const BUCKET_INDEX_VERSION: u32 = 1;
/// Largest decompressed index read, so a hostile object cannot exhaust memory.
const MAX_INDEX_BYTES: u64 = 512 << 20;

/// The bucket index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketIndex {
    /// Format version (1).
    pub version: u32,
    /// When it was written, unix seconds.
    pub updated_at: i64,
    /// Every block with a readable meta.json.
    pub blocks: Vec<IndexBlock>,
    /// Every deletion mark.
    pub block_deletion_marks: Vec<IndexDeletionMark>,
    /// Every no-compact mark.
    pub no_compact_marks: Vec<IndexNoCompactMark>,
}

/// One block in the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexBlock {
    /// The block.
    pub block_id: Ulid,
    /// First time (ms, inclusive).
    pub min_time: i64,
    /// End time (ms, exclusive).
    pub max_time: i64,
    /// External labels.
    pub labels: BTreeMap<String, String>,
    /// Downsampling resolution (ms).
    pub resolution: i64,
    /// Sum of the file sizes listed in meta.json (0 when it lists none).
    pub size_bytes: u64,
    /// Compaction level.
    pub level: u32,
    /// `thanos.source`.
    pub source: String,
    /// Compaction sources, when they are not just the block itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Ulid>,
    /// Series count, when tombstones make it matter to the planner (tombstone ratio).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    /// Tombstone intervals (the planner rewrites a block with many).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
    /// Whether a compaction of this block failed before (the planner skips it, as Thanos).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compaction_failed: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A deletion mark in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDeletionMark {
    /// The block.
    pub block_id: Ulid,
    /// When it was marked, unix seconds.
    pub deletion_time: i64,
}

/// A no-compact mark in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexNoCompactMark {
    /// The block.
    pub block_id: Ulid,
    /// When it was marked, unix seconds.
    pub no_compact_time: i64,
    /// Why.
    pub reason: String,
}

/// Why the bucket index could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing the object failed.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// The object is not a valid index.
    #[error("{BUCKET_INDEX_FILENAME}: corrupt: {0}")]
    Corrupt(String),
}

impl IndexBlock {
    /// The index entry of `meta`.
    pub fn of(meta: &BlockMeta) -> Self {
        let thanos = meta.thanos.as_ref();
        IndexBlock {
            block_id: meta.ulid,
            min_time: meta.min_time,
            max_time: meta.max_time,
            labels: meta.external_labels(),
            resolution: meta.resolution(),
            size_bytes: thanos
                .map(|t| t.files.iter().filter_map(|f| f.size_bytes).sum())
                .unwrap_or(0),
            level: meta.compaction.level,
            source: thanos.map(|t| t.source.clone()).unwrap_or_default(),
            sources: if meta.compaction.sources == [meta.ulid] {
                Vec::new()
            } else {
                meta.compaction.sources.clone()
            },
            // The series count is only the tombstone ratio's divisor: kept when it is used.
            num_series: if meta.stats.num_tombstones > 0 {
                meta.stats.num_series
            } else {
                0
            },
            num_tombstones: meta.stats.num_tombstones,
            compaction_failed: meta.compaction.failed,
        }
    }
}

impl IndexBlock {
    /// A meta.json standing in for the block's until it is read: what the index knows (time
    /// range, level, external labels, resolution, source, compaction sources, what the planner
    /// reads of stats and compaction), no file list. Readers
    /// filter and plan on it and read the real meta.json when they open the block.
    pub fn to_meta(&self) -> BlockMeta {
        let mut meta = BlockMeta::new_level1(self.block_id, self.min_time, self.max_time);
        meta.compaction.level = self.level;
        if !self.sources.is_empty() {
            meta.compaction.sources = self.sources.clone();
        }
        meta.compaction.failed = self.compaction_failed;
        meta.stats.num_series = self.num_series;
        meta.stats.num_tombstones = self.num_tombstones;
        meta.thanos = Some(ThanosMeta {
            version: 1,
            labels: self.labels.clone(),
            downsample: Downsample {
                resolution: self.resolution,
            },
            source: self.source.clone(),
            ..ThanosMeta::default()
        });
        meta
    }
}

impl BucketIndex {
    /// Its deletion marks as the fetcher holds them, by block.
    pub fn deletion_marks(&self) -> BTreeMap<Ulid, DeletionMark> {
        self.block_deletion_marks
            .iter()
            .map(|m| {
                (
                    m.block_id,
                    DeletionMark::new(m.block_id, m.deletion_time, ""),
                )
            })
            .collect()
    }

    /// The first of `outputs` (blocks) or `no_compact` (marks) the index does not show: a job
    /// committed after the index was written. Marked blocks count as shown.
    pub fn lacking<'a>(
        &self,
        outputs: impl IntoIterator<Item = &'a Ulid>,
        no_compact: impl IntoIterator<Item = &'a Ulid>,
    ) -> Option<Ulid> {
        let blocks: std::collections::BTreeSet<Ulid> =
            self.blocks.iter().map(|b| b.block_id).collect();
        let marked: std::collections::BTreeSet<Ulid> =
            self.no_compact_marks.iter().map(|m| m.block_id).collect();
        outputs
            .into_iter()
            .find(|id| !blocks.contains(id))
            .or_else(|| no_compact.into_iter().find(|id| !marked.contains(id)))
            .copied()
    }

    /// Its age at `now_ms`, in ms (negative when written "in the future" by a skewed clock).
    pub fn age_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.updated_at.saturating_mul(1000))
    }

    /// The index of `metas` and marks, stamped `updated_at` (unix seconds).
    pub fn build<'a>(
        metas: impl IntoIterator<Item = &'a BlockMeta>,
        deletion: &BTreeMap<Ulid, DeletionMark>,
        no_compact: &BTreeMap<Ulid, NoCompactMark>,
        updated_at: i64,
    ) -> Self {
        let mut blocks: Vec<IndexBlock> = metas.into_iter().map(IndexBlock::of).collect();
        blocks.sort_by_key(|b| b.block_id);
        BucketIndex {
            version: BUCKET_INDEX_VERSION,
            updated_at,
            blocks,
            block_deletion_marks: deletion
                .values()
                .map(|m| IndexDeletionMark {
                    block_id: m.id,
                    deletion_time: m.deletion_time,
                })
                .collect(),
            no_compact_marks: no_compact
                .values()
                .map(|m| IndexNoCompactMark {
                    block_id: m.id,
                    no_compact_time: m.no_compact_time,
                    reason: m.reason.clone(),
                })
                .collect(),
        }
    }

    /// Gzipped JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>, IndexError> {
        let json = serde_json::to_vec(self).map_err(|e| IndexError::Corrupt(e.to_string()))?;
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&json)
            .and_then(|_| gz.finish())
            .map_err(|e| IndexError::Corrupt(format!("compressing: {e}")))
    }

    /// Parses gzipped JSON bytes, checking the version.
    pub fn decode(data: &[u8]) -> Result<Self, IndexError> {
        let mut json = Vec::new();
        GzDecoder::new(data)
            .take(MAX_INDEX_BYTES)
            .read_to_end(&mut json)
            .map_err(|e| IndexError::Corrupt(format!("not gzip: {e}")))?;
        let index: BucketIndex = serde_json::from_slice(&json)
            .map_err(|e| IndexError::Corrupt(format!("invalid JSON: {e}")))?;
        if index.version != BUCKET_INDEX_VERSION {
            return Err(IndexError::Corrupt(format!(
                "version {} (only {BUCKET_INDEX_VERSION} is known)",
                index.version
            )));
        }
        Ok(index)
    }
}

/// Writes the index of what a fetch found (blocks kept by its filters and the ones a filter
/// excluded alike: the index lists every block) and the given no-compact marks.
pub async fn write_index(bucket: &dyn Bucket, index: &BucketIndex) -> Result<(), IndexError> {
    bucket
        .put(BUCKET_INDEX_FILENAME, Bytes::from(index.encode()?))
        .await?;
    Ok(())
}

/// Reads the bucket index; `None` when there is none.
pub async fn read_index(bucket: &dyn Bucket) -> Result<Option<BucketIndex>, IndexError> {
    match bucket.get(BUCKET_INDEX_FILENAME).await {
        Ok(data) => BucketIndex::decode(&data).map(Some),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Where [`load_blocks`] got its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSource {
    /// The bucket index, fresh enough.
    Index,
    /// A listing of the bucket (index missing, unreadable or older than the bound).
    Listing,
}

/// The bucket's blocks and marks for a reader (store, querier): from the bucket index when it
/// is at most `max_age_ms` old at `now_ms`, else by listing the bucket (deletion marks read
/// for every block). A broken index is logged and bypassed, never fatal.
pub async fn load_blocks(
    bucket: &dyn Bucket,
    max_age_ms: i64,
    now_ms: i64,
) -> Result<(BucketIndex, IndexSource), BucketError> {
    match read_index(bucket).await {
        Ok(Some(idx)) if now_ms / 1000 - idx.updated_at <= max_age_ms / 1000 => {
            return Ok((idx, IndexSource::Index))
        }
        Ok(Some(idx)) => {
            tracing::info!(
                updated_at = idx.updated_at,
                "bucket index is stale; listing the bucket"
            )
        }
        Ok(None) => tracing::debug!("no bucket index; listing the bucket"),
        Err(IndexError::Bucket(e)) if !e.is_not_found() => return Err(e),
        Err(e) => tracing::warn!(error = %e, "unreadable bucket index; listing the bucket"),
    }
    let fetched = list_everything(bucket).await?;
    let index = BucketIndex::build(
        fetched.metas.values(),
        &fetched.deletion_marks,
        &BTreeMap::new(),
        now_ms / 1000,
    );
    Ok((index, IndexSource::Listing))
}

async fn list_everything(bucket: &dyn Bucket) -> Result<Fetched, BucketError> {
    let mut fetched = crate::bucket::fetcher::read_all(bucket).await?;
    let ids: Vec<Ulid> = fetched.metas.keys().copied().collect();
    for id in ids {
        if let Ok(Some(m)) = crate::bucket::marks::read_mark::<DeletionMark>(bucket, id).await {
            fetched.deletion_marks.insert(id, m);
        }
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::testutil::{bucket, meta};

    #[test]
    fn round_trips_and_rejects_garbage() {
        let m = meta(7, 0, 10, &[("cluster", "eu")], 0);
        let d: BTreeMap<Ulid, DeletionMark> = [(Ulid(7), DeletionMark::new(Ulid(7), 5, ""))].into();
        let n: BTreeMap<Ulid, NoCompactMark> =
            [(Ulid(7), NoCompactMark::new(Ulid(7), 6, "manual", ""))].into();
        let idx = BucketIndex::build([&m], &d, &n, 100);
        let back = BucketIndex::decode(&idx.encode().unwrap()).unwrap();
        assert_eq!(back, idx);
        assert_eq!(back.blocks[0].labels["cluster"], "eu");
        assert_eq!(back.no_compact_marks[0].reason, "manual");
        let e = BucketIndex::decode(b"not gzip").unwrap_err();
        assert!(
            e.to_string().contains("bucket-index.json.gz: corrupt"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn readers_use_a_fresh_index_and_list_when_it_is_stale_or_missing() {
        let b = bucket();
        // A block in the bucket that the index does not know.
        let listed = meta(1, 0, 10, &[], 0);
        b.put(
            &format!("{}/meta.json", listed.ulid),
            Bytes::from(listed.to_json()),
        )
        .await
        .unwrap();
        let (idx, src) = load_blocks(b.as_ref(), 60_000, 1_000_000).await.unwrap();
        assert_eq!(src, IndexSource::Listing);
        assert_eq!(idx.blocks.len(), 1);

        let other = meta(2, 0, 10, &[], 0);
        let written = BucketIndex::build([&other], &BTreeMap::new(), &BTreeMap::new(), 1_000);
        write_index(b.as_ref(), &written).await.unwrap();
        // Fresh: the index is believed.
        let (idx, src) = load_blocks(b.as_ref(), 60_000, 1_030_000).await.unwrap();
        assert_eq!(src, IndexSource::Index);
        assert_eq!(idx.blocks[0].block_id, Ulid(2));
        // Stale: the listing wins.
        let (idx, src) = load_blocks(b.as_ref(), 60_000, 2_000_000).await.unwrap();
        assert_eq!(src, IndexSource::Listing);
        assert_eq!(idx.blocks[0].block_id, Ulid(1));
        // Garbage: the listing wins too.
        b.put(BUCKET_INDEX_FILENAME, Bytes::from_static(b"junk"))
            .await
            .unwrap();
        let (_, src) = load_blocks(b.as_ref(), 60_000, 1_030_000).await.unwrap();
        assert_eq!(src, IndexSource::Listing);
    }
}
