//! `--store.caching-bucket.config(-file)`: Thanos' caching bucket YAML.
//!
//! ```yaml
//! type: IN-MEMORY
//! config:
//!   max_size: 1GB
//!   max_item_size: 125MB
//! chunk_subrange_size: 16000
//! max_chunks_get_range_requests: 3
//! chunk_object_attrs_ttl: 24h
//! chunk_subrange_ttl: 24h
//! ```
//!
//! Only `IN-MEMORY` is supported; other types (`MEMCACHED`, `REDIS`, ...) are refused naming
//! the type. The metadata settings (`blocks_iter_ttl`, `metafile_*`) are accepted for Thanos
//! configs and not used: the store reads block metadata from the bucket index once per sync.
//! Unknown keys are refused (Thanos parses this file strictly too).

use super::flags::parse_bytes;
use serde::Deserialize;
use std::time::Duration;
use storage::bucket::duration::parse_go_duration;

/// A refused caching bucket configuration, naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum CachingBucketConfigError {
    /// Not YAML of the expected shape (unknown key, wrong type).
    #[error("caching bucket config: {0}")]
    Yaml(String),
    /// A `type` other than `IN-MEMORY`.
    #[error("caching bucket config: unsupported cache type {0:?} (supported: IN-MEMORY)")]
    UnsupportedType(String),
    /// A field with a value out of range or unparsable.
    #[error("caching bucket config: invalid {field}: {reason}")]
    Field {
        /// The YAML key, such as `config.max_size`.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

/// The caching bucket's settings, defaults filled in as Thanos fills them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachingBucketConfig {
    /// Most bytes the cache holds (`config.max_size`, default 1 GiB).
    pub max_size: u64,
    /// Largest item cached (`config.max_item_size`, default 125 MiB or `max_size` if less).
    pub max_item_size: u64,
    /// Chunk files are cached in aligned pieces of this many bytes (default 16000).
    pub chunk_subrange_size: u64,
    /// Most range requests one read sends for the pieces it misses; 0 is unlimited (default 3).
    pub max_chunks_get_range_requests: usize,
    /// How long a chunk file's size is remembered (default 24h).
    pub chunk_object_attrs_ttl: Duration,
    /// How long a piece of a chunk file is kept (default 24h).
    pub chunk_subrange_ttl: Duration,
}

