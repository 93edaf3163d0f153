//! `meta.json`: Prometheus' block metadata and Thanos' `thanos` section.
//!
//! Fields Strata does not model are kept in `extra` maps so a read-modify-write keeps them.

use super::error::{BlockError, FileLocation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use ulid::Ulid;

/// File name of block metadata.
pub const META_FILENAME: &str = "meta.json";
/// The only meta.json format version.
pub const META_VERSION: u32 = 1;
/// Raw data resolution, in milliseconds.
pub const RESOLUTION_RAW: i64 = 0;
/// 5-minute downsampled resolution, in milliseconds.
pub const RESOLUTION_5M: i64 = 300_000;
/// 1-hour downsampled resolution, in milliseconds.
pub const RESOLUTION_1H: i64 = 3_600_000;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// A block's metadata, as Prometheus and Thanos write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Block id; equals the directory name.
    pub ulid: Ulid,
    /// First timestamp that may be in the block, inclusive (ms).
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Upper bound, exclusive (ms).
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    /// Counts of what the block holds.
    #[serde(default)]
    pub stats: BlockStats,
    /// Compaction lineage.
    #[serde(default)]
    pub compaction: Compaction,
    /// Format version; always 1.
    pub version: u32,
    /// Thanos' section, present on blocks in a bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
    /// Keys Strata does not model, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Counts in `stats`; each is omitted from the JSON when zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// Number of samples.
    #[serde(rename = "numSamples", default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    /// Number of series.
    #[serde(rename = "numSeries", default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    /// Number of chunks.
    #[serde(rename = "numChunks", default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    /// Number of tombstone intervals.
    #[serde(rename = "numTombstones", default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
    /// Number of float samples (newer Prometheus).
    #[serde(rename = "numFloatSamples", default, skip_serializing_if = "is_zero")]
    pub num_float_samples: u64,
    /// Number of histogram samples (newer Prometheus).
    #[serde(
        rename = "numHistogramSamples",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub num_histogram_samples: u64,
}

/// The `compaction` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for blocks cut from the head; max(inputs) + 1 after a merge.
    #[serde(default)]
    pub level: u32,
    /// Level-1 blocks that ended up in this one, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Ulid>,
    /// Direct inputs of the last merge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    /// Set when a compaction produced an empty block.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deletable: bool,
    /// Set when a compaction failed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub failed: bool,
    /// Hints such as `from-out-of-order`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// A parent block reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDesc {
    /// Parent block id.
    pub ulid: Ulid,
    /// Parent's min time (ms).
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// Parent's max time (ms).
    #[serde(rename = "maxTime")]
    pub max_time: i64,
}

/// Thanos' `thanos` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    /// Section version (1).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub version: u32,
    /// External labels identifying the block's stream.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Downsampling resolution.
    #[serde(default)]
    pub downsample: Downsample,
    /// Who made the block: `sidecar`, `compactor`, `bucket.upload`, ...
    #[serde(default)]
    pub source: String,
    /// Deprecated list of chunk file names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    /// The block's files with sizes, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<BlockFile>,
    /// Keys Strata does not model (rewrites, index_stats, extensions, upload_time, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `downsample` in the Thanos section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    /// Resolution in ms: 0, 300000 or 3600000.
    #[serde(default)]
    pub resolution: i64,
}

/// One file of a block and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    /// Path relative to the block directory.
    pub rel_path: String,
    /// Size in bytes; absent for meta.json itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Optional hash object, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<serde_json::Value>,
}

impl BlockMeta {
    /// Metadata for a new level-1 block that is its own source.
    pub fn new_level1(ulid: Ulid, min_time: i64, max_time: i64) -> Self {
        BlockMeta {
            ulid,
            min_time,
            max_time,
            stats: BlockStats::default(),
            compaction: Compaction {
                level: 1,
                sources: vec![ulid],
                ..Compaction::default()
            },
            version: META_VERSION,
            thanos: None,
            extra: BTreeMap::new(),
        }
    }

