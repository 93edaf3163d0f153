//! `strata tools bucket inspect`: a table of every block, like Thanos'.

use super::Output;
use crate::flags::ObjstoreFlags;
use crate::format::{comma, go_duration_ms, table, time_ms};
use serde::Serialize;
use std::process::ExitCode;
use storage::block::BlockMeta;

const HEADER: [&str; 12] = [
    "ULID",
    "FROM",
    "UNTIL",
    "RANGE",
    "#SERIES",
    "#SAMPLES",
    "#CHUNKS",
    "COMP-LEVEL",
    "COMP-FAILED",
    "LABELS",
    "RESOLUTION",
    "SOURCE",
];

/// One block as `inspect -o json` prints it.
#[derive(Debug, Serialize)]
struct Row {
    ulid: String,
    min_time: i64,
    max_time: i64,
    range_ms: i64,
    series: u64,
    samples: u64,
    chunks: u64,
    level: u32,
    compaction_failed: bool,
    labels: std::collections::BTreeMap<String, String>,
    resolution_ms: i64,
    source: String,
}

impl Row {
    fn from_meta(m: &BlockMeta) -> Self {
        Row {
            ulid: m.ulid.to_string(),
            min_time: m.min_time,
            max_time: m.max_time,
            range_ms: m.max_time.saturating_sub(m.min_time),
            series: m.stats.num_series,
            samples: m.stats.num_samples,
            chunks: m.stats.num_chunks,
            level: m.compaction.level,
            compaction_failed: m.compaction.failed,
            labels: m.external_labels(),
            resolution_ms: m.resolution(),
            source: m
                .thanos
                .as_ref()
                .map(|t| t.source.clone())
                .unwrap_or_default(),
        }
    }

    fn cells(&self) -> Vec<String> {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        vec![
            self.ulid.clone(),
            time_ms(self.min_time),
            time_ms(self.max_time),
            go_duration_ms(self.range_ms),
            comma(self.series),
            comma(self.samples),
            comma(self.chunks),
            self.level.to_string(),
            self.compaction_failed.to_string(),
            labels.join(","),
            go_duration_ms(self.resolution_ms),
            self.source.clone(),
        ]
    }
}

/// Prints every block's metadata, sorted by labels then time.
pub async fn run(objstore: &ObjstoreFlags, output: Output) -> anyhow::Result<ExitCode> {
    let bucket = objstore.open_existing()?;
    let fetched = storage::bucket::blocks::fetch_metas(bucket.as_ref()).await?;
    for (id, err) in &fetched.corrupt {
        tracing::warn!(block = %id, "skipping block with unreadable meta.json: {err}");
    }
    let mut rows: Vec<Row> = fetched.metas.values().map(Row::from_meta).collect();
    rows.sort_by(|a, b| (&a.labels, a.min_time, &a.ulid).cmp(&(&b.labels, b.min_time, &b.ulid)));
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Text => {
            let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
            print!("{}", table(&HEADER, &cells));
        }
    }
    Ok(ExitCode::SUCCESS)
}
