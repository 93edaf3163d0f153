//! The bucket of a tier-1 compaction run: a client of the test's S3 server (s3s-fs with SigV4,
//! started by the test on its bridge address in the root namespace, which every node namespace
//! reaches); two groups of blocks made by `strata tools bucket generate`; and what the checkers
//! read back through `storage` (live blocks per group, every sample of a group).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage::block::{Block, BlockMeta};
use storage::bucket::blocks::fetch_metas;
use storage::bucket::marks::{read_mark, DeletionMark};
use storage::bucket::{open_backend, Bucket, BucketConfig};

use crate::error::{Error, Result};

/// The test's bucket: its configuration and a client of it.
pub struct TestBucket {
    endpoint: (IpAddr, u16),
    /// The Thanos objstore YAML every node and tool uses (`--objstore.config-file`).
    pub config_file: PathBuf,
    bucket: Arc<dyn Bucket>,
}

impl std::fmt::Debug for TestBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBucket")
            .field("endpoint", &self.endpoint)
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

fn not_ready(what: &str, e: impl std::fmt::Display) -> Error {
    Error::NotReady(format!("{what}: {e}"))
}

impl TestBucket {
    /// The bucket of objstore `yaml` served at `endpoint`; writes the YAML into `dir` for the
    /// nodes and tools.
    pub fn new(yaml: &str, endpoint: (IpAddr, u16), dir: &Path) -> Result<TestBucket> {
        let config_file = dir.join("objstore.yml");
        std::fs::write(&config_file, yaml).map_err(|source| Error::Io {
            what: "write",
            path: config_file.clone(),
            source,
        })?;
        let config = BucketConfig::parse(yaml, "tier-1 bucket")
            .map_err(|e| not_ready("bucket config", e))?;
        // The bare backend: a checker's read that fails must fail the check, not be retried
        // into hiding a fault still in force.
        let bucket: Arc<dyn Bucket> =
            Arc::new(open_backend(&config).map_err(|e| not_ready("open bucket", e))?);
        Ok(TestBucket {
            endpoint,
            config_file,
            bucket,
        })
    }

    /// Where the server listens (the target of a bucket outage).
    pub fn endpoint(&self) -> (IpAddr, u16) {
        self.endpoint
    }

    /// Writes `hours` of 2h blocks with the external label `cluster="<group>"` through the
    /// `strata` binary, run in the root namespace.
    pub fn generate(&self, strata: &Path, scratch: &Path, group: &str, hours: u32) -> Result<()> {
        let out = std::process::Command::new(strata)
            .args(["tools", "bucket", "generate", "--objstore.config-file"])
            .arg(&self.config_file)
            .arg("--data-dir")
            .arg(scratch)
            .args(["--hours", &hours.to_string(), "--instances", "1"])
            .arg(format!("--label=cluster=\"{group}\""))
            .output()
            .map_err(|source| Error::Spawn {
                cmd: format!("{} tools bucket generate", strata.display()),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Command {
                cmd: "strata tools bucket generate".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// Blocks with a meta.json and no deletion mark, by group (external labels and resolution),
    /// each group sorted by time; and how many blocks are partial uploads.
    pub async fn live(&self) -> Result<Live> {
        let fetched = fetch_metas(self.bucket.as_ref())
            .await
            .map_err(|e| bucket_err("list blocks", e))?;
        let mut groups: BTreeMap<String, Vec<BlockMeta>> = BTreeMap::new();
        for (id, meta) in fetched.metas {
            let mark = read_mark::<DeletionMark>(self.bucket.as_ref(), id)
                .await
                .map_err(|e| bucket_err("read deletion mark", e))?;
            if mark.is_none() {
                groups.entry(group_key(&meta)).or_default().push(meta);
            }
        }
        for metas in groups.values_mut() {
            metas.sort_by_key(|m| (m.min_time, m.ulid));
        }
        Ok(Live {
            groups,
            partial: fetched.partial.len(),
        })
    }

    /// Every sample of `blocks`, by series (as its labels print), in time order; samples of
    /// the same series and time in two blocks are both kept, so a duplicate shows.
    pub async fn samples(&self, blocks: &[BlockMeta]) -> Result<GroupSamples> {
        let mut out: GroupSamples = BTreeMap::new();
        for meta in blocks {
            let block = Block::open_bucket(self.bucket.clone(), meta.clone())
                .await
                .map_err(|e| bucket_err("open block", e))?;
            for s in block
                .all_series()
                .await
                .map_err(|e| bucket_err("read block", e))?
            {
                out.entry(s.labels.to_string())
                    .or_default()
                    .extend(s.samples.iter().map(|(t, v)| (*t, v.to_bits())));
            }
        }
        for v in out.values_mut() {
            v.sort_unstable();
        }
        Ok(out)
    }
}

/// A series' samples as (ms, f64 bits), so NaNs compare too.
pub type GroupSamples = BTreeMap<String, Vec<(i64, u64)>>;

/// What is live in the bucket.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Live blocks by group.
    pub groups: BTreeMap<String, Vec<BlockMeta>>,
    /// Block directories without meta.json (in-flight or abandoned uploads).
    pub partial: usize,
}

impl Live {
    /// Every live block's ULID, sorted (two equal lists: nothing changed).
    pub fn ids(&self) -> Vec<ulid::Ulid> {
        let mut v: Vec<_> = self.groups.values().flatten().map(|m| m.ulid).collect();
        v.sort();
        v
    }
}

/// A block's compaction group: its external labels and resolution, as Thanos groups.
pub fn group_key(meta: &BlockMeta) -> String {
    let (labels, res) = meta
        .thanos
        .as_ref()
        .map(|t| (t.labels.clone(), t.downsample.resolution))
        .unwrap_or_default();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}@{res}", labels.join(","))
}

fn bucket_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Bucket(format!("{what}: {e}"))
}
