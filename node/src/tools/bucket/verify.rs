//! `strata tools bucket verify`: report what is wrong with the bucket's blocks; exit 1 if any.

use crate::flags::ObjstoreFlags;
use crate::progress;
use std::collections::BTreeSet;
use std::process::ExitCode;
use storage::block::verify::{find_live_overlaps, verify_block};
use storage::bucket::fetcher::MetaFetcher;

/// Verifies the blocks (all, or those in `ids`), printing one line per issue.
pub async fn run(objstore: &ObjstoreFlags, ids: &[String]) -> anyhow::Result<ExitCode> {
    let bucket = objstore.open_existing()?;
    let fetched = MetaFetcher::new(bucket.clone()).fetch().await?;
    let wanted = |id: &str| ids.is_empty() || ids.iter().any(|i| i == id);
    let mut issues: Vec<String> = Vec::new();
    for id in fetched.partial.iter().filter(|id| wanted(&id.to_string())) {
        issues.push(format!("block {id}: partial upload: no meta.json"));
    }
    for (id, err) in fetched
        .failed
        .iter()
        .filter(|(id, _)| wanted(&id.to_string()))
    {
        issues.push(format!("block {id}: unreadable meta.json: {err}"));
    }
    let marked: BTreeSet<_> = fetched.deletion_marks.keys().copied().collect();
    let all: Vec<_> = fetched.metas.values().cloned().collect();
    let (overlaps, skipped) = find_live_overlaps(&all, &marked);
    issues.extend(overlaps.into_iter().map(|o| o.to_string()));
    if skipped > 0 {
        // Stdout, not an issue: a marked block overlapping its replacement is expected.
        println!("skipped {skipped} block(s) marked for deletion in the overlap check");
    }
    let metas: Vec<_> = fetched
        .metas
        .values()
        .filter(|m| wanted(&m.ulid.to_string()))
        .collect();
    let bar = progress::items(metas.len() as u64, "verifying blocks");
    for meta in metas {
        bar.set_message(meta.ulid.to_string());
        let prefix = format!("block {}", meta.ulid);
        for issue in verify_block(bucket.clone(), meta).await {
            // Errors from the block reader already name the block.
            if issue.starts_with(&prefix) {
                issues.push(issue);
            } else {
                issues.push(format!("{prefix}: {issue}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for issue in &issues {
        println!("{issue}");
    }
    if issues.is_empty() {
        println!("no issues found in {} block(s)", fetched.metas.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} issue(s) found", issues.len());
        Ok(ExitCode::from(1))
    }
}
