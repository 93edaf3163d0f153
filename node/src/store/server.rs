//! The `thanos.Store` and `thanos.info.Info` gRPC services over the store's blocks.
//!
//! Errors are gRPC statuses: a bad matcher or time range is `InvalidArgument`, a store whose
//! block list is not loaded yet is `Unavailable`, an unreadable block is `Internal` (naming the
//! block; details in the log).
//! Blocks the catalog skipped as unreadable are named in warnings (a `warning` Series frame,
//! the `warnings` of label answers) when the range needed them.
//!
//! Requests read only the store's time window (`--min-time`/`--max-time`); a Series request
//! over `--store.limits.request-series` or `-samples` (chunks × 120, as Thanos counts) fails
//! with `ResourceExhausted` naming the limit. Chunks are read only with bytes from the
//! store's chunk pool (`--chunk-pool-size`, `pool.rs`).
//!
//! Series with `max_resolution_window` > 0 read downsampled blocks where they are allowed
//! (`super::resolution`) and answer their chunks as the requested `aggregates`.
//!
//! Unfinished: hints (queried blocks, query stats), `without_replica_labels`, sharding
//! (`shard_info`), chunk hashes (always 0), a concurrency
//! limit, and per-request metrics.

use super::catalog::{Catalog, StoreBlock};
use super::convert::{aggregates_from_pb, labels_to_pb, matchers_from_pb};
use super::pool::{ChunkPool, Holding, DEFAULT_CHUNK_POOL_BYTES};
use super::select::{
    chunk_count, load_chunks, matching_labels, select_series, split_series, Selected,
};
use proto::thanos::info::info_server::{Info, InfoServer};
use proto::thanos::info::{self as infopb};
use proto::thanos::store_server::{Store, StoreServer};
use proto::thanos::{self as pb, series_response, SeriesBatch, SeriesResponse};
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::downsample::AggrType;
use storage::matcher::Matcher;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Target size of one Series frame: a quarter of gRPC's default 4 MiB receive limit, so that
/// any client (a Thanos querier too) accepts every frame.
pub const DEFAULT_FRAME_BYTES: usize = 1 << 20;

/// Largest request the services accept (matchers and label lists are small).
pub(crate) const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Frames buffered ahead of a slow client. Enough that gRPC usually finds several ready and
/// writes them together rather than one write (and one wake-up) per frame.
const STREAM_BUFFER: usize = 32;

/// Answers of at most this many chunks (about 120 samples each) are read before the stream
/// starts and sent without a task of their own; larger ones stream a group at a time.
const INLINE_CHUNKS: usize = 8192;

/// Chunks read together per group when streaming (neighbours in one range read each).
const GROUP_CHUNKS: usize = 2048;

/// Answers of at least twice this many chunks (and at most [`INLINE_CHUNKS`]) are read and
/// framed in parts of at least this many chunks by concurrent tasks.
const PART_CHUNKS: usize = 512;

/// Most parts an answer is framed in (a few per core: the first goes out early).
const MAX_PARTS: usize = 4;

/// Thanos' assumption for the samples limit: a chunk holds at most 120 samples.
pub const MAX_SAMPLES_PER_CHUNK: u64 = 120;

/// Per-request limits of Series (`--store.limits.request-series`, `-samples`); 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Most series per request.
    pub series: u64,
    /// Most samples per request, counted as [`MAX_SAMPLES_PER_CHUNK`] per chunk.
    pub samples: u64,
}

impl SeriesLimits {
    /// Refuses a selection over a limit, naming it (Thanos' wording).
    fn check(&self, selected: &[Selected], skip_chunks: bool) -> Result<(), Status> {
        let series = selected.len() as u64;
        if self.series > 0 && series > self.series {
            return Err(Status::resource_exhausted(format!(
                "exceeded series limit: limit {} violated (got {series})",
                self.series
            )));
        }
        if self.samples > 0 && !skip_chunks {
            let chunks: u64 = selected.iter().map(|(_, c)| c.len() as u64).sum();
            let samples = chunks.saturating_mul(MAX_SAMPLES_PER_CHUNK);
            if samples > self.samples {
                return Err(Status::resource_exhausted(format!(
                    "exceeded samples limit: limit {} violated (got {samples}: {chunks} chunks at up to {MAX_SAMPLES_PER_CHUNK} samples each)",
                    self.samples
                )));
            }
        }
        Ok(())
    }
}

