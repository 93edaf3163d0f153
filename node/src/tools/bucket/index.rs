//! `strata tools bucket index`: writes the bucket index (`bucket-index.json.gz`) from a listing
//! of the bucket, as the compactor does after each pass, so that store gateways and queriers
//! can read one object instead of listing a bucket no compactor runs over yet (or one whose
//! index went stale while the compactor was stopped).

use crate::flags::ObjstoreFlags;
use anyhow::Context;
use std::collections::BTreeMap;
use std::process::ExitCode;
use storage::bucket::fetcher::MetaFetcher;
use storage::bucket::marks::{read_mark, NoCompactMark, NO_COMPACT_MARK_FILENAME};
use storage::compact::index::{write_index, BucketIndex, BUCKET_INDEX_FILENAME};
use ulid::Ulid;

/// Lists the bucket and writes its index; prints what it wrote.
pub async fn run(objstore: &ObjstoreFlags) -> anyhow::Result<ExitCode> {
    let bucket = objstore.open_existing()?;
    let fetched = MetaFetcher::new(bucket.clone())
        .fetch()
        .await
        .context("listing the bucket")?;
    for (id, e) in &fetched.failed {
        tracing::warn!(block = %id, error = %e, "left out of the index: unreadable meta.json");
    }
    // No-compact marks are rare: find them in one listing rather than one GET per block.
    let marked: Vec<Ulid> = bucket
        .list_recursive("")
        .await
        .context("listing no-compact marks")?
        .into_iter()
        .filter_map(|o| {
            let dir = o
                .path
                .strip_suffix(&format!("/{NO_COMPACT_MARK_FILENAME}"))?;
            Ulid::from_string(dir).ok()
        })
        .filter(|id| fetched.metas.contains_key(id))
        .collect();
    let mut no_compact: BTreeMap<Ulid, NoCompactMark> = BTreeMap::new();
    for id in marked {
        match read_mark::<NoCompactMark>(bucket.as_ref(), id).await {
            Ok(Some(m)) => {
                no_compact.insert(id, m);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(block = %id, error = %e, "ignoring unreadable no-compact mark")
            }
        }
    }
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let index = BucketIndex::build(
        fetched.metas.values(),
        &fetched.deletion_marks,
        &no_compact,
        now_s,
    );
    write_index(bucket.as_ref(), &index)
        .await
        .with_context(|| format!("writing {BUCKET_INDEX_FILENAME}"))?;
    println!(
        "wrote {BUCKET_INDEX_FILENAME}: {} blocks, {} deletion marks, {} no-compact marks ({} partial uploads and {} unreadable blocks left out)",
        index.blocks.len(),
        index.block_deletion_marks.len(),
        index.no_compact_marks.len(),
        fetched.partial.len(),
        fetched.failed.len()
    );
    Ok(ExitCode::SUCCESS)
}
