//! `strata tools bucket upload`: local blocks into the bucket, in Thanos' order.

use crate::flags::ObjstoreFlags;
use crate::progress;
use anyhow::{bail, Context as _};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use storage::block::BlockMeta;

/// Thanos' source name for blocks uploaded by this tool.
const SOURCE: &str = "bucket.upload";

/// Parses `--label` values: `name="value"` or `name=value`.
pub fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for raw in labels {
        let Some((name, value)) = raw.split_once('=') else {
            bail!("--label {raw:?}: expected name=\"value\"");
        };
        let valid_name = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if name.is_empty() || !valid_name {
            bail!("--label {raw:?}: {name:?} is not a valid label name");
        }
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(v) => v,
            None => value,
        };
        if out.insert(name.to_string(), value.to_string()).is_some() {
            bail!("--label {name} given twice");
        }
    }
    Ok(out)
}

/// Block directories at `path`: the directory itself when it holds a meta.json, else its
/// children whose names are ULIDs (temporary and non-block directories are skipped).
fn block_dirs(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.join("meta.json").exists() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let is_ulid = name
            .to_str()
            .is_some_and(|n| ulid::Ulid::from_string(n).is_ok());
        if is_ulid && entry.path().join("meta.json").exists() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Uploads every block under `path`, adding `labels` as external labels.
pub async fn run(
    objstore: &ObjstoreFlags,
    path: &Path,
    labels: &[String],
) -> anyhow::Result<ExitCode> {
    let labels = parse_labels(labels)?;
    let bucket = objstore.open()?;
    let dirs = block_dirs(path)?;
    if dirs.is_empty() {
        bail!(
            "no block directories (with meta.json) under {}",
            path.display()
        );
    }
    let (mut uploaded, mut skipped) = (0, 0);
    for dir in dirs {
        let mut meta = BlockMeta::read_from_dir(&dir)?;
        let id = meta.ulid;
        if bucket.exists(&format!("{id}/meta.json")).await? {
            tracing::info!(block = %id, "already in the bucket, skipping");
            skipped += 1;
            continue;
        }
        let thanos = meta.thanos_mut();
        for (k, v) in &labels {
            if let Some(old) = thanos.labels.get(k).filter(|old| *old != v) {
                bail!("block {id}: external label {k}={old:?} already set, refusing to change it to {v:?}");
            }
            thanos.labels.insert(k.clone(), v.clone());
        }
        if thanos.source.is_empty() {
            thanos.source = SOURCE.to_string();
        }
        let total = dir_size(&dir)?;
        let bar = progress::bytes(total, &id.to_string());
        let report = |p: &storage::bucket::blocks::UploadProgress| bar.set_position(p.bytes_done);
        storage::bucket::blocks::upload_block(bucket.as_ref(), &dir, &meta, Some(&report))
            .await
            .with_context(|| format!("uploading block {}", dir.display()))?;
        bar.finish_and_clear();
        tracing::info!(block = %id, bytes = total, "uploaded");
        uploaded += 1;
    }
    println!("uploaded {uploaded} block(s), skipped {skipped} already present");
    Ok(ExitCode::SUCCESS)
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thanos_style_labels_and_rejects_bad_ones() {
        let l = parse_labels(&["replica=\"A\"".into(), "region=eu".into()]).unwrap();
        assert_eq!(l.get("replica").map(String::as_str), Some("A"));
        assert_eq!(l.get("region").map(String::as_str), Some("eu"));
        assert!(parse_labels(&["noequals".into()]).is_err());
        assert!(parse_labels(&["0bad=x".into()]).is_err());
        assert!(parse_labels(&["a=1".into(), "a=2".into()]).is_err());
    }
}
