//! Where a fetch learns which blocks exist: a recursive listing of the bucket (meta.json and
//! marks read once each), or the compactor's bucket index (`bucket-index.json.gz`, one GET),
//! as Cortex's and Mimir's store gateways do. The index is believed while it is at most
//! `max_stale_ms` old; missing, stale or corrupt, the fetch lists the bucket instead and says
//! why in [`Fetched::discovered`], so that callers count fallbacks in a metric.
//!
//! Metas from the index are stand-ins ([`IndexBlock::to_meta`]): time range, level, external
//! labels, resolution and source, enough for every filter; readers read the real meta.json
//! when they open the block. A block uploaded after the index was written is invisible until
//! the compactor's next pass writes a new one (the same trade as Cortex's).

use super::filters::Clock;
use super::Fetched;
use crate::bucket::{Bucket, BucketError};
use crate::compact::index::{read_index, IndexBlock, IndexError};
use std::collections::BTreeMap;

/// How a fetcher discovers blocks.
#[derive(Clone, Default)]
pub enum Discovery {
    /// List the bucket every fetch.
    #[default]
    Listing,
    /// Read the bucket index; list when it is missing, corrupt or older than `max_stale_ms`.
    Index {
        /// Oldest index believed, in ms.
        max_stale_ms: i64,
        /// Now.
        clock: Clock,
    },
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discovery::Listing => write!(f, "Listing"),
            Discovery::Index { max_stale_ms, .. } => write!(f, "Index(max stale {max_stale_ms}ms)"),
        }
    }
}

/// How one fetch found its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discovered {
    /// A listing, as configured.
    #[default]
    Listing,
    /// The bucket index.
    Index,
    /// A listing, because the bucket index could not be used.
    Fallback(FallbackReason),
}

/// Why the bucket index was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// There is none.
    Missing,
    /// It is older than the bound.
    Stale,
    /// It does not parse.
    Corrupt,
}

impl FallbackReason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::Missing => "missing",
            FallbackReason::Stale => "stale",
            FallbackReason::Corrupt => "corrupt",
        }
    }
}

/// The blocks and deletion marks of the bucket index, unfiltered; `Err` with the reason (and
/// a detail for the log) when the index cannot be used. A bucket failure reading it (other
/// than its absence) fails the fetch, as a failed listing would.
pub(super) async fn from_index(
    bucket: &dyn Bucket,
    max_stale_ms: i64,
    now_ms: i64,
) -> Result<Result<Fetched, (FallbackReason, String)>, BucketError> {
    let index = match read_index(bucket).await {
        Ok(Some(index)) => index,
        Ok(None) => return Ok(Err((FallbackReason::Missing, String::new()))),
        Err(IndexError::Corrupt(e)) => return Ok(Err((FallbackReason::Corrupt, e))),
        Err(IndexError::Bucket(e)) => return Err(e),
    };
    let age = index.age_ms(now_ms);
    if age > max_stale_ms {
        let detail = format!(
            "written {} s ago, more than the {} s allowed",
            age / 1000,
            max_stale_ms / 1000
        );
        return Ok(Err((FallbackReason::Stale, detail)));
    }
    let metas: BTreeMap<_, _> = index
        .blocks
        .iter()
        .map(IndexBlock::to_meta)
        .map(|m| (m.ulid, m))
        .collect();
    let deletion_marks = index
        .deletion_marks()
        .into_iter()
        .filter(|(id, _)| metas.contains_key(id))
        .collect();
    Ok(Ok(Fetched {
        metas,
        deletion_marks,
        discovered: Discovered::Index,
        ..Fetched::default()
    }))
}
