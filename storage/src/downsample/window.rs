//! Per-series downsampling as Thanos does it (`pkg/compact/downsample/downsample.go`): raw
//! samples into aggregate chunks, and aggregate chunks into coarser ones, with windows aligned
//! to the resolution and the counter aggregate keeping each chunk's first and last raw values.

use super::aggr::{expand_xor, AggrChunk, AggrError, AggrType};
use crate::chunkenc::{Chunk, ChunkError, XorAppender};

/// One output chunk of a series: its time range and aggregate chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct AggrChunkMeta {
    /// First timestamp in the chunk (inclusive).
    pub min_time: i64,
    /// Last timestamp in the chunk (inclusive).
    pub max_time: i64,
    /// The aggregates.
    pub chunk: AggrChunk,
}

/// Why a series could not be downsampled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowError {
    /// An input aggregate chunk is unreadable.
    #[error(transparent)]
    Aggr(#[from] AggrError),
    /// An output sub-chunk could not take another sample.
    #[error("writing the {aggr} aggregate: {source}")]
    Append {
        /// Aggregate being written.
        aggr: AggrType,
        /// The appender's error.
        source: ChunkError,
    },
    /// A run of input chunks held no sample of any aggregate.
    #[error(
        "input aggregate chunks hold no samples: invalid range for downsampled aggregate chunk"
    )]
    Empty,
    /// Native histogram aggregates, which Strata cannot decode yet.
    #[error("native histogram aggregate chunks are not supported")]
    Histogram,
}

/// End (inclusive) of the resolution-aligned window holding `t` (Thanos' `currentWindow`).
pub fn current_window(t: i64, resolution: i64) -> i64 {
    t.wrapping_sub(t.wrapping_rem(resolution))
        .wrapping_add(resolution)
        .wrapping_sub(1)
}

/// Fraction of `[mint, maxt]` covered by `count` samples `step` apart, at most 1.
fn range_fullness(mint: i64, maxt: i64, step: i64, count: usize) -> f64 {
    let f = count as f64 / (maxt.wrapping_sub(mint) as f64 / step as f64);
    if f > 1.0 {
        1.0
    } else {
        f
    }
}

/// How many chunks a series' output gets so each holds about 140 samples at most
/// (Thanos' `targetChunkCount`, its counting loop solved in closed form).
pub fn target_chunk_count(mint: i64, maxt: i64, in_res: i64, out_res: i64, count: usize) -> usize {
    let max_samples = maxt.wrapping_sub(mint).wrapping_div(out_res) as f64;
    // `as` saturates and maps NaN to 0, where Go's conversion is undefined; both give 1 chunk
    // for an empty input.
    let exp = (max_samples * range_fullness(mint, maxt, in_res, count)) as i64;
    let exp = exp.saturating_add(1);
    // The smallest x >= 1 with exp / x <= 140.
    if exp <= 140 {
        1
    } else {
        usize::try_from(exp / 141 + 1).unwrap_or(usize::MAX)
    }
}

/// Running statistics of one series (Thanos' `floatAggregator`).
#[derive(Debug, Default, Clone)]
struct FloatAggregator {
    total: usize,
    count: usize,
    sum: f64,
    min: f64,
    max: f64,
    counter: f64,
    last: f64,
}

impl FloatAggregator {
    fn reset(&mut self) {
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::MAX;
        self.max = -f64::MAX;
    }

    fn add(&mut self, v: f64) {
        if self.total > 0 {
            if v < self.last {
                self.counter += v;
            } else {
                self.counter += v - self.last;
            }
        } else {
            self.counter = v;
        }
        self.last = v;
        self.sum += v;
        self.count += 1;
        self.total += 1;
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
    }
}