impl Default for CachingBucketConfig {
    fn default() -> Self {
        CachingBucketConfig {
            max_size: 1 << 30,
            max_item_size: 125 << 20,
            chunk_subrange_size: 16_000,
            max_chunks_get_range_requests: 3,
            chunk_object_attrs_ttl: Duration::from_secs(24 * 3600),
            chunk_subrange_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    /// Read once the type is known to be IN-MEMORY: other types have other keys.
    #[serde(default)]
    config: Option<serde_yaml_ng::Value>,
    chunk_subrange_size: Option<i64>,
    max_chunks_get_range_requests: Option<i64>,
    chunk_object_attrs_ttl: Option<String>,
    chunk_subrange_ttl: Option<String>,
    // Accepted for Thanos' configs; metadata is not read through this cache.
    #[allow(dead_code)]
    blocks_iter_ttl: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    metafile_exists_ttl: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    metafile_doesnt_exist_ttl: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    metafile_content_ttl: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    metafile_max_size: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    max_size: Option<serde_yaml_ng::Value>,
    max_item_size: Option<serde_yaml_ng::Value>,
}

fn size(field: &'static str, v: &serde_yaml_ng::Value) -> Result<u64, CachingBucketConfigError> {
    let bad = |reason: String| CachingBucketConfigError::Field { field, reason };
    match v {
        serde_yaml_ng::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| bad(format!("{n} is not a size in bytes"))),
        serde_yaml_ng::Value::String(s) => parse_bytes(s).map_err(bad),
        other => Err(bad(format!("{other:?} is not a size (use e.g. 250MB)"))),
    }
}

fn duration(field: &'static str, s: &str) -> Result<Duration, CachingBucketConfigError> {
    let d =
        parse_go_duration(s).map_err(|reason| CachingBucketConfigError::Field { field, reason })?;
    if d.is_zero() {
        return Err(CachingBucketConfigError::Field {
            field,
            reason: "must be more than 0".into(),
        });
    }
    Ok(d)
}

impl CachingBucketConfig {
    /// Parses Thanos' caching bucket YAML.
    pub fn parse(yaml: &str) -> Result<Self, CachingBucketConfigError> {
        let raw: Raw = serde_yaml_ng::from_str(yaml)
            .map_err(|e| CachingBucketConfigError::Yaml(e.to_string()))?;
        if !raw.kind.eq_ignore_ascii_case("IN-MEMORY") {
            return Err(CachingBucketConfigError::UnsupportedType(raw.kind));
        }
        let mut c = CachingBucketConfig::default();
        let backend: Option<RawBackend> = match raw.config {
            None | Some(serde_yaml_ng::Value::Null) => None,
            Some(v) => Some(
                serde_yaml_ng::from_value(v)
                    .map_err(|e| CachingBucketConfigError::Yaml(format!("config: {e}")))?,
            ),
        };
        if let Some(b) = &backend {
            if let Some(v) = &b.max_size {
                c.max_size = size("config.max_size", v)?;
            }
            match &b.max_item_size {
                Some(v) => c.max_item_size = size("config.max_item_size", v)?,
                // Thanos refuses its own default above a smaller max_size; shrink it instead.
                None => c.max_item_size = c.max_item_size.min(c.max_size),
            }
        }
        if c.max_size == 0 {
            return Err(CachingBucketConfigError::Field {
                field: "config.max_size",
                reason: "must be more than 0".into(),
            });
        }
        if c.max_item_size > c.max_size {
            return Err(CachingBucketConfigError::Field {
                field: "config.max_item_size",
                reason: format!(
                    "{} bytes is more than config.max_size ({} bytes)",
                    c.max_item_size, c.max_size
                ),
            });
        }
        if let Some(n) = raw.chunk_subrange_size {
            c.chunk_subrange_size = u64::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
                CachingBucketConfigError::Field {
                    field: "chunk_subrange_size",
                    reason: format!("{n} is not a positive number of bytes"),
                }
            })?;
        }
        if let Some(n) = raw.max_chunks_get_range_requests {
            // Thanos: zero or negative is unlimited.
            c.max_chunks_get_range_requests = usize::try_from(n).unwrap_or(0);
        }
        if let Some(s) = &raw.chunk_object_attrs_ttl {
            c.chunk_object_attrs_ttl = duration("chunk_object_attrs_ttl", s)?;
        }
        if let Some(s) = &raw.chunk_subrange_ttl {
            c.chunk_subrange_ttl = duration("chunk_subrange_ttl", s)?;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thanos_in_memory_config_parses_with_defaults_for_what_it_omits() {
        let c = CachingBucketConfig::parse(
            "type: IN-MEMORY\nconfig:\n  max_size: 64MB\n  max_item_size: 1MiB\nchunk_subrange_size: 8000\nmax_chunks_get_range_requests: 0\nchunk_subrange_ttl: 1h\nblocks_iter_ttl: 5m\nmetafile_max_size: 1MiB\n",
        )
        .expect("valid config");
        assert_eq!(c.max_size, 64 << 20);
        assert_eq!(c.max_item_size, 1 << 20);
        assert_eq!(c.chunk_subrange_size, 8000);
        assert_eq!(c.max_chunks_get_range_requests, 0);
        assert_eq!(c.chunk_subrange_ttl, Duration::from_secs(3600));
        assert_eq!(c.chunk_object_attrs_ttl, Duration::from_secs(24 * 3600));
        let d = CachingBucketConfig::parse("type: in-memory\n").expect("defaults");
        assert_eq!(d, CachingBucketConfig::default());
    }

    #[test]
    fn other_cache_types_are_refused_naming_the_type() {
        let e = CachingBucketConfig::parse("type: MEMCACHED\nconfig:\n  addresses: [a:1]\n")
            .expect_err("memcached is not supported");
        assert!(e.to_string().contains("\"MEMCACHED\""), "{e}");
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let cases = [
            (
                "type: IN-MEMORY\nconfig:\n  max_size: 12XB\n",
                "config.max_size",
            ),
            (
                "type: IN-MEMORY\nconfig:\n  max_size: 0\n",
                "config.max_size",
            ),
            (
                "type: IN-MEMORY\nconfig:\n  max_size: 1MB\n  max_item_size: 2MB\n",
                "config.max_item_size",
            ),
            (
                "type: IN-MEMORY\nchunk_subrange_size: -5\n",
                "chunk_subrange_size",
            ),
            (
                "type: IN-MEMORY\nchunk_subrange_ttl: soon\n",
                "chunk_subrange_ttl",
            ),
            (
                "type: IN-MEMORY\nchunk_object_attrs_ttl: 0s\n",
                "chunk_object_attrs_ttl",
            ),
            (
                "type: IN-MEMORY\nchunk_subrange_sise: 10\n",
                "chunk_subrange_sise",
            ),
            ("type: IN-MEMORY\nconfig:\n  max_sise: 10\n", "max_sise"),
        ];
        for (yaml, field) in cases {
            let e = CachingBucketConfig::parse(yaml).expect_err(yaml);
            assert!(e.to_string().contains(field), "{yaml}: {e}");
        }
    }
}
