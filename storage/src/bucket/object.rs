//! One bucket object read by range: what the block reader uses for `index` and chunk files
//! that live in the bucket.

use super::{Bucket, BucketError};
use crate::block::source::RangeSource;
use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

/// A bucket object with its size, read by range requests.
#[derive(Debug, Clone)]
pub struct BucketObject {
    bucket: Arc<dyn Bucket>,
    path: String,
    size: u64,
}

impl BucketObject {
    /// Opens `path`, asking the bucket for its size.
    pub async fn open(bucket: Arc<dyn Bucket>, path: &str) -> Result<Self, BucketError> {
        let info = bucket.head(path).await?;
        Ok(BucketObject {
            bucket,
            path: path.to_string(),
            size: info.size,
        })
    }

    /// An object whose size is already known (from a listing or meta.json), without a request.
    pub fn with_size(bucket: Arc<dyn Bucket>, path: &str, size: u64) -> Self {
        BucketObject {
            bucket,
            path: path.to_string(),
            size,
        }
    }

    /// The object's path in the bucket.
    pub fn path(&self) -> &str {
        &self.path
    }
}

#[async_trait]
impl RangeSource for BucketObject {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_range(
        &self,
        range: Range<u64>,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        if range.start > range.end || range.end > self.size {
            return Err(format!(
                "range {}..{} outside object {} of {} bytes",
                range.start, range.end, self.path, self.size
            )
            .into());
        }
        Ok(self.bucket.get_range(&self.path, range).await?)
    }

    fn is_remote(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::ObjectStoreBucket;

    #[tokio::test]
    async fn reads_ranges_of_an_object_and_rejects_out_of_bounds() {
        let b: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
        b.put("blk/index", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let obj = BucketObject::open(b.clone(), "blk/index").await.unwrap();
        assert_eq!(obj.size(), 10);
        assert_eq!(&obj.read_range(2..5).await.unwrap()[..], b"234");
        assert_eq!(&obj.read_range(10..10).await.unwrap()[..], b"");
        let err = obj.read_range(5..11).await.unwrap_err();
        assert!(
            err.to_string().contains("outside object blk/index"),
            "{err}"
        );
        let missing = BucketObject::open(b, "blk/nope").await.unwrap_err();
        assert!(missing.is_not_found());
    }
}