/// The StoreAPI over a [`Catalog`].
#[derive(Debug, Clone)]
pub struct StoreService {
    catalog: Arc<Catalog>,
    frame_bytes: usize,
    limits: SeriesLimits,
    /// Answers of at most this many chunks are framed before the stream starts.
    inline_chunks: usize,
    /// Chunks read together per group when streaming.
    group_chunks: usize,
    /// Least chunks per part when an answer is framed in parts.
    part_chunks: usize,
    /// Bytes of chunks all requests may hold at once (`--chunk-pool-size`).
    pool: ChunkPool,
}

impl StoreService {
    /// The service over `catalog`, with frames of at most about `frame_bytes`.
    pub fn new(catalog: Arc<Catalog>, frame_bytes: usize) -> Self {
        StoreService {
            catalog,
            frame_bytes: frame_bytes.max(1),
            limits: SeriesLimits::default(),
            inline_chunks: INLINE_CHUNKS,
            group_chunks: GROUP_CHUNKS,
            part_chunks: PART_CHUNKS,
            pool: ChunkPool::new(DEFAULT_CHUNK_POOL_BYTES),
        }
    }

    /// The same service framing answers over `inline_chunks` chunks while streaming, reading
    /// `group_chunks` chunks at a time (tests use small sizes to exercise the streaming path).
    #[cfg(test)]
    fn with_streaming(mut self, inline_chunks: usize, group_chunks: usize) -> Self {
        self.inline_chunks = inline_chunks;
        self.group_chunks = group_chunks.max(1);
        self
    }

    /// The same service framing answers of at least twice `part_chunks` chunks in parts (tests
    /// use small sizes to exercise that path).
    #[cfg(test)]
    fn with_parts(mut self, part_chunks: usize) -> Self {
        self.part_chunks = part_chunks.max(1);
        self
    }

    /// The same service reading chunks only with bytes from `pool`.
    pub fn with_chunk_pool(mut self, pool: ChunkPool) -> Self {
        self.pool = pool;
        self
    }

    /// The same service with per-request limits.
    pub fn with_limits(mut self, limits: SeriesLimits) -> Self {
        self.limits = limits;
        self
    }

    /// `thanos.Store`, ready for the gRPC server.
    pub fn store_server(&self) -> StoreServer<Self> {
        StoreServer::new(self.clone())
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(usize::MAX)
    }

    /// `thanos.info.Info`, ready for the gRPC server.
    pub fn info_server(&self) -> InfoServer<Self> {
        InfoServer::new(self.clone()).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    fn require_ready(&self) -> Result<(), Status> {
        if self.catalog.is_ready() {
            Ok(())
        } else {
            Err(Status::unavailable(
                "store is not ready: its blocks are not loaded from the bucket yet",
            ))
        }
    }

    /// A label request's range narrowed to the time window (an empty range when it misses it).
    fn label_range(&self, start: i64, end: i64) -> Result<(i64, i64), Status> {
        let (mint, maxt) = label_range(start, end)?;
        Ok(self.catalog.window().clamp(mint, maxt).unwrap_or((1, 0)))
    }

    /// The blocks of `[mint, maxt]`, opened (waiting for those not opened yet, so that no
    /// answer silently lacks one; those that fail are skipped and named in warnings).
    async fn blocks(&self, mint: i64, maxt: i64) -> Result<Vec<Arc<StoreBlock>>, Status> {
        self.require_ready()?;
        if mint > maxt {
            // Outside the time window.
            return Ok(Vec::new());
        }
        Ok(self.catalog.overlapping(mint, maxt).await)
    }

    /// The blocks a Series request reads: [`StoreService::blocks`] at `max_resolution`.
    async fn series_blocks(
        &self,
        mint: i64,
        maxt: i64,
        max_resolution: i64,
    ) -> Result<Vec<Arc<StoreBlock>>, Status> {
        self.require_ready()?;
        if mint > maxt {
            return Ok(Vec::new());
        }
        Ok(self
            .catalog
            .for_resolution(mint, maxt, max_resolution)
            .await)
    }
}

fn parse_matchers(ms: &[pb::LabelMatcher]) -> Result<Vec<Matcher>, Status> {
    matchers_from_pb(ms).map_err(|e| Status::invalid_argument(format!("bad matcher: {e}")))
}

fn internal(e: storage::block::BlockError) -> Status {
    tracing::warn!(error = %e, "StoreAPI request failed reading a block");
    Status::internal(format!("reading blocks: {e}"))
}

/// `start`/`end` of label requests; both zero (unset) means the whole time range.
fn label_range(start: i64, end: i64) -> Result<(i64, i64), Status> {
    if start == 0 && end == 0 {
        return Ok((i64::MIN, i64::MAX));
    }
    if start > end {
        return Err(Status::invalid_argument(format!(
            "start {start} is after end {end}"
        )));
    }
    Ok((start, end))
}

fn truncate<T>(mut v: Vec<T>, limit: i64) -> Vec<T> {
    if let Ok(n) = usize::try_from(limit) {
        if n > 0 {
            v.truncate(n);
        }
    }
    v
}

/// How the selected series become frames.
#[derive(Clone)]
struct Framing {
    skip_chunks: bool,
    /// The aggregates sent of downsampled chunks.
    aggrs: Vec<AggrType>,
    frame_bytes: usize,
    /// Series per `SeriesBatch` frame; 0 sends one `Series` per frame.
    batch: usize,
}

/// Frames of a Series answer, built in order: series alone, or gathered into batches.
struct Frames {
    framing: Framing,
    batch: Vec<pb::Series>,
    batch_bytes: usize,
    out: Vec<SeriesResponse>,
}

impl Frames {
    fn new(framing: Framing) -> Self {
        Frames {
            framing,
            batch: Vec::new(),
            batch_bytes: 0,
            out: Vec::new(),
        }
    }

