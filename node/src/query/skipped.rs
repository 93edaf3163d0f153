//! Blocks a sync could not use (unreadable meta.json, corrupt index or chunks, a listed file
//! missing): each is logged once with its reason, counted in a gauge by reason, and named in a
//! warning on every answer whose time range needed it, so a partial answer says it is partial.
//!
//! A block whose meta.json is unreadable has no known time range: it is warned about on every
//! query (its ULID's time is not used as a hint: a compacted or re-uploaded block's ULID says
//! nothing about its data's time).

use prometheus::{IntGaugeVec, Opts, Registry};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use storage::block::BlockError;
use storage::bucket::marks::bucket_error;
use ulid::Ulid;

/// Why a block was skipped: the metric's `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// meta.json is not valid (not JSON, wrong version, names another block).
    CorruptMetaJson,
    /// The index does not follow the format.
    CorruptIndex,
    /// A chunk segment does not follow the format.
    CorruptChunks,
    /// Another file (tombstones) does not follow the format.
    CorruptOther,
    /// A file the block needs (listed in meta.json, or the index) is not in the bucket.
    MissingFile,
    /// A format version or encoding Strata does not read.
    Unsupported,
    /// Reading failed for another reason.
    Unreadable,
}

/// Every reason, so the gauge shows zeros rather than stale values.
const ALL: [SkipReason; 7] = [
    SkipReason::CorruptMetaJson,
    SkipReason::CorruptIndex,
    SkipReason::CorruptChunks,
    SkipReason::CorruptOther,
    SkipReason::MissingFile,
    SkipReason::Unsupported,
    SkipReason::Unreadable,
];

impl SkipReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::CorruptMetaJson => "corrupt_meta_json",
            SkipReason::CorruptIndex => "corrupt_index",
            SkipReason::CorruptChunks => "corrupt_chunks",
            SkipReason::CorruptOther => "corrupt_other",
            SkipReason::MissingFile => "missing_file",
            SkipReason::Unsupported => "unsupported",
            SkipReason::Unreadable => "unreadable",
        }
    }

    /// The reason for a block error.
    pub fn of(e: &BlockError) -> SkipReason {
        match e {
            BlockError::Corrupt { file, .. } if file == "meta.json" => SkipReason::CorruptMetaJson,
            BlockError::Corrupt { file, .. } if file == "index" => SkipReason::CorruptIndex,
            BlockError::Corrupt { file, .. } if file.starts_with("chunks") => {
                SkipReason::CorruptChunks
            }
            BlockError::Corrupt { .. } => SkipReason::CorruptOther,
            BlockError::Missing { .. } => SkipReason::MissingFile,
            BlockError::Unsupported { .. } => SkipReason::Unsupported,
            BlockError::Io { .. } if bucket_error(e).is_some_and(|b| b.is_not_found()) => {
                SkipReason::MissingFile
            }
            BlockError::Io { .. } | BlockError::InvalidInput { .. } => SkipReason::Unreadable,
        }
    }
}

/// One skipped block.
#[derive(Debug, Clone)]
pub struct SkippedBlock {
    /// The block.
    pub id: Ulid,
    /// Why.
    pub reason: SkipReason,
    /// The error, without the leading `block <ULID>: `.
    pub detail: String,
    /// `[minTime, maxTime)` from meta.json; `None` when meta.json is unreadable.
    pub range: Option<(i64, i64)>,
}

impl SkippedBlock {
    /// A block skipped because of `e`.
    pub fn new(id: Ulid, e: &BlockError, range: Option<(i64, i64)>) -> Self {
        let text = e.to_string();
        let prefix = format!("block {id}: ");
        SkippedBlock {
            id,
            reason: SkipReason::of(e),
            detail: text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
            range,
        }
    }

    /// Whether a query over `[mint, maxt]` needed this block.
    fn needed_by(&self, mint: i64, maxt: i64) -> bool {
        self.range
            .is_none_or(|(min, max)| min <= maxt && mint < max)
    }

    /// The answer's warning.
    pub fn warning(&self) -> String {
        format!(
            "block {} skipped ({}): {}; the answer may be missing its data",
            self.id,
            self.reason.as_str(),
            self.detail
        )
    }
}

/// The blocks skipped at the last sync, with their gauge.
#[derive(Debug)]
pub struct SkippedBlocks {
    now: RwLock<Arc<Vec<SkippedBlock>>>,
    gauge: IntGaugeVec,
    component: &'static str,
}