/// Aggregates `data` into windows of `resolution`, calling `add` at each window's end
/// timestamp (capped at the last sample's); returns the last window's timestamp.
fn downsample_batch<E>(
    data: &[(i64, f64)],
    resolution: i64,
    mut add: impl FnMut(i64, &FloatAggregator) -> Result<(), E>,
) -> Result<i64, E> {
    let mut aggr = FloatAggregator::default();
    let mut next_t = -1i64;
    let Some(&(last_t, _)) = data.last() else {
        return Ok(next_t);
    };
    for &(t, v) in data {
        if t > next_t {
            if next_t != -1 {
                add(next_t, &aggr)?;
            }
            aggr.reset();
            next_t = current_window(t, resolution).min(last_t);
        }
        aggr.add(v);
    }
    if aggr.total > 0 {
        add(next_t, &aggr)?;
    }
    Ok(next_t)
}

/// One XOR appender per aggregate plus the chunk's time range.
struct Builder {
    apps: [Option<XorAppender>; 5],
    mint: i64,
    maxt: i64,
}

impl Builder {
    fn new() -> Self {
        Builder {
            apps: Default::default(),
            mint: i64::MAX,
            maxt: i64::MIN,
        }
    }

    fn all() -> Self {
        let mut b = Builder::new();
        b.apps = std::array::from_fn(|_| Some(XorAppender::new()));
        b
    }

    fn append(&mut self, aggr: AggrType, t: i64, v: f64) -> Result<(), WindowError> {
        self.apps[aggr.index()]
            .get_or_insert_with(XorAppender::new)
            .append(t, v)
            .map_err(|source| WindowError::Append { aggr, source })
    }

    fn widen(&mut self, t: i64) {
        self.mint = self.mint.min(t);
        self.maxt = self.maxt.max(t);
    }

    fn finish(self) -> AggrChunkMeta {
        let chunks: [Option<Chunk>; 5] = self.apps.map(|a| a.map(XorAppender::finish));
        let parts: [Option<&Chunk>; 5] = std::array::from_fn(|i| chunks[i].as_ref());
        AggrChunkMeta {
            min_time: self.mint,
            max_time: self.maxt,
            chunk: AggrChunk::encode(parts),
        }
    }
}

/// One aggregate chunk from a batch of raw samples (Thanos' `downsampleFloatBatch`).
fn downsample_float_batch(
    batch: &[(i64, f64)],
    resolution: i64,
) -> Result<AggrChunkMeta, WindowError> {
    let mut b = Builder::all();
    let (Some(&(first_t, first_v)), Some(&(_, last_v))) = (batch.first(), batch.last()) else {
        return Ok(b.finish());
    };
    // The first raw value opens the counter aggregate, so resets at chunk borders are seen.
    b.append(AggrType::Counter, first_t, first_v)?;
    let last_t = downsample_batch(batch, resolution, |t, a| {
        b.widen(t);
        b.append(AggrType::Sum, t, a.sum)?;
        b.append(AggrType::Min, t, a.min)?;
        b.append(AggrType::Max, t, a.max)?;
        b.append(AggrType::Count, t, a.count as f64)?;
        b.append(AggrType::Counter, t, a.counter)
    })?;
    // The last raw value, repeated at the last timestamp, closes it.
    b.append(AggrType::Counter, last_t, last_v)?;
    Ok(b.finish())
}

/// Aggregate chunks for raw samples in time order, staleness markers already dropped
/// (Thanos' `DownsampleRaw`); NaN samples are skipped.
pub fn downsample_raw(
    data: &[(i64, f64)],
    resolution: i64,
) -> Result<Vec<AggrChunkMeta>, WindowError> {
    let (Some(&(mint, _)), Some(&(maxt, _))) = (data.first(), data.last()) else {
        return Ok(Vec::new());
    };
    // Thanos assumes one-minute raw samples to size the chunks.
    let num_chunks = target_chunk_count(mint, maxt, 60_000, resolution, data.len());
    downsample_raw_loop(data, resolution, num_chunks)
}