    /// Parses and validates meta.json bytes; `block` names the block in errors.
    pub fn parse(block: &str, data: &[u8]) -> Result<Self, BlockError> {
        let loc = FileLocation::new(block, META_FILENAME);
        let meta: BlockMeta =
            serde_json::from_slice(data).map_err(|e| loc.corrupt(format!("invalid JSON: {e}")))?;
        if meta.version != META_VERSION {
            return Err(loc.unsupported(format!(
                "meta.json version {} (only {META_VERSION} is known)",
                meta.version
            )));
        }
        if meta.min_time > meta.max_time {
            return Err(loc.corrupt(format!(
                "minTime {} is after maxTime {}",
                meta.min_time, meta.max_time
            )));
        }
        Ok(meta)
    }

    /// Reads `dir/meta.json`.
    pub fn read_from_dir(dir: &std::path::Path) -> Result<Self, BlockError> {
        let block = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let loc = FileLocation::new(&block, META_FILENAME);
        let data = match std::fs::read(dir.join(META_FILENAME)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(loc.missing()),
            Err(e) => return Err(loc.io(e)),
        };
        Self::parse(&block, &data)
    }

    /// Serialises like Go's `json.MarshalIndent(meta, "", "\t")`, without a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serialising plain structs and maps of strings cannot fail.
        if self.serialize(&mut ser).is_err() {
            out.clear();
        }
        out
    }

    /// Writes `dir/meta.json` through a temporary file and a rename.
    pub fn write_to_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let tmp = dir.join("meta.json.tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(META_FILENAME))
    }

    /// The Thanos section, created empty when absent.
    pub fn thanos_mut(&mut self) -> &mut ThanosMeta {
        self.thanos.get_or_insert_with(|| ThanosMeta {
            version: 1,
            ..ThanosMeta::default()
        })
    }

    /// External labels (empty when the block has no Thanos section).
    pub fn external_labels(&self) -> BTreeMap<String, String> {
        self.thanos
            .as_ref()
            .map(|t| t.labels.clone())
            .unwrap_or_default()
    }

    /// Downsampling resolution in ms (0 for raw or no Thanos section).
    pub fn resolution(&self) -> i64 {
        self.thanos
            .as_ref()
            .map(|t| t.downsample.resolution)
            .unwrap_or(RESOLUTION_RAW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMTOOL_META: &str = "{\n\t\"ulid\": \"01M88NPT7SE67AB22C4TNFMG4W\",\n\t\"minTime\": 1700000000000,\n\t\"maxTime\": 1700004485001,\n\t\"stats\": {\n\t\t\"numSamples\": 900,\n\t\t\"numSeries\": 3,\n\t\t\"numChunks\": 9\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n\t\t\"sources\": [\n\t\t\t\"01M88NPT7SE67AB22C4TNFMG4W\"\n\t\t]\n\t},\n\t\"version\": 1\n}";

    #[test]
    fn round_trips_promtool_meta_byte_for_byte() {
        let meta = BlockMeta::parse("b", PROMTOOL_META.as_bytes()).unwrap();
        assert_eq!(meta.stats.num_samples, 900);
        assert_eq!(meta.compaction.sources.len(), 1);
        assert_eq!(String::from_utf8(meta.to_json()).unwrap(), PROMTOOL_META);
    }

    #[test]
    fn keeps_unknown_thanos_fields() {
        let json = r#"{"ulid":"01M88NPT7SE67AB22C4TNFMG4W","minTime":1,"maxTime":2,"stats":{},
            "compaction":{"level":1},"version":1,
            "thanos":{"version":1,"labels":{"a":"b"},"downsample":{"resolution":300000},
            "source":"sidecar","rewrites":[{"sources":[]}],"files":[{"rel_path":"meta.json"}]}}"#;
        let meta = BlockMeta::parse("b", json.as_bytes()).unwrap();
        assert_eq!(meta.resolution(), RESOLUTION_5M);
        let again = BlockMeta::parse("b", &meta.to_json()).unwrap();
        assert_eq!(again, meta);
        assert!(String::from_utf8(meta.to_json())
            .unwrap()
            .contains("rewrites"));
    }

    #[test]
    fn rejects_unknown_version_and_bad_json_naming_the_block() {
        let bad = PROMTOOL_META.replace("\"version\": 1", "\"version\": 2");
        let err = BlockMeta::parse("01X", bad.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("01X: meta.json: unsupported"),
            "{err}"
        );
        let err = BlockMeta::parse("01X", &PROMTOOL_META.as_bytes()[..40]).unwrap_err();
        assert!(err.to_string().contains("01X: meta.json: corrupt"), "{err}");
        assert!(err.to_string().contains("line 2 column"), "{err}");
    }
}