impl SkippedBlocks {
    /// An empty set whose gauge `metric` (`reason` label) goes to `registry`; `component`
    /// prefixes log lines.
    pub fn new(
        metric: &str,
        component: &'static str,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                metric,
                "Blocks skipped at the last sync because they cannot be read, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        for r in ALL {
            gauge.with_label_values(&[r.as_str()]).set(0);
        }
        Ok(SkippedBlocks {
            now: RwLock::new(Arc::new(Vec::new())),
            gauge,
            component,
        })
    }

    fn current(&self) -> Arc<Vec<SkippedBlock>> {
        match self.now.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces the set with a sync's; logs each block newly skipped (or skipped for a new
    /// reason) once, not at every sync.
    pub fn update(&self, mut skipped: Vec<SkippedBlock>) {
        skipped.sort_by_key(|s| s.id);
        let before: BTreeSet<(Ulid, SkipReason)> =
            self.current().iter().map(|s| (s.id, s.reason)).collect();
        let mut counts: BTreeMap<SkipReason, i64> = BTreeMap::new();
        for s in &skipped {
            *counts.entry(s.reason).or_default() += 1;
            if !before.contains(&(s.id, s.reason)) {
                tracing::warn!(
                    block = %s.id,
                    reason = s.reason.as_str(),
                    error = %s.detail,
                    "{}: skipping unreadable block; answers over its time range will say so",
                    self.component
                );
            }
        }
        for r in ALL {
            let n = counts.get(&r).copied().unwrap_or(0);
            self.gauge.with_label_values(&[r.as_str()]).set(n);
        }
        match self.now.write() {
            Ok(mut g) => *g = Arc::new(skipped),
            Err(p) => *p.into_inner() = Arc::new(skipped),
        }
    }

    /// The time the skipped blocks would cover: their ranges, or everything when one's range
    /// is unknown; `None` with no skipped block. A store advertises it too, so that queriers do
    /// not prune it from a query that only a skipped block could answer (and miss the warning).
    pub fn span(&self) -> Option<(i64, i64)> {
        let now = self.current();
        now.iter()
            .map(|s| s.range.unwrap_or((i64::MIN, i64::MAX)))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// Warnings for an answer over `[mint, maxt]`, one per skipped block it needed.
    pub fn warnings(&self, mint: i64, maxt: i64) -> Vec<String> {
        self.current()
            .iter()
            .filter(|s| s.needed_by(mint, maxt))
            .map(SkippedBlock::warning)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::block::error::FileLocation;

    fn id(n: u8) -> Ulid {
        Ulid::from_parts(1_700_000_000_000, u128::from(n))
    }

    #[test]
    fn reasons_follow_the_failing_file() {
        let loc = |f: &str| FileLocation::new(id(1).to_string(), f);
        assert_eq!(
            SkipReason::of(&loc("index").corrupt("bad")),
            SkipReason::CorruptIndex
        );
        assert_eq!(
            SkipReason::of(&loc("chunks/000001").corrupt_at(3, "bad")),
            SkipReason::CorruptChunks
        );
        assert_eq!(
            SkipReason::of(&loc("meta.json").corrupt("not JSON")),
            SkipReason::CorruptMetaJson
        );
        assert_eq!(
            SkipReason::of(&loc("chunks/000002").missing()),
            SkipReason::MissingFile
        );
        let gone = storage::bucket::BucketError::new(
            storage::bucket::ErrorKind::NotFound,
            "get",
            "x",
            "gone",
        );
        assert_eq!(
            SkipReason::of(&loc("index").io(gone)),
            SkipReason::MissingFile
        );
    }

    #[test]
    fn warnings_name_blocks_the_range_needed_and_the_gauge_counts_them() {
        let registry = Registry::new();
        let s = SkippedBlocks::new("test_blocks_skipped", "test", &registry).expect("metric");
        let loc = |n: u8, f: &str| FileLocation::new(id(n).to_string(), f);
        s.update(vec![
            SkippedBlock::new(id(1), &loc(1, "index").corrupt("bad magic"), Some((0, 100))),
            SkippedBlock::new(id(2), &loc(2, "meta.json").corrupt("not JSON"), None),
        ]);
        assert_eq!(
            s.span(),
            Some((i64::MIN, i64::MAX)),
            "a block of unknown range"
        );
        let w = s.warnings(200, 300);
        assert_eq!(w.len(), 1, "only the block of unknown range: {w:?}");
        assert!(w[0].contains(&id(2).to_string()) && w[0].contains("corrupt_meta_json"));
        let w = s.warnings(50, 60);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0],
            format!(
                "block {} skipped (corrupt_index): index: corrupt: bad magic; the answer may be missing its data",
                id(1)
            )
        );
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        assert!(
            text.contains("test_blocks_skipped{reason=\"corrupt_index\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("test_blocks_skipped{reason=\"missing_file\"} 0"),
            "{text}"
        );
        s.update(vec![SkippedBlock::new(
            id(1),
            &loc(1, "index").corrupt("bad magic"),
            Some((0, 100)),
        )]);
        assert_eq!(s.span(), Some((0, 100)));
        s.update(Vec::new());
        assert!(s.warnings(i64::MIN, i64::MAX).is_empty());
        assert_eq!(s.span(), None);
    }
}
