//! Flags shared by several commands, with Thanos' names.

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use storage::bucket::Bucket;

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
        let config = match (&self.config_file, &self.config) {
            (Some(path), _) => storage::bucket::config::BucketConfig::from_file(path)
                .with_context(|| format!("--objstore.config-file {}", path.display()))?,
            (None, Some(yaml)) => storage::bucket::config::BucketConfig::from_yaml(yaml)
                .context("--objstore.config")?,
            (None, None) => storage::bucket::config::BucketConfig::embedded(&self.data_dir),
        };
        let registry = prometheus::Registry::new();
        let bucket = storage::bucket::open(&config, &registry)
            .with_context(|| format!("opening bucket {}", config.describe()))?;
        tracing::debug!(bucket = %bucket.describe(), "bucket opened");
        Ok(bucket)
    }
}