    fn push(&mut self, s: pb::Series) {
        if self.framing.batch == 0 {
            self.out.push(frame(series_response::Result::Series(s)));
            return;
        }
        use prost::Message as _;
        let len = s.encoded_len();
        if !self.batch.is_empty()
            && (self.batch.len() >= self.framing.batch
                || self.batch_bytes + len > self.framing.frame_bytes)
        {
            self.flush_batch();
        }
        self.batch_bytes += len;
        self.batch.push(s);
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            let full = SeriesBatch {
                series: std::mem::take(&mut self.batch),
            };
            self.batch_bytes = 0;
            self.out.push(frame(series_response::Result::Batch(full)));
        }
    }

    /// The frames complete so far (a batch still filling stays).
    fn take(&mut self) -> Vec<SeriesResponse> {
        std::mem::take(&mut self.out)
    }

    /// Every frame, the last batch included.
    fn finish(mut self) -> Vec<SeriesResponse> {
        self.flush_batch();
        self.out
    }
}

fn frame(r: series_response::Result) -> SeriesResponse {
    SeriesResponse { result: Some(r) }
}

/// Adds the frames of `group` (chunks read together) to `frames`.
async fn frame_group(
    group: &[Selected],
    frames: &mut Frames,
) -> Result<(), storage::block::BlockError> {
    if frames.framing.skip_chunks {
        for (labels, _) in group {
            frames.push(pb::Series {
                labels: labels_to_pb(labels),
                chunks: Vec::new(),
            });
        }
        return Ok(());
    }
    let chunks = load_chunks(group, &frames.framing.aggrs).await?;
    for ((labels, _), c) in group.iter().zip(chunks) {
        for s in split_series(labels, c, frames.framing.frame_bytes) {
            frames.push(s);
        }
    }
    Ok(())
}

/// Consecutive groups of `selected` of at most `size` chunks each (a series with more travels
/// alone).
fn groups(selected: &[Selected], size: usize) -> impl Iterator<Item = &[Selected]> {
    let mut rest = selected;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut chunks = 0;
        let mut n = 0;
        while n < rest.len() && (n == 0 || chunks + rest[n].1.len() <= size) {
            chunks += rest[n].1.len();
            n += 1;
        }
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some(group)
    })
}

/// How many parts an answer of `chunks` chunks is framed in: parts of at least
/// `part_chunks`, at most [`MAX_PARTS`].
fn parts_of(chunks: usize, part_chunks: usize) -> usize {
    (chunks / part_chunks.max(1)).clamp(1, MAX_PARTS)
}

/// `selected` cut into `parts` consecutive runs of about equal chunk counts.
fn split_parts(mut selected: Vec<Selected>, parts: usize) -> Vec<Vec<Selected>> {
    let per = chunk_count(&selected).div_ceil(parts.max(1)).max(1);
    let mut out = Vec::with_capacity(parts);
    while !selected.is_empty() {
        let mut n = 0;
        let mut chunks = 0;
        while n < selected.len() && (n == 0 || chunks < per) {
            chunks += selected[n].1.len();
            n += 1;
        }
        let rest = selected.split_off(n);
        out.push(std::mem::replace(&mut selected, rest));
    }
    out
}

