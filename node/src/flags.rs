//! Flags shared by several commands, with Thanos' names.

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use storage::bucket::{
    open_existing_from_flags, open_from_flags, Bucket, BucketMetrics, BucketOptions,
};

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
    /// bucket's directory (for writers: upload, generate, sidecar, compactor).
    pub fn open(&self) -> anyhow::Result<Arc<dyn Bucket>> {
        self.open_with(false)
    }

    /// Opens the configured bucket for reading: a FILESYSTEM bucket's directory must exist.
    pub fn open_existing(&self) -> anyhow::Result<Arc<dyn Bucket>> {
        self.open_with(true)
    }

    fn open_with(&self, must_exist: bool) -> anyhow::Result<Arc<dyn Bucket>> {
        let registry = prometheus::Registry::new();
        let metrics = BucketMetrics::register(&registry).context("registering bucket metrics")?;
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
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointFlags {
    /// A StoreAPI endpoint to query: host:port, or dns+name:port for every address the name
    /// resolves to (re-resolved every 30s). Repeatable. With none (and, in a cluster, no store
    /// in the registry) the querier reads the bucket's blocks itself.
    #[arg(long = "endpoint", value_name = "ADDRESS")]
    pub endpoints: Vec<String>,
    /// Deprecated name of --endpoint.
    #[arg(long = "store", value_name = "ADDRESS")]
    pub stores: Vec<String>,
    /// Answer with a warning when a store fails (true), or fail the query (false).
    #[arg(long = "query.partial-response", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub partial_response: bool,
    /// A label telling HA replicas apart (an external label such as `replica`): series equal
    /// without it are deduplicated into one. Repeatable; a request's `replicaLabels[]`
    /// overrides it and `dedup=false` turns it off.
    #[arg(long = "query.replica-label", value_name = "LABEL", value_parser = parse_label_name)]
    pub replica_labels: Vec<String>,
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
}
