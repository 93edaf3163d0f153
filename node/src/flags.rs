//! Flags shared by several commands, with Thanos' names.

use crate::query::remote::discover::{DiscoveryConfig, StoreSpec};
use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use storage::bucket::{open_existing_from_flags, open_from_flags, Bucket, BucketOptions};

/// Where the bucket is: Thanos' objstore flags, or the embedded default under `--data-dir`.
#[derive(Debug, Clone, clap::Args)]
pub struct ObjstoreFlags {
    /// Path to a YAML file with the object store configuration (Thanos' format).
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// The object store configuration as inline YAML (alternative to --objstore.config-file).
    #[arg(
        long = "objstore.config",
        value_name = "YAML",
        conflicts_with = "config_file"
    )]
    pub config: Option<String>,
    /// Data directory; with no objstore flag the bucket is the directory `<data-dir>/bucket`.
    #[arg(long = "data-dir", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl ObjstoreFlags {
    /// Opens the configured bucket with retries, timeouts and metrics, creating a FILESYSTEM
    /// bucket's directory (for writers: upload, generate, sidecar, compactor). Its operations
    /// count in the process' bucket metrics (`self_metrics::bucket_metrics`).
    pub fn open(&self) -> anyhow::Result<Arc<dyn Bucket>> {
        self.open_with(false)
    }

    /// Opens the configured bucket for reading: a FILESYSTEM bucket's directory must exist.
    pub fn open_existing(&self) -> anyhow::Result<Arc<dyn Bucket>> {
        self.open_with(true)
    }

    fn open_with(&self, must_exist: bool) -> anyhow::Result<Arc<dyn Bucket>> {
        let metrics =
            crate::server::self_metrics::bucket_metrics().context("building bucket metrics")?;
        let open = if must_exist {
            open_existing_from_flags
        } else {
            open_from_flags
        };
        let bucket = open(
            self.config_file.as_deref(),
            self.config.as_deref(),
            &self.data_dir,
            &BucketOptions::default(),
            &metrics,
        )?;
        tracing::debug!(bucket = %bucket.describe(), "bucket opened");
        Ok(bucket)
    }
}

/// Where the querier finds StoreAPI endpoints (Thanos' query flags).
#[derive(Debug, Clone, clap::Args)]
pub struct EndpointFlags {
    /// A StoreAPI endpoint to query: host:port; dns+name:port (every A/AAAA address);
    /// dnssrv+_svc._tcp.name (SRV records, targets resolved to addresses); dnssrvnoa+... (SRV
    /// targets dialled by name). Repeatable. With none (and, in a cluster, no store in the
    /// registry) the querier reads the bucket's blocks itself.
    #[arg(long = "endpoint", value_name = "ADDRESS")]
    pub endpoints: Vec<String>,
    /// Deprecated name of --endpoint.
    #[arg(long = "store", value_name = "ADDRESS")]
    pub stores: Vec<String>,
    /// Files in Prometheus' file-SD format (YAML, or JSON for .json; `*` allowed in the last
    /// path segment) listing host:port targets; re-read when they change. Repeatable.
    #[arg(long = "store.sd-files", value_name = "PATH")]
    pub sd_files: Vec<PathBuf>,
    /// How long a store may take to answer a call before it is given up on (a warning under
    /// partial response, else the query's error). 0 disables the timeout.
    #[arg(long = "store.response-timeout", default_value = "0ms", value_parser = parse_duration)]
    pub response_timeout: std::time::Duration,
    /// How often DNS endpoint names are re-resolved.
    #[arg(long = "store.sd-dns-interval", default_value = "30s", value_parser = parse_duration)]
    pub sd_dns_interval: std::time::Duration,
    /// Answer with a warning when a store fails (true), or fail the query (false).
    #[arg(long = "query.partial-response", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub partial_response: bool,
    /// A label telling HA replicas apart (an external label such as `replica`): series equal
    /// without it are deduplicated into one. Repeatable; a request's `replicaLabels[]`
    /// overrides it and `dedup=false` turns it off.
    #[arg(long = "query.replica-label", value_name = "LABEL", value_parser = parse_label_name)]
    pub replica_labels: Vec<String>,
    /// Range queries without `max_source_resolution` read downsampled data up to step / 5
    /// (as `max_source_resolution=auto`).
    #[arg(long = "query.auto-downsampling")]
    pub auto_downsampling: bool,
    /// Queries reading downsampled data look back as far as one sample of their resolution
    /// (Thanos' dynamic lookback: over 5m of `max_source_resolution`, 1h instead of 5m).
    #[arg(long = "query.dynamic-lookback-delta", value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub dynamic_lookback_delta: bool,
}

fn parse_label_name(s: &str) -> Result<String, String> {
    if crate::http::params::is_valid_label_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a valid label name"))
    }
}

impl EndpointFlags {
    /// Every endpoint given, --endpoint and --store alike.
    pub fn all(&self) -> Vec<String> {
        self.endpoints.iter().chain(&self.stores).cloned().collect()
    }

    /// Whether any endpoint source (spec or SD file) is given.
    pub fn any(&self) -> bool {
        !self.endpoints.is_empty() || !self.stores.is_empty() || !self.sd_files.is_empty()
    }

    /// The endpoint specs parsed, with the flag named in the error.
    pub fn discovery(&self) -> anyhow::Result<DiscoveryConfig> {
        let specs = self
            .all()
            .iter()
            .map(|e| {
                e.parse::<StoreSpec>()
                    .map_err(|err| anyhow::anyhow!("--endpoint {err}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(DiscoveryConfig {
            specs,
            files: self.sd_files.clone(),
            dns_interval: self.sd_dns_interval,
            nameserver: None,
        })
    }
}

/// A Prometheus duration flag (`30s`, `5m`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::http::params::parse_prometheus_duration(s)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h)"))
}
