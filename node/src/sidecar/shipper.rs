//! The shipper: uploads Prometheus' new blocks to the bucket, as Thanos' pkg/shipper does.
//!
//! It keeps Thanos' shipper file (`thanos.shipper.json` in the TSDB directory,
//! `{"version":1,"uploaded":[ULID...]}`), so a sidecar that replaces a Thanos sidecar uploads
//! nothing twice. Blocks are taken oldest first; empty blocks are skipped, and compacted
//! (level > 1) ones unless `--shipper.upload-compacted`. A block already in the bucket is only
//! recorded. Each upload writes chunks, index, then meta.json with the external labels and
//! source `sidecar`. The first failed upload ends the round (later blocks wait, so the bucket
//! never has a newer block without an older one); the next round retries. Nothing in
//! Prometheus' directory is ever deleted; the shipper writes only its own file.

use prometheus::{IntCounter, Registry};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage::block::BlockMeta;
use storage::bucket::Bucket;
use ulid::Ulid;

/// File name of the shipper file (Thanos' `--shipper.meta-file-name` default).
pub const SHIPPER_FILE: &str = "thanos.shipper.json";
/// The only shipper file version.
pub const SHIPPER_FILE_VERSION: u32 = 1;
/// Thanos' source name for blocks a sidecar uploads.
pub const SOURCE: &str = "sidecar";

/// Why a shipper round failed.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The TSDB directory cannot be listed.
    #[error("reading the TSDB directory {dir}: {source}")]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The shipper file exists but is not Thanos' format.
    #[error("shipper file {path}: {reason}")]
    BadShipperFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The bucket could not be asked whether a block exists.
    #[error("checking block {block} in the bucket: {source}")]
    Exists {
        /// The block.
        block: Ulid,
        /// The bucket error.
        source: storage::bucket::BucketError,
    },
    /// A block failed to upload.
    #[error("uploading block {block}: {source}")]
    Upload {
        /// The block.
        block: Ulid,
        /// The upload error.
        source: storage::block::BlockError,
    },
}

/// Thanos' shipper file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipperFile {
    /// Always 1.
    pub version: u32,
    /// Blocks uploaded (or found in the bucket) that still exist locally.
    #[serde(deserialize_with = "null_as_empty", default)]
    pub uploaded: Vec<Ulid>,
}

/// Go encodes a nil slice as `null`.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
    Ok(Option::<Vec<Ulid>>::deserialize(d)?.unwrap_or_default())
}

/// Reads `dir/thanos.shipper.json`; `Ok(None)` when absent.
pub fn read_shipper_file(dir: &Path) -> Result<Option<ShipperFile>, ShipperError> {
    let path = dir.join(SHIPPER_FILE);
    let bad = |reason: String| ShipperError::BadShipperFile {
        path: path.clone(),
        reason,
    };
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let f: ShipperFile =
        serde_json::from_slice(&data).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    if f.version != SHIPPER_FILE_VERSION {
        return Err(bad(format!("unexpected version {}", f.version)));
    }
    Ok(Some(f))
}

/// Writes `dir/thanos.shipper.json` as Thanos does (tab-indented JSON and a newline), through
/// a temporary file, fsync and rename.
pub fn write_shipper_file(dir: &Path, f: &ShipperFile) -> std::io::Result<()> {
    let path = dir.join(SHIPPER_FILE);
    let tmp = dir.join(format!("{SHIPPER_FILE}.tmp"));
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    f.serialize(&mut ser).map_err(std::io::Error::other)?;
    out.push(b'\n');
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&out)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What a round does with a local block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Recorded as uploaded already; kept in the shipper file.
    AlreadyShipped,
    /// Not shipped: no samples.
    SkipEmpty,
    /// Not shipped: compacted (level > 1) without `--shipper.upload-compacted`.
    SkipCompacted,
    /// To upload, unless the bucket has it already.
    Ship,
}

/// The decision for `meta` given the blocks the shipper file lists.
pub fn decide(meta: &BlockMeta, shipped: &HashSet<Ulid>, upload_compacted: bool) -> Decision {
    if shipped.contains(&meta.ulid) {
        Decision::AlreadyShipped
    } else if meta.stats.num_samples == 0 {
        Decision::SkipEmpty
    } else if meta.compaction.level > 1 && !upload_compacted {
        Decision::SkipCompacted
    } else {
        Decision::Ship
    }
}

/// Block metas under `dir` (directories named by a ULID with a meta.json), oldest first, and
/// the blocks whose meta.json could not be read.
pub fn local_blocks(dir: &Path) -> Result<(Vec<BlockMeta>, Vec<String>), ShipperError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ShipperError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut metas = Vec::new();
    let mut failed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if Ulid::from_string(&name).is_err() || !entry.path().is_dir() {
            continue;
        }
        match BlockMeta::read_from_dir(&entry.path()) {
            Ok(m) => metas.push(m),
            Err(e) => {
                tracing::error!(block = %name, error = %e, "cannot read block metadata");
                failed.push(name);
            }
        }
    }
    metas.sort_by_key(|m| (m.min_time, m.ulid));
    Ok((metas, failed))
}

/// The shipper's metrics (Thanos' names).
#[derive(Debug, Clone)]
pub struct ShipperMetrics {
    dir_syncs: IntCounter,
    dir_sync_failures: IntCounter,
    uploads: IntCounter,
    upload_failures: IntCounter,
    corrupted_blocks: IntCounter,
}