/// The frames of `selected`, its parts read and framed by concurrent tasks and sent in order.
/// A failed part ends the stream with its error.
fn framed_in_parts(
    selected: Vec<Selected>,
    framing: Framing,
    parts: usize,
) -> impl tokio_stream::Stream<Item = Result<SeriesResponse, Status>> + Send + 'static {
    let tasks: Vec<PartTask> = split_parts(selected, parts)
        .into_iter()
        .map(|part| {
            let framing = framing.clone();
            PartTask(tokio::spawn(async move {
                let mut frames = Frames::new(framing);
                frame_group(&part, &mut frames).await?;
                Ok::<_, storage::block::BlockError>(frames.finish())
            }))
        })
        .collect();
    use futures::StreamExt as _;
    futures::stream::iter(tasks)
        .then(|mut t| async move {
            let frames: Vec<Result<SeriesResponse, Status>> = match (&mut t.0).await {
                Ok(Ok(frames)) => frames.into_iter().map(Ok).collect(),
                Ok(Err(e)) => vec![Err(internal(e))],
                Err(e) => vec![Err(Status::internal(format!("reading a part failed: {e}")))],
            };
            futures::stream::iter(frames)
        })
        .flatten()
}

/// A part's task, stopped if the answer is dropped (the client went away).
struct PartTask(tokio::task::JoinHandle<Result<Vec<SeriesResponse>, storage::block::BlockError>>);

