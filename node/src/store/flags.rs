//! The store gateway's own flags (Thanos' `thanos store` names and defaults), shared by
//! `strata store` and the store role of `strata node`.

use super::caching_bucket::CachingBucket;
use super::caching_bucket_config::CachingBucketConfig;
use super::catalog::{Catalog, CatalogOptions, TimeWindow, TimeWindowFilter};
use super::index_cache::InMemoryIndexCache;
use super::pool::ChunkPool;
use super::server::{SeriesLimits, StoreService, DEFAULT_FRAME_BYTES};
use crate::query::blocks::index_discovery;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use storage::bucket::fetcher::filters::system_clock;
use storage::bucket::fetcher::{
    ConsistencyDelayFilter, DeduplicateFilter, DeletionMarkFilter, MetaFetcher, RelabelConfig,
    RelabelFilter,
};
use storage::bucket::Bucket;

/// Directory under `--data-dir` holding the index headers, one directory per block.
pub const INDEX_HEADERS_DIR: &str = "index-headers";

/// Store-gateway flags beyond the bucket and listen addresses.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreGatewayFlags {
    /// How often the store looks for new or removed blocks in the bucket.
    #[arg(long = "sync-block-duration", default_value = "15m", value_parser = humantime::parse_duration)]
    pub sync_interval: Duration,
    /// Serve only blocks ending after this time: RFC3339 or a duration relative to now
    /// (`-2w`, `-6h`; units ms, s, m, h, d, w, y); the default is no bound.
    #[arg(long = "min-time", default_value = "0000-01-01T00:00:00Z", value_parser = TimeOrDuration::parse)]
    pub min_time: TimeOrDuration,
    /// Serve only blocks starting before this time (same forms as --min-time).
    #[arg(long = "max-time", default_value = "9999-12-31T23:59:59Z", value_parser = TimeOrDuration::parse)]
    pub max_time: TimeOrDuration,
    /// File with Prometheus relabel rules (keep, drop, hashmod) over each block's external
    /// labels and `__block_id`; blocks they drop are not served (sharding).
    #[arg(long = "selector.relabel-config-file", value_name = "FILE")]
    pub relabel_config_file: Option<PathBuf>,
    /// The same rules inline, as YAML (an alternative to --selector.relabel-config-file).
    #[arg(long = "selector.relabel-config", value_name = "YAML")]
    pub relabel_config: Option<String>,
    /// Blocks marked for deletion longer ago than this are no longer served.
    #[arg(long = "ignore-deletion-marks-delay", default_value = "24h", value_parser = crate::flags::parse_duration)]
    pub ignore_deletion_marks_delay: Duration,
    /// Blocks younger than this (by ULID) are not served yet, except the compactor's.
    #[arg(long = "consistency-delay", default_value = "0s", value_parser = crate::flags::parse_duration)]
    pub consistency_delay: Duration,
    /// Read the blocks from the compactor's bucket index (one request per sync) while it is at
    /// most this old; older, missing or corrupt, list the bucket. 0s always lists.
    #[arg(long = "bucket-index.max-stale-period", default_value = "1h", value_parser = crate::flags::parse_duration)]
    pub bucket_index_max_stale: Duration,
    /// Caches, chunk pool and request limits (also a node's store role's).
    #[command(flatten)]
    pub caches: StoreCacheFlags,
}