/// [`downsample_raw`] into about `num_chunks` chunks (Thanos' `downsampleRawLoop`).
pub fn downsample_raw_loop(
    data: &[(i64, f64)],
    resolution: i64,
    num_chunks: usize,
) -> Result<Vec<AggrChunkMeta>, WindowError> {
    let batch_size = data.len() / num_chunks.max(1) + 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let mut j = batch_size.min(rest.len());
        let cur_w = current_window(rest[j - 1].0, resolution);
        // A batch never ends inside a window.
        while j < rest.len() && rest[j].0 <= cur_w {
            j += 1;
        }
        let batch: Vec<(i64, f64)> = rest[..j]
            .iter()
            .copied()
            .filter(|s| !s.1.is_nan())
            .collect();
        rest = &rest[j..];
        if !batch.is_empty() {
            out.push(downsample_float_batch(&batch, resolution)?);
        }
    }
    Ok(out)
}

/// The counter aggregates of consecutive chunks of one series (each chunk's counter samples
/// in order) as one monotonic counter, resets between and within chunks applied: what a
/// reader feeds `rate`/`increase` with (Thanos' `ApplyCounterResetsSeriesIterator`).
pub fn apply_counter_resets(chunks: Vec<Vec<(i64, f64)>>) -> Vec<(i64, f64)> {
    let mut it = CounterResets::new(chunks);
    std::iter::from_fn(|| it.next()).collect()
}

/// Thanos' `ApplyCounterResetsSeriesIterator` over the counter aggregates of several chunks:
/// a monotonic counter, each chunk's repeated last sample telling its true last raw value.
struct CounterResets {
    chunks: Vec<Vec<(i64, f64)>>,
    chunk: usize,
    pos: usize,
    total: usize,
    last_t: i64,
    last_v: f64,
    total_v: f64,
}

enum Step {
    Accepted,
    ChunkEnd,
    Done,
}

impl CounterResets {
    fn new(chunks: Vec<Vec<(i64, f64)>>) -> Self {
        CounterResets {
            chunks,
            chunk: 0,
            pos: 0,
            total: 0,
            last_t: 0,
            last_v: 0.0,
            total_v: 0.0,
        }
    }

    /// The next counter sample; after a chunk ends only samples past the last one count
    /// (Go's `Seek(lastT + 1)`).
    fn next(&mut self) -> Option<(i64, f64)> {
        let mut min_t: Option<i64> = None;
        loop {
            match self.step() {
                Step::Done => return None,
                Step::ChunkEnd => {
                    min_t.get_or_insert(self.last_t.wrapping_add(1));
                }
                Step::Accepted => {
                    if min_t.is_none_or(|x| self.last_t >= x) {
                        return Some((self.last_t, self.total_v));
                    }
                }
            }
        }
    }

    fn step(&mut self) -> Step {
        loop {
            let Some(samples) = self.chunks.get(self.chunk) else {
                return Step::Done;
            };
            let Some(&(t, v)) = samples.get(self.pos) else {
                self.chunk += 1;
                self.pos = 0;
                return Step::ChunkEnd;
            };
            self.pos += 1;
            if v.is_nan() {
                continue;
            }
            if self.total == 0 {
                self.total = 1;
                (self.last_t, self.last_v, self.total_v) = (t, v, v);
                return Step::Accepted;
            }
            if t > self.last_t {
                if v >= self.last_v {
                    self.total_v += v - self.last_v;
                } else {
                    self.total_v += v;
                }
                (self.last_t, self.last_v) = (t, v);
                self.total += 1;
                return Step::Accepted;
            }
            // The repeated timestamp carries the true last raw value of the chunk.
            if t == self.last_t {
                self.last_v = v;
            }
        }
    }
}

