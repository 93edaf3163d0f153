//! Flags shared by several commands, with Thanos' names.

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use storage::bucket::{open_from_flags, Bucket, BucketMetrics, BucketOptions};

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
    /// Opens the configured bucket with retries, timeouts and metrics.
    pub fn open(&self) -> anyhow::Result<Arc<dyn Bucket>> {
        let registry = prometheus::Registry::new();
        let metrics = BucketMetrics::register(&registry).context("registering bucket metrics")?;
        let bucket = open_from_flags(
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