/// The store gateway's caches, chunk pool and request limits: flags of `strata store`, and of
/// `strata node` for its store role.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreCacheFlags {
    /// Most series one Series request may return; 0 means no limit.
    #[arg(long = "store.limits.request-series", default_value_t = 0)]
    pub request_series: u64,
    /// Most samples one Series request may return, counted as 120 per chunk; 0 means no limit.
    #[arg(long = "store.limits.request-samples", default_value_t = 0)]
    pub request_samples: u64,
    /// Maximum size of items held in the in-memory index cache: postings lists and series
    /// entries kept across requests (Thanos' meaning; 0 disables it). Items are weighed by
    /// their estimated memory, decoded.
    #[arg(long = "index-cache-size", default_value = "250MB", value_parser = parse_bytes)]
    pub index_cache_size: u64,
    /// Memory for open blocks' parsed index headers (symbols and postings offset tables;
    /// Strata's own flag); blocks beyond it are reopened from their header on local disk
    /// when a query needs them.
    #[arg(long = "store.index-header-cache-size", default_value = "250MB", value_parser = parse_bytes)]
    pub index_header_cache_size: u64,
    /// File with Thanos' caching bucket YAML (`type: IN-MEMORY`): chunk reads of a remote
    /// bucket kept in memory in subranges. Without it chunks are read from the bucket each time.
    #[arg(long = "store.caching-bucket.config-file", value_name = "FILE")]
    pub caching_bucket_config_file: Option<PathBuf>,
    /// The same caching bucket YAML inline (an alternative to --store.caching-bucket.config-file).
    #[arg(long = "store.caching-bucket.config", value_name = "YAML")]
    pub caching_bucket_config: Option<String>,
    /// Most bytes of chunk data all Series requests hold at once; a request waits for its
    /// share, and one that could never fit fails with ResourceExhausted.
    #[arg(long = "chunk-pool-size", default_value = "2GB", value_parser = parse_bytes)]
    pub chunk_pool_size: u64,
}

impl StoreGatewayFlags {
    /// The store gateway of a node: defaults, the node's sync interval, and its cache flags.
    pub fn for_node(sync_interval: Duration, caches: &StoreCacheFlags) -> anyhow::Result<Self> {
        let mut flags = Self::defaults(sync_interval)?;
        flags.caches = caches.clone();
        // Checked here, so that a bad caching bucket config stops the node at start-up.
        flags.caching_bucket()?;
        Ok(flags)
    }
}

/// A size like Thanos' `250MB` or `2GiB` (powers of 1024, as Thanos' `units.Base2Bytes`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (use e.g. 250MB, 2GB)"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" | "KIB" | "K" => 10,
        "MB" | "MIB" | "M" => 20,
        "GB" | "GIB" | "G" => 30,
        "TB" | "TIB" | "T" => 40,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?} (use B, KB, MB, GB or TB)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// A time flag in Thanos' forms: an instant, or a duration relative to now (re-evaluated at
/// each sync, so `-2w` is a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOrDuration {
    /// Ms since the epoch; `i64::MIN`/`i64::MAX` for Thanos' unbounded defaults.
    At(i64),
    /// Ms from now (negative: in the past).
    FromNow(i64),
}

impl TimeOrDuration {
    /// Parses RFC3339 (`2026-01-01T00:00:00Z`) or a Prometheus duration with an optional
    /// leading minus (`-2w`, `2h45m`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "0000-01-01T00:00:00Z" => return Ok(TimeOrDuration::At(i64::MIN)),
            "9999-12-31T23:59:59Z" => return Ok(TimeOrDuration::At(i64::MAX)),
            _ => {}
        }
        let (minus, d) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if let Some(ms) = crate::http::params::parse_prometheus_duration(d) {
            return Ok(TimeOrDuration::FromNow(if minus { -ms } else { ms }));
        }
        if s.contains('T') {
            if let Ok(ms) = crate::http::params::parse_time(s) {
                return Ok(TimeOrDuration::At(ms));
            }
        }
        Err(format!(
            "invalid time {s:?}: use RFC3339 (2026-01-02T15:04:05Z) or a duration relative to now (-2w, -6h30m)"
        ))
    }

    /// The instant, relative ones measured from `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeOrDuration::At(ms) => ms,
            TimeOrDuration::FromNow(d) => now_ms.saturating_add(d),
        }
    }
}