/// The samples of one aggregate across `chunks`, expanded as Thanos does (chunks without
/// it contribute nothing).
pub(crate) fn expand_aggr(
    chunks: &[AggrChunk],
    aggr: AggrType,
) -> Result<Vec<(i64, f64)>, WindowError> {
    let mut out = Vec::new();
    for c in chunks {
        match c.samples(aggr) {
            Ok(s) => expand_xor(&s, &mut out),
            Err(AggrError::NotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Which statistic of a window an aggregate keeps.
type WindowValue = fn(&FloatAggregator) -> f64;

/// One coarser aggregate chunk from a run of aggregate chunks (Thanos'
/// `downsampleFloatAggrBatch`).
fn downsample_aggr_batch(
    chunks: &[AggrChunk],
    resolution: i64,
) -> Result<AggrChunkMeta, WindowError> {
    let mut b = Builder::new();
    let generic: [(AggrType, WindowValue); 4] = [
        // The count of a coarser window is the sum of the finer windows' counts.
        (AggrType::Count, |a| a.sum),
        (AggrType::Sum, |a| a.sum),
        (AggrType::Min, |a| a.min),
        (AggrType::Max, |a| a.max),
    ];
    for (aggr, value) in generic {
        let samples = expand_aggr(chunks, aggr)?;
        if samples.is_empty() {
            continue;
        }
        downsample_batch(&samples, resolution, |t, a| {
            b.widen(t);
            b.append(aggr, t, value(a))
        })?;
    }

    let mut counters = Vec::with_capacity(chunks.len());
    for c in chunks {
        match c.samples(AggrType::Counter) {
            Ok(s) => counters.push(s),
            Err(AggrError::NotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut it = CounterResets::new(counters);
    let mut applied = Vec::new();
    let mut last_t = 0i64;
    while let Some((t, v)) = it.next() {
        // Thanos expands this iterator with the same filter as a chunk's samples.
        if !crate::chunkenc::is_stale_nan(v) && t >= last_t {
            applied.push((t, v));
            last_t = t;
        }
    }
    let Some(&(first_t, first_v)) = applied.first() else {
        return Ok(b.finish());
    };
    b.append(AggrType::Counter, first_t, first_v)?;
    let last_t = downsample_batch(&applied, resolution, |t, a| {
        b.widen(t);
        b.append(AggrType::Counter, t, a.counter)
    })?;
    b.append(AggrType::Counter, last_t, it.last_v)?;
    Ok(b.finish())
}

/// Aggregate chunks of one series spanning `[mint, maxt]` at `in_res`, downsampled to
/// `out_res` along input chunk boundaries (Thanos' `downsampleAggr` for float aggregates).
///
/// Thanos fails when a series has more target chunks than input chunks (its batch size
/// becomes 0); here every batch holds at least one input chunk instead.
pub fn downsample_aggr(
    chunks: &[AggrChunk],
    mint: i64,
    maxt: i64,
    in_res: i64,
    out_res: i64,
) -> Result<Vec<AggrChunkMeta>, WindowError> {
    if chunks.iter().any(AggrChunk::is_histogram) {
        return Err(WindowError::Histogram);
    }
    let num_samples: usize = chunks.iter().map(AggrChunk::num_samples).sum();
    let num_chunks = target_chunk_count(mint, maxt, in_res, out_res, num_samples);
    downsample_aggr_loop(chunks, out_res, num_chunks)
}

/// [`downsample_aggr`] in `num_chunks` batches of whole input chunks (Thanos'
/// `downsampleAggrLoop`).
pub(crate) fn downsample_aggr_loop(
    chunks: &[AggrChunk],
    out_res: i64,
    num_chunks: usize,
) -> Result<Vec<AggrChunkMeta>, WindowError> {
    let batch_size = (chunks.len() / num_chunks.max(1)).max(1);
    let mut out = Vec::new();
    for part in chunks.chunks(batch_size) {
        let chunk = downsample_aggr_batch(part, out_res)?;
        if chunk.min_time == i64::MAX || chunk.max_time == i64::MIN {
            return Err(WindowError::Empty);
        }
        out.push(chunk);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
