//! Finding what a StoreAPI request asks for in the store's blocks: the matching series (labels
//! with external labels applied, sorted, merged across blocks) and their chunks, read exactly as
//! stored; then cut into frames under the size limit.

use super::catalog::StoreBlock;
use super::convert::{aggr_chunk_to_pb, chunk_to_pb, labels_to_pb, trim_deleted};
use crate::query::merge::{match_external, ExternalMatch};
use prost::Message as _;
use proto::thanos::{AggrChunk, Series};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use storage::block::index::{ChunkMeta, SeriesEntry};
use storage::block::{Block, BlockError, FileLocation};
use storage::downsample::AggrType;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// One chunk of a selected series, and where it is stored (the block held open until read).
#[derive(Debug, Clone)]
pub struct SourceChunk {
    block: Arc<Block>,
    series_ref: u32,
    meta: ChunkMeta,
}

impl SourceChunk {
    /// Chunk `meta` of series `series_ref` in `block`, for readers that select series
    /// themselves (the embedded querier) and then read chunks as the store does.
    pub fn new(block: Arc<Block>, series_ref: u32, meta: ChunkMeta) -> Self {
        SourceChunk {
            block,
            series_ref,
            meta,
        }
    }

    /// The block holding the chunk and its reference there.
    pub fn stored_at(&self) -> (&Arc<Block>, u64) {
        (&self.block, self.meta.chunk_ref)
    }
}

/// A selected series: labels as served (external labels applied) and its chunks from every
/// block, in block order.
pub type Selected = (ServedLabels, Vec<SourceChunk>);

/// A selected series' labels as served: the index cache's entry itself when the block adds no
/// external labels (no copy of its strings per request), else a merged copy.
#[derive(Debug, Clone)]
pub enum ServedLabels {
    /// The labels of a shared series entry, as stored.
    Entry(Arc<SeriesEntry>),
    /// Labels of their own.
    Own(Labels),
}

impl std::ops::Deref for ServedLabels {
    type Target = Labels;

    fn deref(&self) -> &Labels {
        match self {
            ServedLabels::Entry(e) => &e.0,
            ServedLabels::Own(l) => l,
        }
    }
}

impl From<Labels> for ServedLabels {
    fn from(labels: Labels) -> Self {
        ServedLabels::Own(labels)
    }
}