impl StoreGatewayFlags {
    /// The selector relabel rules of `--selector.relabel-config(-file)`, if any.
    pub fn relabel(&self) -> anyhow::Result<RelabelConfig> {
        let text = match (&self.relabel_config_file, &self.relabel_config) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both --selector.relabel-config-file and --selector.relabel-config are set; use one"
            ),
            (Some(path), None) => std::fs::read_to_string(path).with_context(|| {
                format!("reading --selector.relabel-config-file {}", path.display())
            })?,
            (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        };
        RelabelConfig::parse(&text).context("in the selector relabel config")
    }

    /// The caching bucket of `--store.caching-bucket.config(-file)`, if one is configured.
    pub fn caching_bucket(&self) -> anyhow::Result<Option<CachingBucketConfig>> {
        let text = match (&self.caches.caching_bucket_config_file, &self.caches.caching_bucket_config) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both --store.caching-bucket.config-file and --store.caching-bucket.config are set; use one"
            ),
            (Some(path), None) => std::fs::read_to_string(path).with_context(|| {
                format!("reading --store.caching-bucket.config-file {}", path.display())
            })?,
            (None, Some(text)) => text.clone(),
            (None, None) => return Ok(None),
        };
        Ok(Some(CachingBucketConfig::parse(&text)?))
    }

    /// Thanos' defaults for every flag, with `sync_interval` (the store role of `strata node`,
    /// whose flags do not carry the gateway's).
    pub fn defaults(sync_interval: Duration) -> anyhow::Result<Self> {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            gateway: StoreGatewayFlags,
        }
        let mut flags = <Defaults as clap::Parser>::try_parse_from(["strata"])
            .map_err(|e| anyhow::anyhow!("store gateway defaults: {e}"))?
            .gateway;
        flags.sync_interval = sync_interval;
        Ok(flags)
    }

    /// The time window of `--min-time`/`--max-time`; refused when it is empty now.
    pub fn window(&self) -> anyhow::Result<TimeWindow> {
        let w = TimeWindow {
            min: self.min_time,
            max: self.max_time,
            clock: system_clock(),
        };
        let (min, max) = w.resolve();
        anyhow::ensure!(
            min <= max,
            "--min-time ({min} ms) is after --max-time ({max} ms): nothing would be served"
        );
        Ok(w)
    }

    /// The block fetcher with the store's filters, in Thanos' order: time window, selector
    /// relabelling, consistency delay, deletion marks, duplicates (blocks whose sources a
    /// compacted block holds); blocks of every resolution are served.
    pub fn fetcher(&self, bucket: Arc<dyn Bucket>) -> anyhow::Result<MetaFetcher> {
        let mut f = MetaFetcher::new(bucket)
            .with_discovery(index_discovery(self.bucket_index_max_stale))
            .with_filter(TimeWindowFilter(self.window()?));
        let relabel = self.relabel()?;
        if !relabel.is_empty() {
            f = f.with_filter(RelabelFilter { config: relabel });
        }
        Ok(f.with_filter(ConsistencyDelayFilter {
            delay_ms: millis(self.consistency_delay),
            clock: system_clock(),
        })
        .with_filter(DeletionMarkFilter {
            delay_ms: millis(self.ignore_deletion_marks_delay),
            clock: system_clock(),
        })
        .with_filter(DeduplicateFilter))
    }

    /// The request limits.
    pub fn limits(&self) -> SeriesLimits {
        SeriesLimits {
            series: self.caches.request_series,
            samples: self.caches.request_samples,
        }
    }

    /// The store's catalog and StoreAPI service as these flags configure them, with index
    /// headers under `<data_dir>/index-headers`; metrics go to `registry`.
    pub fn build(
        &self,
        bucket: Arc<dyn Bucket>,
        data_dir: &Path,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<(Arc<Catalog>, StoreService)> {
        let fetcher = self.fetcher(bucket.clone())?;
        let bucket: Arc<dyn Bucket> = match self.caching_bucket()? {
            Some(config) => Arc::new(
                CachingBucket::new(bucket, config, registry)
                    .context("registering caching bucket metrics")?,
            ),
            None => bucket,
        };
        let index_cache = match self.caches.index_cache_size {
            0 => None,
            size => Some(Arc::new(
                InMemoryIndexCache::new(size, registry)
                    .context("registering index cache metrics")?,
            )),
        };
        let options = CatalogOptions {
            fetcher,
            window: self.window()?,
            header_dir: Some(data_dir.join(INDEX_HEADERS_DIR)),
            header_cache_bytes: self.caches.index_header_cache_size,
            index_cache,
        };
        let catalog = Catalog::with_options(bucket, options, registry)
            .context("registering store metrics")?;
        let catalog = Arc::new(catalog);
        anyhow::ensure!(
            self.caches.chunk_pool_size > 0,
            "--chunk-pool-size is 0: no Series request could read chunks"
        );
        let service = StoreService::new(catalog.clone(), DEFAULT_FRAME_BYTES)
            .with_limits(self.limits())
            .with_chunk_pool(ChunkPool::new(self.caches.chunk_pool_size));
        Ok((catalog, service))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        g: StoreGatewayFlags,
    }

    #[derive(Debug, Parser)]
    struct NodeCli {
        #[command(flatten)]
        s: StoreCacheFlags,
    }

    fn node(args: &[&str]) -> anyhow::Result<StoreGatewayFlags> {
        let cli = NodeCli::try_parse_from(std::iter::once("node").chain(args.iter().copied()))?;
        StoreGatewayFlags::for_node(Duration::from_secs(180), &cli.s)
    }

    #[test]
    fn a_node_store_role_takes_the_store_gateway_caches_and_limits() {
        let d = node(&[]).expect("defaults");
        let g = parse(&[]).expect("store defaults");
        assert_eq!(d.caches.index_cache_size, g.caches.index_cache_size);
        assert_eq!(d.caches.chunk_pool_size, g.caches.chunk_pool_size);
        assert_eq!(
            d.sync_interval,
            Duration::from_secs(180),
            "the node's sync interval"
        );
        assert_eq!(d.caching_bucket().expect("none"), None);
        let f = node(&[
            "--index-cache-size=1MB",
            "--store.index-header-cache-size=2MB",
            "--chunk-pool-size=3MB",
            "--store.limits.request-series=7",
            "--store.limits.request-samples=8",
            "--store.caching-bucket.config=type: IN-MEMORY\nconfig:\n  max_size: 32MB\n",
        ])
        .expect("set");
        assert_eq!(
            (
                f.caches.index_cache_size,
                f.caches.index_header_cache_size,
                f.caches.chunk_pool_size
            ),
            (1 << 20, 2 << 20, 3 << 20)
        );
        assert_eq!((f.limits().series, f.limits().samples), (7, 8));
        assert_eq!(
            f.caching_bucket().expect("valid").map(|c| c.max_size),
            Some(32 << 20)
        );
        let bad = node(&["--store.caching-bucket.config=type: MEMCACHED\n"]).unwrap_err();
        assert!(format!("{bad:#}").contains("MEMCACHED"), "{bad:#}");
    }

    fn parse(args: &[&str]) -> Result<StoreGatewayFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("store").chain(args.iter().copied())).map(|c| c.g)
    }

    #[test]
    fn defaults_are_thanos_defaults() {
        let g = parse(&[]).expect("defaults parse");
        assert_eq!(g.sync_interval, Duration::from_secs(900));
        assert_eq!(g.min_time, TimeOrDuration::At(i64::MIN));
        assert_eq!(g.max_time, TimeOrDuration::At(i64::MAX));
        assert_eq!(g.ignore_deletion_marks_delay, Duration::from_secs(86_400));
        assert_eq!(g.consistency_delay, Duration::ZERO);
        assert_eq!((g.caches.request_series, g.caches.request_samples), (0, 0));
        assert_eq!(g.caches.index_cache_size, 250 << 20);
        assert_eq!(g.caches.index_header_cache_size, 250 << 20);
        assert_eq!(g.caching_bucket().expect("none"), None);
        assert_eq!(g.caches.chunk_pool_size, 2 << 30);
        assert_eq!(g.bucket_index_max_stale, Duration::from_secs(3600));
        assert!(g.relabel().expect("no rules").is_empty());
    }

    #[test]
    fn sizes_use_thanos_units() {
        assert_eq!(parse_bytes("2GB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert!(parse_bytes("12XB").is_err());
        assert!(parse_bytes("MB").is_err());
        assert!(parse_bytes("99999999999TB").is_err());
    }

    #[test]
    fn times_accept_rfc3339_and_relative_durations() {
        let now = 1_767_225_600_000;
        let g = parse(&["--min-time=-2w", "--max-time", "2026-01-01T00:00:00Z"]).expect("parse");
        assert_eq!(g.min_time.resolve(now), now - 14 * 86_400_000);
        assert_eq!(g.max_time.resolve(now), 1_767_225_600_000);
        assert_eq!(
            TimeOrDuration::parse("2h45m").map(|t| t.resolve(now)),
            Ok(now + 9_900_000)
        );
        let e = parse(&["--min-time", "yesterday"]).expect_err("bad time");
        assert!(e.to_string().contains("RFC3339"), "{e}");
        let empty = parse(&["--min-time=-1d", "--max-time=-2d"]).expect("parse");
        let e = empty.window().expect_err("empty window");
        assert!(e.to_string().contains("after --max-time"), "{e}");
    }

    #[test]
    fn relabel_config_comes_from_one_source_and_is_checked() {
        let both = parse(&[
            "--selector.relabel-config=[]",
            "--selector.relabel-config-file=/nonexistent",
        ])
        .expect("parse");
        assert!(both.relabel().is_err());
        let missing = parse(&["--selector.relabel-config-file=/nonexistent/x.yml"]).expect("parse");
        let e = format!("{:#}", missing.relabel().expect_err("missing file"));
        assert!(e.contains("/nonexistent/x.yml"), "{e}");
        let bad = parse(&["--selector.relabel-config=- action: labelmap"]).expect("parse");
        let e = format!("{:#}", bad.relabel().expect_err("unsupported action"));
        assert!(e.contains("labelmap"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("r.yml");
        std::fs::write(
            &file,
            "- action: keep\n  source_labels: [region]\n  regex: eu\n",
        )
        .expect("write");
        let ok = parse(&[
            "--selector.relabel-config-file",
            file.to_str().expect("utf-8"),
        ])
        .expect("parse");
        assert!(!ok.relabel().expect("rules").is_empty());
    }

    #[test]
    fn caching_bucket_config_comes_from_one_source_and_is_checked() {
        let ok =
            parse(&["--store.caching-bucket.config=type: IN-MEMORY\nconfig:\n  max_size: 32MB\n"])
                .expect("parse");
        assert_eq!(
            ok.caching_bucket().expect("valid").map(|c| c.max_size),
            Some(32 << 20)
        );
        let e = format!(
            "{:#}",
            parse(&["--store.caching-bucket.config=type: REDIS\n"])
                .expect("parse")
                .caching_bucket()
                .expect_err("redis")
        );
        assert!(e.contains("\"REDIS\""), "{e}");
        let e = format!(
            "{:#}",
            parse(&["--store.caching-bucket.config-file=/nonexistent/cb.yml"])
                .expect("parse")
                .caching_bucket()
                .expect_err("missing file")
        );
        assert!(e.contains("/nonexistent/cb.yml"), "{e}");
        let both = parse(&[
            "--store.caching-bucket.config=type: IN-MEMORY",
            "--store.caching-bucket.config-file=/x",
        ])
        .expect("parse");
        assert!(both.caching_bucket().is_err());
    }

    #[test]
    fn node_defaults_are_thanos_defaults_with_the_node_sync_interval() {
        let g = StoreGatewayFlags::defaults(Duration::from_secs(180)).expect("defaults");
        assert_eq!(g.sync_interval, Duration::from_secs(180));
        assert_eq!(g.min_time, TimeOrDuration::At(i64::MIN));
        let parsed = parse(&[]).expect("parse");
        assert_eq!(g.caches.index_cache_size, parsed.caches.index_cache_size);
    }
}
