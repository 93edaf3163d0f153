//! Overlapping aggregate chunks of one series, from several downsampled blocks, into one
//! stream of aggregate chunks: vertical compaction at 5m or 1h.
//!
//! Thanos (`pkg/dedup/chunk_iter.go`) deduplicates each sub-chunk's samples on its own and
//! cuts the count aggregate anew; that lets count and sum of one window come from different
//! blocks, and counter samples of blocks with different reset histories interleave into fake
//! resets. Here the unit is the window (the resolution-aligned interval a sample stands for):
//! every window appears once, taken whole (count, sum, min, max and counter) from one source,
//! the one whose window saw the most raw samples (ties: the source given first). The
//! counter is read per source with its resets applied, and where the output switches source
//! the new source's values are offset to continue from the last value written, so a switch
//! never looks like a reset. Each output chunk ends with the counter's repeated last sample,
//! which readers take as the last raw value: inside the series the last value written, at the
//! series' end the true last raw value of the source of the last window, so a following block
//! is read with the right reset.

use super::aggr::{AggrChunk, AggrError, AggrType};
use super::window::{
    apply_counter_resets, current_window, expand_aggr, AggrChunkMeta, WindowError,
};
use crate::chunkenc::{Chunk, XorAppender};
use std::collections::BTreeMap;

/// Most windows in one output chunk (Prometheus' samples per chunk, as Thanos' re-encoder).
pub const WINDOWS_PER_CHUNK: usize = 120;

/// One source's aggregate chunks of a series, in time order, and which timestamps its
/// tombstones delete.
pub struct AggrSource<'a> {
    /// The chunks.
    pub chunks: Vec<AggrChunk>,
    /// True for a timestamp that is deleted.
    pub deleted: &'a dyn Fn(i64) -> bool,
}

/// One window of one source: its timestamp and count, sum, min, max where set.
#[derive(Debug, Clone, Copy)]
struct Window {
    t: i64,
    values: [Option<f64>; 4],
}

impl Window {
    fn count(&self) -> f64 {
        self.values[0].unwrap_or(0.0)
    }
}

/// One source read into windows and counter samples, both keyed by window.
struct Source {
    windows: BTreeMap<i64, Window>,
    /// Counter samples with resets applied, by window.
    counter: BTreeMap<i64, Vec<(i64, f64)>>,
    /// The counter's true last raw value (the repeated last sample of the last chunk).
    last_raw: Option<f64>,
}