impl PartialEq for ServedLabels {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ServedLabels {}

impl PartialOrd for ServedLabels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ServedLabels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

/// Series refs of `block` the matchers select, with the block open, or `None` when its
/// external labels rule it out (then it is not even opened).
async fn postings(
    block: &StoreBlock,
    matchers: &[Matcher],
) -> Result<Option<(Arc<Block>, Vec<u32>)>, BlockError> {
    let remaining = match match_external(&block.external, matchers) {
        ExternalMatch::Excluded => return Ok(None),
        ExternalMatch::Remaining(r) => r,
    };
    let opened = block.open().await?;
    let index = opened.index();
    let refs = if remaining.is_empty() {
        index.all_postings().await?
    } else {
        index.postings_for_matchers(&remaining).await?
    };
    Ok(Some((opened, refs)))
}

fn served_labels(block: &StoreBlock, entry: Arc<SeriesEntry>) -> ServedLabels {
    if block.external.is_empty() {
        ServedLabels::Entry(entry)
    } else {
        ServedLabels::Own(entry.0.merged(&block.external))
    }
}

/// The selected series refs of one block with their labels and chunk metas (one range read
/// per run of neighbouring index entries).
/// Blocks one request reads at once: enough that index reads over a remote bucket overlap, few
/// enough that a request over thousands of blocks does not send thousands of requests to the
/// bucket at the same moment (s3s-fs answered 500s and then failed the request at 10,000).
const BLOCK_CONCURRENCY: usize = 64;

/// [`block_series`] of every block, at most [`BLOCK_CONCURRENCY`] at a time, in block order.
async fn per_block(
    blocks: &[Arc<StoreBlock>],
    matchers: &[Matcher],
) -> Result<Vec<Option<(Arc<Block>, Vec<(u32, Arc<SeriesEntry>)>)>>, BlockError> {
    use futures::{StreamExt as _, TryStreamExt as _};
    // The futures are made first: a lazy `map` in the stream trips the compiler's `Send`
    // inference for the async trait methods that call this.
    let reads: Vec<_> = blocks.iter().map(|b| block_series(b, matchers)).collect();
    futures::stream::iter(reads)
        .buffered(BLOCK_CONCURRENCY)
        .try_collect()
        .await
}

async fn block_series(
    block: &StoreBlock,
    matchers: &[Matcher],
) -> Result<Option<(Arc<Block>, Vec<(u32, Arc<SeriesEntry>)>)>, BlockError> {
    let Some((opened, refs)) = postings(block, matchers).await? else {
        return Ok(None);
    };
    let entries = opened.index().series_many_shared(&refs).await?;
    Ok(Some((opened, refs.into_iter().zip(entries).collect())))
}

/// The series of `blocks` the matchers select with a chunk in `[mint, maxt]`, sorted by labels;
/// a series stored in several blocks appears once with all its chunks.
pub async fn select_series(
    blocks: &[Arc<StoreBlock>],
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> Result<Vec<Selected>, BlockError> {
    // Blocks concurrently (bounded): over a remote bucket their index reads overlap.
    let per_block = per_block(blocks, matchers).await?;
    // Each block's series in postings order, which is label order unless external labels
    // reorder them.
    let mut lists: Vec<Vec<Selected>> = Vec::new();
    for (b, found) in blocks.iter().zip(per_block) {
        let Some((opened, found)) = found else {
            continue;
        };
        let mut list = Vec::with_capacity(found.len());
        for (r, entry) in found {
            let chunks: Vec<SourceChunk> = entry
                .1
                .iter()
                .filter(|m| m.max_time >= mint && m.min_time <= maxt)
                .map(|&meta| SourceChunk {
                    block: opened.clone(),
                    series_ref: r,
                    meta,
                })
                .collect();
            if !chunks.is_empty() {
                list.push((served_labels(b, entry), chunks));
            }
        }
        if !list.is_empty() {
            lists.push(list);
        }
    }
    if lists.len() <= 1 {
        // One block (an instant query, a short range): no merge when its order is right.
        let only = lists.pop().unwrap_or_default();
        if only.windows(2).all(|w| w[0].0 < w[1].0) {
            return Ok(only);
        }
        lists.push(only);
    }
    let mut by_labels: BTreeMap<ServedLabels, Vec<SourceChunk>> = BTreeMap::new();
    for list in lists {
        for (labels, chunks) in list {
            by_labels.entry(labels).or_default().extend(chunks);
        }
    }
    Ok(by_labels.into_iter().collect())
}

/// Label sets (external labels applied) of the series the matchers select in `blocks`.
pub async fn matching_labels(
    blocks: &[Arc<StoreBlock>],
    matchers: &[Matcher],
) -> Result<BTreeSet<Labels>, BlockError> {
    let per_block = per_block(blocks, matchers).await?;
    let mut out = BTreeSet::new();
    for (b, found) in blocks.iter().zip(per_block) {
        for (_, entry) in found.map(|(_, f)| f).unwrap_or_default() {
            out.insert(Labels::clone(&served_labels(b, entry)));
        }
    }
    Ok(out)
}

/// Total chunks of `selected`.
pub fn chunk_count(selected: &[Selected]) -> usize {
    selected.iter().map(|(_, c)| c.len()).sum()
}

/// Reads the chunks of every series of `group` as stored, each series' sorted by min time.
/// The chunks of one block are read together (neighbours in one range read) rather than
/// series by series. Chunks with deleted samples (tombstones) are re-encoded without them;
/// Thanos ignores tombstones, Strata's embedded querier honours them, and the two modes must
/// answer alike. Chunks of downsampled blocks carry the `aggrs` aggregates instead of raw data.
pub async fn load_chunks(
    group: &[Selected],
    aggrs: &[AggrType],
) -> Result<Vec<Vec<AggrChunk>>, BlockError> {
    // Per block (a query touches a few): the (series, chunk) slots and their refs, in order.
    let mut per_block: Vec<(&Arc<Block>, Vec<&SourceChunk>, Vec<u64>)> = Vec::new();
    let mut slots: Vec<(usize, usize)> = Vec::with_capacity(chunk_count(group));
    for (si, (_, chunks)) in group.iter().enumerate() {
        for c in chunks {
            let at = match per_block
                .iter()
                .position(|(b, ..)| Arc::ptr_eq(*b, &c.block))
            {
                Some(at) => at,
                None => {
                    per_block.push((&c.block, Vec::new(), Vec::new()));
                    per_block.len() - 1
                }
            };
            slots.push((si, at));
            per_block[at].1.push(c);
            per_block[at].2.push(c.meta.chunk_ref);
        }
    }
    let mut out: Vec<Vec<AggrChunk>> = group
        .iter()
        .map(|(_, c)| Vec::with_capacity(c.len()))
        .collect();
    let mut read_of_block = Vec::with_capacity(per_block.len());
    let mut aggr_of_block = Vec::with_capacity(per_block.len());
    for (block, sources, refs) in &per_block {
        if block.meta().resolution() > 0 {
            aggr_of_block.push(Some(
                read_aggregates(block, sources, aggrs).await?.into_iter(),
            ));
            read_of_block.push(Vec::new().into_iter());
        } else {
            aggr_of_block.push(None);
            read_of_block.push(block.chunks().chunks(refs).await?.into_iter());
        }
    }
    // Slots were assigned in series order, so taking each block's chunks in turn matches them.
    let mut source_of_block: Vec<std::slice::Iter<'_, &SourceChunk>> =
        per_block.iter().map(|(_, s, _)| s.iter()).collect();
    for (si, at) in slots {
        if let Some(read) = &mut aggr_of_block[at] {
            source_of_block[at].next();
            out[si].extend(read.next());
            continue;
        }
        let (Some(chunk), Some(c)) = (read_of_block[at].next(), source_of_block[at].next()) else {
            continue;
        };
        let block = per_block[at].0;
        let deleted = block.tombstones().get(u64::from(c.series_ref));
        let overlaps_deletion = deleted.is_some_and(|d| {
            d.as_slice()
                .iter()
                .any(|iv| iv.min_time <= c.meta.max_time && iv.max_time >= c.meta.min_time)
        });
        match deleted.filter(|_| overlaps_deletion) {
            None => out[si].push(chunk_to_pb(&chunk, c.meta.min_time, c.meta.max_time)),
            Some(d) => {
                let trimmed = trim_deleted(&chunk, d).map_err(|e| {
                    FileLocation::new(block.meta().ulid.to_string(), "chunks")
                        .corrupt_at(c.meta.chunk_ref, format!("applying tombstones: {e}"))
                })?;
                if let Some((chunk, mint, maxt)) = trimmed {
                    out[si].push(chunk_to_pb(&chunk, mint, maxt));
                }
            }
        }
    }
    for chunks in &mut out {
        chunks.sort_by_key(|c| (c.min_time, c.max_time));
    }
    Ok(out)
}

/// The chunks `sources` of a downsampled block as `AggrChunk`s carrying `aggrs`; tombstones
/// are not applied to aggregates (Thanos applies none).
async fn read_aggregates(
    block: &Block,
    sources: &[&SourceChunk],
    aggrs: &[AggrType],
) -> Result<Vec<AggrChunk>, BlockError> {
    let mut out = Vec::with_capacity(sources.len());
    for c in sources {
        let at = |reason: String| {
            FileLocation::new(block.meta().ulid.to_string(), "chunks")
                .corrupt_at(c.meta.chunk_ref, reason)
        };
        let (encoding, data) = block.chunks().chunk_record(c.meta.chunk_ref).await?;
        if encoding != storage::downsample::CHUNK_ENC_AGGR {
            // Thanos' populateChunk sends a plain chunk of a downsampled block as raw data.
            let encoding = storage::chunkenc::Encoding::from_byte(encoding)
                .map_err(|e| at(format!("chunk of a downsampled block: {e}")))?;
            let chunk = storage::chunkenc::Chunk::new(encoding, data);
            out.push(chunk_to_pb(&chunk, c.meta.min_time, c.meta.max_time));
            continue;
        }
        let chunk = storage::downsample::AggrChunk::from_bytes(data);
        out.push(
            aggr_chunk_to_pb(&chunk, c.meta.min_time, c.meta.max_time, aggrs)
                .map_err(|e| at(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Cuts one series into `Series` messages of at most about `frame_bytes` each (a single chunk
/// larger than that travels alone): Thanos' contract lets a series span consecutive frames.
pub fn split_series(labels: &Labels, chunks: Vec<AggrChunk>, frame_bytes: usize) -> Vec<Series> {
    let pb_labels = labels_to_pb(labels);
    let label_bytes: usize = pb_labels.iter().map(|l| l.encoded_len() + 2).sum();
    let mut out = Vec::new();
    let mut current: Vec<AggrChunk> = Vec::new();
    let mut size = label_bytes;
    for c in chunks {
        let len = c.encoded_len() + 4;
        if !current.is_empty() && size + len > frame_bytes {
            out.push(Series {
                labels: pb_labels.clone(),
                chunks: std::mem::take(&mut current),
            });
            size = label_bytes;
        }
        size += len;
        current.push(c);
    }
    out.push(Series {
        labels: pb_labels,
        chunks: current,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::thanos::Chunk;

    fn chunk(t: i64, bytes: usize) -> AggrChunk {
        AggrChunk {
            min_time: t,
            max_time: t + 1,
            raw: Some(Chunk {
                r#type: 0,
                data: vec![0; bytes].into(),
                hash: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn large_series_span_frames_under_the_limit_in_chunk_order() {
        let labels = Labels::from_pairs([("__name__", "up")]);
        let chunks: Vec<AggrChunk> = (0..10).map(|i| chunk(i, 300)).collect();
        let frames = split_series(&labels, chunks, 1000);
        assert!(frames.len() >= 4, "{} frames", frames.len());
        for f in &frames {
            assert!(
                f.encoded_len() <= 1000,
                "frame of {} bytes",
                f.encoded_len()
            );
            assert_eq!(f.labels, labels_to_pb(&labels));
        }
        let times: Vec<i64> = frames
            .iter()
            .flat_map(|f| f.chunks.iter().map(|c| c.min_time))
            .collect();
        assert_eq!(times, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_chunk_larger_than_the_limit_travels_alone() {
        let labels = Labels::from_pairs([("a", "b")]);
        let frames = split_series(
            &labels,
            vec![chunk(0, 10), chunk(1, 5000), chunk(2, 10)],
            1000,
        );
        let sizes: Vec<usize> = frames.iter().map(|f| f.chunks.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }

    #[test]
    fn a_series_without_chunks_is_one_frame() {
        let frames = split_series(&Labels::from_pairs([("a", "b")]), Vec::new(), 1000);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].chunks.is_empty());
    }
}
