//! The embedded querier reading at a coarser resolution than raw: the blocks chosen as the store
//! gateway chooses them (`crate::store::resolution`), their chunks read as the store reads them
//! (`crate::store::select::load_chunks`: raw chunks with tombstones applied, aggregate chunks
//! carrying what the function needs), and decoded as the querier decodes a store's answer
//! (`crate::store::convert::decode_chunks_as`). One code path from block to samples, so the
//! embedded and the StoreAPI querier give the same answers.

use super::blocks::{storage_error, LoadedBlock};
use crate::store::convert::{aggregates_from_pb, decode_chunks_as, AggrRead};
use crate::store::select::{load_chunks, Selected, SourceChunk};
use promql::{QueryError, SampleBudget, SeriesData};
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// Series whose chunks are read and decoded together: bounds what one read holds in memory
/// before the budget is charged.
const SERIES_PER_READ: usize = 256;

/// The series of `blocks` the matchers select over `[mint, maxt]`, each series' chunks from all
/// its blocks decoded together as `read` wants them (the counter aggregate with resets applied
/// across blocks), sorted by labels, charged to `budget` as they are decoded.
pub(super) async fn select(
    blocks: &[Arc<LoadedBlock>],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    budget: &SampleBudget,
    read: AggrRead,
) -> Result<Vec<SeriesData>, QueryError> {
    let selected = select_series(blocks, matchers, mint, maxt).await?;
    let aggrs = aggregates_from_pb(&read.to_pb()).map_err(storage_error)?;
    let mut out = Vec::with_capacity(selected.len());
    for group in selected.chunks(SERIES_PER_READ) {
        let chunks = load_chunks(group, &aggrs).await.map_err(storage_error)?;
        for ((labels, _), chunks) in group.iter().zip(chunks) {
            let samples = decode_chunks_as(&chunks, mint, maxt, read)
                .map_err(|e| QueryError::Storage(format!("decoding series {}: {e}", **labels)))?;
            budget.charge(samples.len())?;
            if !samples.is_empty() {
                out.push(SeriesData {
                    labels: Labels::clone(labels),
                    samples,
                });
            }
        }
    }
    Ok(out)
}

/// The selected series of `blocks` with their chunks in the range, sorted by labels (external
/// labels applied); a series of several blocks appears once with the chunks of all.
async fn select_series(
    blocks: &[Arc<LoadedBlock>],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<Selected>, QueryError> {
    let per_block = futures::future::join_all(blocks.iter().map(|b| async move {
        let Some(refs) = b.postings(matchers).await? else {
            return Ok(Vec::new());
        };
        let entries = b.block.index().series_many(&refs).await?;
        Ok::<_, storage::block::BlockError>(refs.into_iter().zip(entries).collect::<Vec<_>>())
    }))
    .await;
    let mut by_labels: BTreeMap<Labels, Vec<SourceChunk>> = BTreeMap::new();
    for (b, found) in blocks.iter().zip(per_block) {
        for (series_ref, (labels, metas)) in found.map_err(storage_error)? {
            let chunks: Vec<SourceChunk> = metas
                .into_iter()
                .filter(|m| m.max_time >= mint && m.min_time <= maxt)
                .map(|m| SourceChunk::new(b.block.clone(), series_ref, m))
                .collect();
            if !chunks.is_empty() {
                by_labels
                    .entry(b.with_external(labels))
                    .or_default()
                    .extend(chunks);
            }
        }
    }
    Ok(by_labels
        .into_iter()
        .map(|(labels, chunks)| (labels.into(), chunks))
        .collect())
}