fn read_source(src: &AggrSource<'_>, resolution: i64) -> Result<Source, WindowError> {
    if src.chunks.iter().any(AggrChunk::is_histogram) {
        return Err(WindowError::Histogram);
    }
    let key = |t: i64| current_window(t, resolution);
    let mut windows: BTreeMap<i64, Window> = BTreeMap::new();
    for (i, aggr) in [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max]
        .into_iter()
        .enumerate()
    {
        for (t, v) in expand_aggr(&src.chunks, aggr)? {
            if (src.deleted)(t) {
                continue;
            }
            let w = windows.entry(key(t)).or_insert(Window {
                t,
                values: [None; 4],
            });
            w.values[i] = Some(v);
        }
    }
    let mut per_chunk = Vec::with_capacity(src.chunks.len());
    let mut last_raw = None;
    for c in &src.chunks {
        match c.samples(AggrType::Counter) {
            Ok(s) => {
                last_raw = s.last().map(|x| x.1).or(last_raw);
                per_chunk.push(s);
            }
            Err(AggrError::NotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut counter: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for (t, v) in apply_counter_resets(per_chunk) {
        if !(src.deleted)(t) {
            counter.entry(key(t)).or_default().push((t, v));
        }
    }
    Ok(Source {
        windows,
        counter,
        last_raw,
    })
}

/// Why [`merge_aggr`] failed: a source's chunks could not be read (`index` is its position),
/// or an output chunk could not be written (`index` is `None`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct MergeAggrError {
    /// Index of the unreadable source, if a source is to blame.
    pub index: Option<usize>,
    /// What went wrong.
    pub error: WindowError,
}

/// Merges the aggregate chunks of one series from `sources` (overlapping in time) at
/// `resolution` into new aggregate chunks, every window once (see the module doc).
pub fn merge_aggr(
    sources: &[AggrSource<'_>],
    resolution: i64,
) -> Result<Vec<AggrChunkMeta>, MergeAggrError> {
    let mut read = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        read.push(read_source(s, resolution).map_err(|error| MergeAggrError {
            index: Some(i),
            error,
        })?);
    }
    // Each window key to the source it is taken from: most raw samples, then the first.
    let mut choice: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, s) in read.iter().enumerate() {
        let keys = s.windows.keys().chain(s.counter.keys());
        for &k in keys {
            let mine = s.windows.get(&k).map_or(-1.0, Window::count);
            choice
                .entry(k)
                .and_modify(|best| {
                    let theirs = read[*best].windows.get(&k).map_or(-1.0, Window::count);
                    if mine > theirs {
                        *best = i;
                    }
                })
                .or_insert(i);
        }
    }
    let (windows, counter, last_source) = stitch(&read, &choice);
    let last_raw = last_source.and_then(|i| read[i].last_raw);
    cut(&windows, &counter, last_raw).map_err(|error| MergeAggrError { index: None, error })
}

/// The chosen windows in order, and the counter samples in order with offsets applied at
/// source switches; also the source of the last counter sample.
#[allow(clippy::type_complexity)]
fn stitch(
    read: &[Source],
    choice: &BTreeMap<i64, usize>,
) -> (Vec<(i64, Window)>, Vec<(i64, i64, f64)>, Option<usize>) {
    let mut windows = Vec::with_capacity(choice.len());
    let mut counter: Vec<(i64, i64, f64)> = Vec::new();
    let mut current: Option<usize> = None;
    let mut offset = 0.0;
    let mut prev_key: Option<i64> = None;
    for (&k, &i) in choice {
        let s = &read[i];
        if let Some(w) = s.windows.get(&k) {
            windows.push((k, *w));
        }
        let Some(samples) = s.counter.get(&k) else {
            continue;
        };
        if current != Some(i) {
            // Continue from the last value written with the new source's own increase.
            offset = match (counter.last(), prev_key.and_then(|p| s.counter.get(&p))) {
                (Some(&(_, _, last)), Some(prev)) => last - prev.last().map_or(last, |x| x.1),
                _ => 0.0,
            };
            current = Some(i);
        }
        let after = counter.last().map_or(i64::MIN, |c| c.1);
        for &(t, v) in samples {
            if t > after {
                counter.push((k, t, v + offset));
            }
        }
        prev_key = Some(k);
    }
    (windows, counter, current)
}

/// Cuts windows and counter samples into aggregate chunks of at most [`WINDOWS_PER_CHUNK`]
/// windows; counter samples go to the chunk of their window.
fn cut(
    windows: &[(i64, Window)],
    counter: &[(i64, i64, f64)],
    last_raw: Option<f64>,
) -> Result<Vec<AggrChunkMeta>, WindowError> {
    // Chunk boundaries by window key; a series with counter samples only is cut by those.
    let keys: Vec<i64> = if windows.is_empty() {
        let mut k: Vec<i64> = counter.iter().map(|c| c.0).collect();
        k.dedup();
        k
    } else {
        windows.iter().map(|w| w.0).collect()
    };
    let groups: Vec<&[i64]> = keys.chunks(WINDOWS_PER_CHUNK).collect();
    let mut out = Vec::with_capacity(groups.len());
    let (mut w, mut c) = (0usize, 0usize);
    for (g, group) in groups.iter().enumerate() {
        let last_group = g + 1 == groups.len();
        let Some(&end_key) = group.last() else {
            continue;
        };
        let mut apps: [Option<XorAppender>; 5] = Default::default();
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        while w < windows.len() && windows[w].0 <= end_key {
            let win = &windows[w].1;
            for (i, v) in win.values.iter().enumerate() {
                if let Some(v) = v {
                    append(&mut apps, i, win.t, *v)?;
                }
            }
            mint = mint.min(win.t);
            maxt = maxt.max(win.t);
            w += 1;
        }
        let mut last: Option<(i64, f64)> = None;
        while c < counter.len() && (last_group || counter[c].0 <= end_key) {
            let (_, t, v) = counter[c];
            append(&mut apps, AggrType::Counter.index(), t, v)?;
            if windows.is_empty() {
                mint = mint.min(t);
            }
            maxt = maxt.max(t);
            last = Some((t, v));
            c += 1;
        }
        if let Some((t, v)) = last {
            // The repeated last sample: the raw value readers compare the next chunk with.
            let v = if last_group { last_raw.unwrap_or(v) } else { v };
            append(&mut apps, AggrType::Counter.index(), t, v)?;
        }
        if mint > maxt {
            continue;
        }
        let chunks: [Option<Chunk>; 5] = apps.map(|a| a.map(XorAppender::finish));
        let parts: [Option<&Chunk>; 5] = std::array::from_fn(|i| chunks[i].as_ref());
        out.push(AggrChunkMeta {
            min_time: mint,
            max_time: maxt,
            chunk: AggrChunk::encode(parts),
        });
    }
    Ok(out)
}

fn append(
    apps: &mut [Option<XorAppender>; 5],
    i: usize,
    t: i64,
    v: f64,
) -> Result<(), WindowError> {
    let aggr = AggrType::ALL[i];
    apps[i]
        .get_or_insert_with(XorAppender::new)
        .append(t, v)
        .map_err(|source| WindowError::Append { aggr, source })
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
