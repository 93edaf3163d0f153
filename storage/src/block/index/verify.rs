//! Whole-index consistency checks for a `verify` tool.

use super::reader::IndexReader;
use super::{ChunkMeta, SERIES_ALIGN};
use crate::block::error::BlockError;
use crate::labels::Labels;
use std::collections::BTreeMap;

impl IndexReader {
    /// Checks the whole index and lists every problem found, in file order: symbols sorted and
    /// unique, postings offset table sorted with the all-series list, series entries decodable,
    /// sorted by labels, chunk metas ordered and non-overlapping with non-decreasing refs, and
    /// every postings list equal to what the series say. Returns `Err` only when the file
    /// cannot be read at all (I/O); corruption is reported as an issue.
    pub async fn verify(&self) -> Result<Vec<String>, BlockError> {
        let mut issues = self.verify_layout().await?;
        self.verify_tables(&mut issues);
        let walked = self.walk_series(&mut issues).await?;

        let mut expected: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
        for (r, labels) in &walked {
            for l in labels {
                expected.entry((&l.name, &l.value)).or_default().push(*r);
            }
        }
        let refs: Vec<u32> = walked.iter().map(|(r, _)| *r).collect();
        match self.all_postings().await {
            Ok(all) if all != refs => issues.push(format!(
                "all-series postings list has {} refs, the series section {}",
                all.len(),
                refs.len()
            )),
            Ok(_) => {}
            Err(e) => issues.push(as_issue(e)?),
        }
        for (name, values) in &self.postings {
            if name.is_empty() {
                continue;
            }
            for v in values {
                match self.read_postings_at(v.offset).await {
                    Ok(list) => {
                        let want = expected.remove(&(name.as_str(), v.value.as_str()));
                        if want.as_deref().unwrap_or_default() != list {
                            issues.push(format!(
                                "postings {name}={:?}: {} refs, the series say {}",
                                v.value,
                                list.len(),
                                want.map_or(0, |w| w.len())
                            ));
                        }
                    }
                    Err(e) => issues.push(as_issue(e)?),
                }
            }
        }
        for ((name, value), refs) in expected {
            issues.push(format!(
                "no postings list for {name}={value:?} ({} series)",
                refs.len()
            ));
        }
        Ok(issues)
    }

    fn verify_tables(&self, issues: &mut Vec<String>) {
        for (i, w) in self.symbols().windows(2).enumerate() {
            if w[0] >= w[1] {
                issues.push(format!(
                    "symbols {} and {} are not strictly ascending: {:?}, {:?}",
                    i,
                    i + 1,
                    w[0],
                    w[1]
                ));
            }
        }
        match self.table_order.first() {
            Some((n, v, _)) if n.is_empty() && v.is_empty() => {}
            _ => issues.push("postings offset table does not start with the all-series key".into()),
        }
        for w in self.table_order.windows(2) {
            if (&w[0].0, &w[0].1) >= (&w[1].0, &w[1].1) {
                issues.push(format!(
                    "postings offset table not sorted: {}={:?} before {}={:?}",
                    w[0].0, w[0].1, w[1].0, w[1].1
                ));
            }
        }
    }

    /// Walks the series section entry by entry; returns each ref with its labels.
    async fn walk_series(
        &self,
        issues: &mut Vec<String>,
    ) -> Result<Vec<(u32, Labels)>, BlockError> {
        let (mut off, end) = self.series_section();
        let mut out: Vec<(u32, Labels)> = Vec::new();
        let mut last_ref: Option<u64> = None;
        while off < end {
            let (labels, chunks, next) = match self.series_at(off).await {
                Ok(x) => x,
                Err(e) => {
                    issues.push(as_issue(e)?);
                    break;
                }
            };
            if labels.is_empty() {
                issues.push(format!("series at offset {off} has no labels"));
            }
            if let Some((_, prev)) = out.last() {
                if &labels <= prev {
                    issues.push(format!(
                        "series at offset {off} {labels} is not after {prev}"
                    ));
                }
            }
            check_chunks(off, &labels, &chunks, &mut last_ref, issues);
            let Ok(series_ref) = u32::try_from(off / SERIES_ALIGN) else {
                issues.push(format!(
                    "series at offset {off} is beyond 32-bit series refs"
                ));
                break;
            };
            out.push((series_ref, labels));
            off = next.next_multiple_of(SERIES_ALIGN);
        }
        Ok(out)
    }
}

fn check_chunks(
    off: u64,
    labels: &Labels,
    chunks: &[ChunkMeta],
    last_ref: &mut Option<u64>,
    issues: &mut Vec<String>,
) {
    let mut prev: Option<&ChunkMeta> = None;
    for (i, c) in chunks.iter().enumerate() {
        if c.min_time > c.max_time {
            issues.push(format!(
                "series at offset {off} {labels}: chunk {i} has mint {} > maxt {}",
                c.min_time, c.max_time
            ));
        }
        if let Some(p) = prev {
            if c.min_time <= p.max_time {
                issues.push(format!(
                    "series at offset {off} {labels}: chunk {i} [{}, {}] overlaps or precedes [{}, {}]",
                    c.min_time, c.max_time, p.min_time, p.max_time
                ));
            }
        }
        if last_ref.is_some_and(|r| c.chunk_ref < r) {
            issues.push(format!(
                "series at offset {off} {labels}: chunk {i} ref {} below previous {last_ref:?}",
                c.chunk_ref
            ));
        }
        *last_ref = Some(c.chunk_ref);
        prev = Some(c);
    }
}

/// Corruption becomes an issue line; anything else (I/O) aborts the verification.
fn as_issue(e: BlockError) -> Result<String, BlockError> {
    match e {
        BlockError::Corrupt { .. } => Ok(e.to_string()),
        other => Err(other),
    }
}