impl ShipperMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let c = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(ShipperMetrics {
            dir_syncs: c(
                "thanos_shipper_dir_syncs_total",
                "Total number of dir syncs",
            )?,
            dir_sync_failures: c(
                "thanos_shipper_dir_sync_failures_total",
                "Total number of failed dir syncs",
            )?,
            uploads: c(
                "thanos_shipper_uploads_total",
                "Total number of uploaded blocks",
            )?,
            upload_failures: c(
                "thanos_shipper_upload_failures_total",
                "Total number of block upload failures",
            )?,
            corrupted_blocks: c(
                "thanos_shipper_corrupted_blocks_total",
                "Total number of corrupted blocks",
            )?,
        })
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// Blocks uploaded in this round.
    pub uploaded: Vec<Ulid>,
    /// Blocks found in the bucket already and recorded.
    pub found: Vec<Ulid>,
}

/// Uploads a TSDB directory's new blocks.
#[derive(Debug, Clone)]
pub struct Shipper {
    bucket: Arc<dyn Bucket>,
    dir: PathBuf,
    upload_compacted: bool,
    metrics: ShipperMetrics,
}

impl Shipper {
    /// A shipper of the blocks in `dir` to `bucket`.
    pub fn new(
        bucket: Arc<dyn Bucket>,
        dir: PathBuf,
        upload_compacted: bool,
        metrics: ShipperMetrics,
    ) -> Self {
        Shipper {
            bucket,
            dir,
            upload_compacted,
            metrics,
        }
    }

    /// One round: uploads every new block with `labels` as external labels, then rewrites the
    /// shipper file with the shipped blocks that still exist locally.
    pub async fn sync(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<RoundReport, ShipperError> {
        let result = self.sync_inner(labels).await;
        match &result {
            Ok(_) => self.metrics.dir_syncs.inc(),
            Err(_) => self.metrics.dir_sync_failures.inc(),
        }
        result
    }

    async fn sync_inner(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<RoundReport, ShipperError> {
        let previous = match read_shipper_file(&self.dir) {
            Ok(f) => f.map(|f| f.uploaded).unwrap_or_default(),
            Err(e) => {
                // Like Thanos: start from an empty list; the bucket check avoids re-uploads.
                tracing::error!(error = %e, "cannot read the shipper file; rebuilding it");
                Vec::new()
            }
        };
        let shipped: HashSet<Ulid> = previous.into_iter().collect();
        let (metas, corrupted) = local_blocks(&self.dir)?;
        self.metrics.corrupted_blocks.inc_by(corrupted.len() as u64);
        let mut file = ShipperFile {
            version: SHIPPER_FILE_VERSION,
            uploaded: Vec::new(),
        };
        let mut report = RoundReport::default();
        let mut failure = None;
        for meta in metas {
            match decide(&meta, &shipped, self.upload_compacted) {
                Decision::AlreadyShipped => file.uploaded.push(meta.ulid),
                Decision::SkipEmpty | Decision::SkipCompacted => {}
                Decision::Ship => {
                    let id = meta.ulid;
                    match self.ship(meta, labels).await {
                        Ok(Shipped::Uploaded) => {
                            self.metrics.uploads.inc();
                            report.uploaded.push(id);
                            file.uploaded.push(id);
                        }
                        Ok(Shipped::Found) => {
                            report.found.push(id);
                            file.uploaded.push(id);
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        if let Err(e) = write_shipper_file(&self.dir, &file) {
            tracing::warn!(error = %e, "updating the shipper file failed");
        }
        match failure {
            Some(e) => {
                self.metrics.upload_failures.inc();
                Err(e)
            }
            None => Ok(report),
        }
    }

    /// Uploads one block unless the bucket has its meta.json already.
    async fn ship(
        &self,
        mut meta: BlockMeta,
        labels: &BTreeMap<String, String>,
    ) -> Result<Shipped, ShipperError> {
        let id = meta.ulid;
        let exists = self
            .bucket
            .exists(&format!("{id}/{}", storage::block::meta::META_FILENAME))
            .await
            .map_err(|source| ShipperError::Exists { block: id, source })?;
        if exists {
            tracing::info!(block = %id, "block already in the bucket; recording it as shipped");
            return Ok(Shipped::Found);
        }
        let dir = self.dir.join(id.to_string());
        let thanos = meta.thanos_mut();
        thanos
            .labels
            .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        // A block that names its maker (the ruler's) keeps it; Prometheus' blocks do not.
        if thanos.source.is_empty() {
            thanos.source = SOURCE.to_string();
        }
        thanos.downsample.resolution = storage::block::meta::RESOLUTION_RAW;
        thanos.segment_files = segment_files(&dir);
        tracing::info!(block = %id, min_time = meta.min_time, max_time = meta.max_time, "upload new block");
        storage::bucket::blocks::upload_block(self.bucket.as_ref(), &dir, &meta, None)
            .await
            .map_err(|source| ShipperError::Upload { block: id, source })?;
        Ok(Shipped::Uploaded)
    }
}

/// How a block got into the bucket.
enum Shipped {
    Uploaded,
    Found,
}

/// Chunk segment file names (Thanos still fills the deprecated `segment_files`).
fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("chunks"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