impl Drop for PartTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `selected` on `tx` in order, reading chunks a group at a time; stops at the first
/// error (sent as the stream's status) or when the client goes away.
async fn stream_series(
    selected: Vec<Selected>,
    framing: Framing,
    group_chunks: usize,
    pool: ChunkPool,
    tx: mpsc::Sender<Result<SeriesResponse, Status>>,
) {
    let mut frames = Frames::new(framing);
    for group in groups(&selected, group_chunks) {
        let held = match pool.take(group).await {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if let Err(e) = frame_group(group, &mut frames).await {
            let _ = tx.send(Err(internal(e))).await;
            return;
        }
        for f in frames.take() {
            if tx.send(Ok(f)).await.is_err() {
                return;
            }
        }
        drop(held);
    }
    for f in frames.finish() {
        if tx.send(Ok(f)).await.is_err() {
            return;
        }
    }
}

#[tonic::async_trait]
impl Store for StoreService {
    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        self.require_ready()?;
        let c = self.catalog.coverage();
        Ok(Response::new(pb::InfoResponse {
            labels: Vec::new(),
            min_time: c.min_time,
            max_time: c.max_time,
            store_type: pb::StoreType::Store as i32,
            label_sets: c
                .label_sets
                .iter()
                .map(|l| pb::LabelSet {
                    labels: labels_to_pb(l),
                })
                .collect(),
        }))
    }

    type SeriesStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<SeriesResponse, Status>> + Send>>;

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let r = request.into_inner();
        let matchers = parse_matchers(&r.matchers)?;
        if r.min_time > r.max_time {
            return Err(Status::invalid_argument(format!(
                "min_time {} is after max_time {}",
                r.min_time, r.max_time
            )));
        }
        let (mint, maxt) = self
            .catalog
            .window()
            .clamp(r.min_time, r.max_time)
            .unwrap_or((1, 0));
        if r.max_resolution_window < 0 {
            return Err(Status::invalid_argument(format!(
                "max_resolution_window {} is negative",
                r.max_resolution_window
            )));
        }
        let aggrs = aggregates_from_pb(&r.aggregates)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let blocks = self
            .series_blocks(mint, maxt, r.max_resolution_window)
            .await?;
        let selected = select_series(&blocks, &matchers, mint, maxt)
            .await
            .map_err(internal)?;
        let selected = truncate(selected, r.limit);
        self.limits.check(&selected, r.skip_chunks)?;
        tracing::debug!(
            series = selected.len(),
            blocks = blocks.len(),
            "StoreAPI Series"
        );
        let framing = Framing {
            skip_chunks: r.skip_chunks,
            aggrs,
            frame_bytes: self.frame_bytes,
            batch: usize::try_from(r.response_batch_size).unwrap_or(0),
        };
        // Warnings first (Thanos sends them as they arise): a skipped block the range needed.
        let warnings: Vec<SeriesResponse> = self
            .catalog
            .skip_warnings(mint, maxt)
            .into_iter()
            .map(|w| frame(series_response::Result::Warning(w)))
            .collect();
        let chunks = chunk_count(&selected);
        if !framing.skip_chunks && chunks >= 2 * self.part_chunks && chunks <= self.inline_chunks {
            // A middling answer is read and framed in parts by concurrent tasks (both cores),
            // and each part goes out as soon as it and those before it are ready, so that the
            // querier decodes the first while the store still reads the last.
            // The whole answer's chunk bytes are held from the pool while it is sent.
            use futures::StreamExt as _;
            let held = self.pool.take(&selected).await?;
            let stream = framed_in_parts(selected, framing, parts_of(chunks, self.part_chunks));
            let stream = Box::pin(tokio_stream::iter(warnings.into_iter().map(Ok)).chain(stream));
            let stream: Self::SeriesStream = Box::pin(Holding::new(stream, held));
            return Ok(Response::new(stream));
        }
        if framing.skip_chunks || chunks <= self.inline_chunks {
            // A small answer is read and framed right here and handed over whole: no task, no
            // hand-off per frame, and gRPC writes it in a few large writes.
            let held = if framing.skip_chunks {
                None
            } else {
                Some(self.pool.take(&selected).await?)
            };
            let mut frames = Frames::new(framing);
            frame_group(&selected, &mut frames)
                .await
                .map_err(internal)?;
            let all: Vec<Result<SeriesResponse, Status>> = warnings
                .into_iter()
                .chain(frames.finish())
                .map(Ok)
                .collect();
            let stream: Self::SeriesStream = match held {
                Some(held) => Box::pin(Holding::new(tokio_stream::iter(all), held)),
                None => Box::pin(tokio_stream::iter(all)),
            };
            return Ok(Response::new(stream));
        }
        self.pool.check(groups(&selected, self.group_chunks))?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let group_chunks = self.group_chunks;
        let pool = self.pool.clone();
        tokio::spawn(async move {
            for w in warnings {
                if tx.send(Ok(w)).await.is_err() {
                    return;
                }
            }
            stream_series(selected, framing, group_chunks, pool, tx).await
        });
        let stream: Self::SeriesStream = Box::pin(ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let r = request.into_inner();
        let matchers = parse_matchers(&r.matchers)?;
        let (mint, maxt) = self.label_range(r.start, r.end)?;
        let blocks = self.blocks(mint, maxt).await?;
        let mut names: BTreeSet<String> = BTreeSet::new();
        if matchers.is_empty() {
            for b in &blocks {
                let opened = b.open().await.map_err(internal)?;
                names.extend(opened.index().label_names().into_iter().map(String::from));
                names.extend(b.external.iter().map(|l| l.name.clone()));
            }
        } else {
            for labels in matching_labels(&blocks, &matchers)
                .await
                .map_err(internal)?
            {
                names.extend(labels.iter().map(|l| l.name.clone()));
            }
        }
        Ok(Response::new(pb::LabelNamesResponse {
            names: truncate(names.into_iter().collect(), r.limit),
            warnings: self.catalog.skip_warnings(mint, maxt),
            hints: None,
        }))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let r = request.into_inner();
        if r.label.is_empty() {
            return Err(Status::invalid_argument(
                "label name parameter cannot be empty",
            ));
        }
        let matchers = parse_matchers(&r.matchers)?;
        let (mint, maxt) = self.label_range(r.start, r.end)?;
        let blocks = self.blocks(mint, maxt).await?;
        let mut values: BTreeSet<String> = BTreeSet::new();
        if matchers.is_empty() {
            for b in &blocks {
                match b.external.get(&r.label) {
                    Some(v) => {
                        values.insert(v.to_string());
                    }
                    None => values.extend(
                        b.open()
                            .await
                            .map_err(internal)?
                            .index()
                            .label_values(&r.label)
                            .into_iter()
                            .map(String::from),
                    ),
                }
            }
        } else {
            for labels in matching_labels(&blocks, &matchers)
                .await
                .map_err(internal)?
            {
                if let Some(v) = labels.get(&r.label) {
                    values.insert(v.to_string());
                }
            }
        }
        Ok(Response::new(pb::LabelValuesResponse {
            values: truncate(values.into_iter().collect(), r.limit),
            warnings: self.catalog.skip_warnings(mint, maxt),
            hints: None,
        }))
    }
}

#[tonic::async_trait]
impl Info for StoreService {
    async fn info(
        &self,
        _request: Request<infopb::InfoRequest>,
    ) -> Result<Response<infopb::InfoResponse>, Status> {
        // Unavailable until the blocks are loaded, so that a querier reports the store as
        // failing (a warning) instead of pruning it as empty and answering silently partial.
        self.require_ready()?;
        let c = self.catalog.coverage();
        Ok(Response::new(infopb::InfoResponse {
            label_sets: c
                .label_sets
                .iter()
                .map(|l| pb::ZLabelSet {
                    labels: labels_to_pb(l),
                })
                .collect(),
            component_type: "store".into(),
            store: Some(infopb::StoreInfo {
                min_time: c.min_time,
                max_time: c.max_time,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "downsampled_tests.rs"]
mod downsampled_tests;
