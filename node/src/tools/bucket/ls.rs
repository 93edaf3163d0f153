//! `strata tools bucket ls`.

use super::Output;
use crate::flags::ObjstoreFlags;
use crate::format::{go_duration_ms, time_ms};
use std::process::ExitCode;
use storage::block::BlockMeta;

/// Lists the bucket's blocks: a line each, or each meta.json as one JSON line with `-o json`.
pub async fn run(objstore: &ObjstoreFlags, output: Output) -> anyhow::Result<ExitCode> {
    let bucket = objstore.open_existing()?;
    let fetched = storage::bucket::blocks::fetch_metas(bucket.as_ref()).await?;
    for (id, err) in &fetched.corrupt {
        tracing::warn!(block = %id, "skipping block with unreadable meta.json: {err}");
    }
    for meta in fetched.metas.values() {
        match output {
            Output::Text => println!("{}", line(meta)),
            Output::Json => println!("{}", serde_json::to_string(meta)?),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(meta: &BlockMeta) -> String {
    format!(
        "{} -- {} - {} Diff: {}, Compaction: {}, Downsample: {}, Source: {}",
        meta.ulid,
        time_ms(meta.min_time),
        time_ms(meta.max_time),
        go_duration_ms(meta.max_time.saturating_sub(meta.min_time)),
        meta.compaction.level,
        meta.resolution(),
        meta.thanos
            .as_ref()
            .map(|t| t.source.as_str())
            .unwrap_or("")
    )
}
