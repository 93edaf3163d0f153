//! Conversions between the StoreAPI's wire messages and Strata's types: labels, matchers and
//! chunks (raw XOR chunks travel exactly as a block stores them, sample-count header included;
//! downsampled chunks travel as the requested aggregates' sub-chunks, as Thanos sends them).

use proto::thanos::{self as pb, label_matcher, AggrChunk};
use storage::block::tombstones::Intervals;
use storage::chunkenc::xor::XorAppender;
use storage::chunkenc::XorIterator;
use storage::chunkenc::{Chunk, ChunkError, Encoding};
use storage::downsample::{apply_counter_resets, AggrError, AggrType};
use storage::labels::{Label, Labels};
use storage::matcher::{MatchKind, Matcher, MatcherError};

/// Why a wire message could not become a Strata value.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A matcher's type is none of EQ, NEQ, RE, NRE.
    #[error("matcher on label {name:?} has unknown type {value}")]
    UnknownMatcherType {
        /// The label the matcher names.
        name: String,
        /// The type number received.
        value: i32,
    },
    /// A regex matcher does not compile.
    #[error(transparent)]
    BadMatcher(#[from] MatcherError),
    /// A chunk's encoding is none the StoreAPI defines.
    #[error("chunk has unknown encoding {0}")]
    UnknownEncoding(i32),
    /// A chunk carries only downsampled aggregates, which Strata does not read yet.
    #[error("chunk {min_time}..{max_time} has no raw data (downsampled aggregates are not supported yet)")]
    NoRawChunk {
        /// First timestamp of the chunk.
        min_time: i64,
        /// Last timestamp of the chunk.
        max_time: i64,
    },
    /// A request names an aggregate the StoreAPI does not define.
    #[error("unknown aggregate {0} in the request (known: 0 raw to 5 counter)")]
    UnknownAggregate(i32),
    /// A downsampled chunk lacks the aggregate the query reads.
    #[error("downsampled chunk {min_time}..{max_time} has no {aggr} aggregate")]
    MissingAggregate {
        /// First timestamp of the chunk.
        min_time: i64,
        /// Last timestamp of the chunk.
        max_time: i64,
        /// The aggregate wanted.
        aggr: AggrType,
    },
    /// A chunk's data does not decode.
    #[error("chunk {min_time}..{max_time}: {source}")]
    Chunk {
        /// First timestamp of the chunk.
        min_time: i64,
        /// Last timestamp of the chunk.
        max_time: i64,
        /// The decoding error.
        source: ChunkError,
    },
}

/// Labels as the wire carries them (sorted by name, as [`Labels`] keeps them).
pub fn labels_to_pb(labels: &Labels) -> Vec<pb::Label> {
    labels
        .iter()
        .map(|l| pb::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

/// Labels from the wire, sorted whatever order the peer sent (a repeated name: the last wins).
pub fn labels_from_pb(labels: Vec<pb::Label>) -> Labels {
    if labels.windows(2).all(|w| w[0].name < w[1].name) {
        // The usual case (every StoreAPI server sends them sorted): the strings move over,
        // no map is built.
        return Labels::from_sorted(
            labels
                .into_iter()
                .map(|l| Label {
                    name: l.name,
                    value: l.value,
                })
                .collect(),
        );
    }
    Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
}

/// A matcher for the wire.
pub fn matcher_to_pb(m: &Matcher) -> pb::LabelMatcher {
    let kind = match m.kind() {
        MatchKind::Equal => label_matcher::Type::Eq,
        MatchKind::NotEqual => label_matcher::Type::Neq,
        MatchKind::Regex => label_matcher::Type::Re,
        MatchKind::NotRegex => label_matcher::Type::Nre,
    };
    pb::LabelMatcher {
        r#type: kind as i32,
        name: m.name().to_string(),
        value: m.value().to_string(),
    }
}

/// A matcher from the wire; an unknown type or a regex that does not compile is an error.
pub fn matcher_from_pb(m: &pb::LabelMatcher) -> Result<Matcher, ConvertError> {
    let kind = match label_matcher::Type::try_from(m.r#type) {
        Ok(label_matcher::Type::Eq) => MatchKind::Equal,
        Ok(label_matcher::Type::Neq) => MatchKind::NotEqual,
        Ok(label_matcher::Type::Re) => MatchKind::Regex,
        Ok(label_matcher::Type::Nre) => MatchKind::NotRegex,
        Err(_) => {
            return Err(ConvertError::UnknownMatcherType {
                name: m.name.clone(),
                value: m.r#type,
            })
        }
    };
    Ok(Matcher::new(kind, m.name.clone(), m.value.clone())?)
}

/// Every matcher from the wire.
pub fn matchers_from_pb(ms: &[pb::LabelMatcher]) -> Result<Vec<Matcher>, ConvertError> {
    ms.iter().map(matcher_from_pb).collect()
}

fn encoding_to_pb(e: Encoding) -> pb::chunk::Encoding {
    match e {
        Encoding::Xor => pb::chunk::Encoding::Xor,
        Encoding::Histogram => pb::chunk::Encoding::Histogram,
        Encoding::FloatHistogram => pb::chunk::Encoding::FloatHistogram,
    }
}

/// A stored chunk as a raw `AggrChunk` over `[min_time, max_time]`, its bytes unchanged.
pub fn chunk_to_pb(chunk: &Chunk, min_time: i64, max_time: i64) -> AggrChunk {
    AggrChunk {
        min_time,
        max_time,
        raw: Some(pb::Chunk {
            r#type: encoding_to_pb(chunk.encoding) as i32,
            data: chunk.data.clone(),
            hash: 0,
        }),
        ..Default::default()
    }
}

/// A stored chunk with the samples in `deleted` removed (tombstones), re-encoded; `None` when
/// nothing is left. Only float chunks can be trimmed; histogram chunks are refused.
pub fn trim_deleted(
    chunk: &Chunk,
    deleted: &Intervals,
) -> Result<Option<(Chunk, i64, i64)>, ChunkError> {
    let kept: Vec<(i64, f64)> = chunk
        .samples()?
        .into_iter()
        .filter(|(t, _)| !deleted.contains(*t))
        .collect();
    let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
        return Ok(None);
    };
    let (min_time, max_time) = (first.0, last.0);
    let mut app = XorAppender::new();
    for (t, v) in kept {
        app.append(t, v)?;
    }
    Ok(Some((app.finish(), min_time, max_time)))
}

/// What a querier reads of downsampled data, chosen by the PromQL function over the selector
/// (Thanos' `aggrsFromFunc`); raw chunks are read as they are whatever the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggrRead {
    /// Samples per window (`count`, `count_*`).
    Count,
    /// Sums per window (`sum_*`; `sum` itself reads the average).
    Sum,
    /// Minimum per window (`min`, `min_*`).
    Min,
    /// Maximum per window (`max`, `max_*`).
    Max,
    /// The counter with resets applied (`rate`, `increase`, `irate`, `resets`).
    Counter,
    /// Sum / count per window: everything else.
    Average,
}

impl AggrRead {
    /// Thanos' `aggrsFromFunc` over Prometheus' `hints.Func`.
    pub fn for_func(func: Option<&str>) -> Self {
        let f = func.unwrap_or("");
        let is = |name: &str| f == name || f.strip_prefix(name).is_some_and(|r| r.starts_with('_'));
        if is("min") {
            AggrRead::Min
        } else if is("max") {
            AggrRead::Max
        } else if is("count") {
            AggrRead::Count
        } else if f.starts_with("sum_") {
            AggrRead::Sum
        } else if matches!(f, "increase" | "rate" | "irate" | "resets") {
            AggrRead::Counter
        } else {
            AggrRead::Average
        }
    }

    /// The aggregates asked of stores (`SeriesRequest.aggregates`).
    pub fn to_pb(self) -> Vec<i32> {
        let one = |a: pb::Aggr| vec![a as i32];
        match self {
            AggrRead::Count => one(pb::Aggr::Count),
            AggrRead::Sum => one(pb::Aggr::Sum),
            AggrRead::Min => one(pb::Aggr::Min),
            AggrRead::Max => one(pb::Aggr::Max),
            AggrRead::Counter => one(pb::Aggr::Counter),
            AggrRead::Average => vec![pb::Aggr::Count as i32, pb::Aggr::Sum as i32],
        }
    }
}

/// What a Series request reads: blocks up to `max_window` ms of resolution (0: raw only,
/// Thanos' `max_resolution_window`), and of downsampled chunks the aggregate `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// Coarsest resolution allowed, in ms.
    pub max_window: i64,
    /// What downsampled chunks are read as.
    pub read: AggrRead,
}

impl Resolution {
    /// Raw data only.
    pub const RAW: Resolution = Resolution {
        max_window: 0,
        read: AggrRead::Average,
    };
}

/// The aggregates a `SeriesRequest` asks for; `RAW` is ignored as Thanos does, an unknown
/// value is an error. None asked: count and sum, what Thanos' querier asks by default.
pub fn aggregates_from_pb(aggrs: &[i32]) -> Result<Vec<AggrType>, ConvertError> {
    let mut out = Vec::new();
    for &a in aggrs {
        let t = match pb::Aggr::try_from(a) {
            Ok(pb::Aggr::Raw) => continue,
            Ok(pb::Aggr::Count) => AggrType::Count,
            Ok(pb::Aggr::Sum) => AggrType::Sum,
            Ok(pb::Aggr::Min) => AggrType::Min,
            Ok(pb::Aggr::Max) => AggrType::Max,
            Ok(pb::Aggr::Counter) => AggrType::Counter,
            Err(_) => return Err(ConvertError::UnknownAggregate(a)),
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        out = vec![AggrType::Count, AggrType::Sum];
    }
    Ok(out)
}

/// A stored aggregate chunk (the data of a 0xff record) as an `AggrChunk` carrying the
/// `aggrs` sub-chunks (Thanos' `populateChunk`); an aggregate the chunk lacks is an error.
pub fn aggr_chunk_to_pb(
    chunk: &storage::downsample::AggrChunk,
    min_time: i64,
    max_time: i64,
    aggrs: &[AggrType],
) -> Result<AggrChunk, AggrError> {
    let parts = chunk.parts()?;
    let mut out = AggrChunk {
        min_time,
        max_time,
        ..Default::default()
    };
    for &a in aggrs {
        let c = parts[a.index()].as_ref().ok_or(AggrError::NotExist(a))?;
        let wire = Some(pb::Chunk {
            r#type: encoding_to_pb(c.encoding) as i32,
            data: c.data.clone(),
            hash: 0,
        });
        match a {
            AggrType::Count => out.count = wire,
            AggrType::Sum => out.sum = wire,
            AggrType::Min => out.min = wire,
            AggrType::Max => out.max = wire,
            AggrType::Counter => out.counter = wire,
        }
    }
    Ok(out)
}

fn wire_samples(c: &AggrChunk, wire: &pb::Chunk) -> Result<Vec<(i64, f64)>, ConvertError> {
    let encoding = match pb::chunk::Encoding::try_from(wire.r#type) {
        Ok(pb::chunk::Encoding::Xor) => Encoding::Xor,
        Ok(pb::chunk::Encoding::Histogram) => Encoding::Histogram,
        Ok(pb::chunk::Encoding::FloatHistogram) => Encoding::FloatHistogram,
        Err(_) => return Err(ConvertError::UnknownEncoding(wire.r#type)),
    };
    Chunk::new(encoding, wire.data.clone())
        .samples()
        .map_err(|source| ConvertError::Chunk {
            min_time: c.min_time,
            max_time: c.max_time,
            source,
        })
}

/// The samples of one chunk as `read` wants them: raw data as it is, else the aggregate
/// (Thanos' `getFirstIterator(aggregate, raw)`), or sum / count per window for an average.
fn chunk_samples(c: &AggrChunk, read: AggrRead) -> Result<Vec<(i64, f64)>, ConvertError> {
    if let Some(raw) = &c.raw {
        return wire_samples(c, raw);
    }
    let (field, aggr) = match read {
        AggrRead::Count => (&c.count, AggrType::Count),
        AggrRead::Sum => (&c.sum, AggrType::Sum),
        AggrRead::Min => (&c.min, AggrType::Min),
        AggrRead::Max => (&c.max, AggrType::Max),
        AggrRead::Counter => (&c.counter, AggrType::Counter),
        AggrRead::Average => {
            let missing = |aggr| ConvertError::MissingAggregate {
                min_time: c.min_time,
                max_time: c.max_time,
                aggr,
            };
            let sum = wire_samples(c, c.sum.as_ref().ok_or_else(|| missing(AggrType::Sum))?)?;
            let count = wire_samples(c, c.count.as_ref().ok_or_else(|| missing(AggrType::Count))?)?;
            // Thanos' AverageChunkIterator: the two sub-chunks have the same timestamps.
            return Ok(sum
                .into_iter()
                .zip(count)
                .filter(|((ts, _), (tc, _))| ts == tc)
                .map(|((t, s), (_, n))| (t, s / n))
                .collect());
        }
    };
    let wire = field.as_ref().ok_or(ConvertError::MissingAggregate {
        min_time: c.min_time,
        max_time: c.max_time,
        aggr,
    })?;
    wire_samples(c, wire)
}

/// Decodes a series' chunks, raw or downsampled, into its samples in `[mint, maxt]` as `read`
/// wants them; the counter aggregate goes through Thanos' counter-reset iterator (chunks in
/// time order, resets applied), everything else merges as [`decode_chunks`] does. A series of
/// raw chunks only decodes exactly as [`decode_chunks`].
pub fn decode_chunks_as(
    chunks: &[AggrChunk],
    mint: i64,
    maxt: i64,
    read: AggrRead,
) -> Result<Vec<(i64, f64)>, ConvertError> {
    if chunks.iter().all(|c| c.raw.is_some()) {
        return decode_chunks(chunks, mint, maxt);
    }
    let in_range = |s: Vec<(i64, f64)>| -> Vec<(i64, f64)> {
        s.into_iter()
            .filter(|(t, _)| *t >= mint && *t <= maxt)
            .collect()
    };
    let mut runs = Vec::with_capacity(chunks.len());
    for c in chunks {
        if read != AggrRead::Counter && (c.max_time < mint || c.min_time > maxt) {
            continue;
        }
        runs.push(chunk_samples(c, read)?);
    }
    if read == AggrRead::Counter {
        // Resets are counted from the series' first chunk on, then the range is cut.
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by_key(|&i| (chunks[i].min_time, chunks[i].max_time));
        let sorted = order
            .into_iter()
            .map(|i| std::mem::take(&mut runs[i]))
            .collect();
        return Ok(in_range(apply_counter_resets(sorted)));
    }
    Ok(crate::query::merge::merge_samples(
        runs.into_iter().map(in_range).collect(),
    ))
}

/// Decodes a series' raw chunks into its samples in `[mint, maxt]`, in time order; chunks that
/// overlap (several stores or blocks) keep the first sample of each timestamp.
pub fn decode_chunks(
    chunks: &[AggrChunk],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(i64, f64)>, ConvertError> {
    // First the chunks are checked and their sample counts summed, so that the samples decode
    // into one buffer allocated once; then they decode straight into it, filtered in place.
    // Only chunks that overlap (rare: several blocks or stores) need the merge.
    let mut capacity = 0;
    for c in chunks {
        if let Some(data) = raw_xor(c, mint, maxt)? {
            capacity += sample_count_hint(data);
        }
    }
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(capacity);
    let mut ordered = true;
    for c in chunks {
        let Some(data) = raw_xor(c, mint, maxt)? else {
            continue;
        };
        let start = out.len();
        decode_in_range(c, data, mint, maxt, &mut out)?;
        if out.len() > start && start > 0 && out[start - 1].0 >= out[start].0 {
            ordered = false;
        }
    }
    if ordered {
        return Ok(out);
    }
    let mut runs: Vec<Vec<(i64, f64)>> = Vec::with_capacity(chunks.len());
    for c in chunks {
        if let Some(data) = raw_xor(c, mint, maxt)? {
            let mut run = Vec::with_capacity(sample_count_hint(data));
            decode_in_range(c, data, mint, maxt, &mut run)?;
            runs.push(run);
        }
    }
    Ok(crate::query::merge::merge_samples(runs))
}

/// The XOR data of a raw chunk that overlaps `[mint, maxt]` (`None`: it does not); a chunk
/// without raw data or of another encoding is an error.
fn raw_xor(c: &AggrChunk, mint: i64, maxt: i64) -> Result<Option<&[u8]>, ConvertError> {
    if c.max_time < mint || c.min_time > maxt {
        return Ok(None);
    }
    let raw = c.raw.as_ref().ok_or(ConvertError::NoRawChunk {
        min_time: c.min_time,
        max_time: c.max_time,
    })?;
    let unsupported = |e| ConvertError::Chunk {
        min_time: c.min_time,
        max_time: c.max_time,
        source: ChunkError::Unsupported(e),
    };
    match pb::chunk::Encoding::try_from(raw.r#type) {
        Ok(pb::chunk::Encoding::Xor) => Ok(Some(&raw.data[..])),
        Ok(pb::chunk::Encoding::Histogram) => Err(unsupported(Encoding::Histogram)),
        Ok(pb::chunk::Encoding::FloatHistogram) => Err(unsupported(Encoding::FloatHistogram)),
        Err(_) => Err(ConvertError::UnknownEncoding(raw.r#type)),
    }
}

/// The sample count an XOR chunk's header claims, bounded by what its bytes can hold (two bits
/// a sample at best), so that a lying header cannot make a large allocation.
fn sample_count_hint(data: &[u8]) -> usize {
    match data {
        [hi, lo, rest @ ..] => usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len() * 4 + 1),
        _ => 0,
    }
}

/// Appends the samples of one XOR chunk that fall in `[mint, maxt]` to `out`.
fn decode_in_range(
    c: &AggrChunk,
    data: &[u8],
    mint: i64,
    maxt: i64,
    out: &mut Vec<(i64, f64)>,
) -> Result<(), ConvertError> {
    let start = out.len();
    XorIterator::new(data)
        .decode_into(out)
        .map_err(|source| ConvertError::Chunk {
            min_time: c.min_time,
            max_time: c.max_time,
            source,
        })?;
    let mut w = start;
    for r in start..out.len() {
        let s = out[r];
        if s.0 >= mint && s.0 <= maxt {
            out[w] = s;
            w += 1;
        }
    }
    out.truncate(w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use storage::block::tombstones::Interval;

    fn encode(samples: &[(i64, f64)]) -> Chunk {
        let mut app = XorAppender::new();
        for &(t, v) in samples {
            app.append(t, v).expect("append");
        }
        app.finish()
    }

    fn sorted_samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
        (
            -1_000_000i64..1_000_000,
            proptest::collection::vec((1i64..100_000, any::<f64>()), 1..300),
        )
            .prop_map(|(start, steps)| {
                let mut t = start;
                steps
                    .into_iter()
                    .map(|(d, v)| {
                        t += d;
                        (t, v)
                    })
                    .collect()
            })
    }

    fn same(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
    }

    proptest! {
        #[test]
        fn chunks_round_trip_through_the_wire_bit_for_bit(samples in sorted_samples()) {
            let chunk = encode(&samples);
            let (mint, maxt) = (samples[0].0, samples[samples.len() - 1].0);
            let wire = chunk_to_pb(&chunk, mint, maxt);
            prop_assert_eq!(&wire.raw.as_ref().expect("raw").data[..], &chunk.data[..]);
            let back = decode_chunks(&[wire], i64::MIN, i64::MAX).expect("decode");
            prop_assert!(same(&back, &samples));
        }

        #[test]
        fn decoding_trims_to_the_requested_range(samples in sorted_samples(), a in 0usize..300, b in 0usize..300) {
            let chunk = encode(&samples);
            let (lo, hi) = (a.min(b).min(samples.len() - 1), a.max(b).min(samples.len() - 1));
            let (mint, maxt) = (samples[lo].0, samples[hi].0);
            let wire = chunk_to_pb(&chunk, samples[0].0, samples[samples.len() - 1].0);
            let back = decode_chunks(&[wire], mint, maxt).expect("decode");
            prop_assert!(same(&back, &samples[lo..=hi]));
        }

        #[test]
        fn trimming_removes_exactly_the_deleted_samples(samples in sorted_samples(), a in 0usize..300, b in 0usize..300) {
            let chunk = encode(&samples);
            let (lo, hi) = (a.min(b).min(samples.len() - 1), a.max(b).min(samples.len() - 1));
            let mut deleted = Intervals::new();
            deleted.add(Interval::new(samples[lo].0, samples[hi].0));
            let want: Vec<(i64, f64)> = samples
                .iter()
                .copied()
                .filter(|(t, _)| *t < samples[lo].0 || *t > samples[hi].0)
                .collect();
            match trim_deleted(&chunk, &deleted).expect("trim") {
                None => prop_assert!(want.is_empty()),
                Some((c, mint, maxt)) => {
                    prop_assert_eq!((mint, maxt), (want[0].0, want[want.len() - 1].0));
                    prop_assert!(same(&c.samples().expect("decode"), &want));
                }
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64), kind in 0i32..4) {
            let wire = AggrChunk {
                min_time: 0,
                max_time: 10,
                raw: Some(pb::Chunk { r#type: kind, data: data.into(), hash: 0 }),
                ..Default::default()
            };
            let _ = decode_chunks(&[wire], 0, 10);
        }
    }

    proptest! {
        #[test]
        fn a_series_split_over_chunks_in_any_order_decodes_to_its_samples(
            samples in sorted_samples(),
            a in 0usize..300,
            b in 0usize..300,
            overlap in 0usize..3,
            reverse in any::<bool>(),
        ) {
            // Three chunks cut at a and b; with overlap > 0 each chunk repeats the last samples
            // of the one before (as two blocks or stores holding the same samples would).
            let n = samples.len();
            let (lo, hi) = (a.min(b).min(n), a.max(b).min(n));
            let mut wire = Vec::new();
            for (s, e) in [(0, lo), (lo, hi), (hi, n)] {
                let s = s.saturating_sub(overlap);
                if s < e {
                    let part = &samples[s..e];
                    wire.push(chunk_to_pb(&encode(part), part[0].0, part[part.len() - 1].0));
                }
            }
            if reverse {
                wire.reverse();
            }
            let back = decode_chunks(&wire, i64::MIN, i64::MAX).expect("decode");
            prop_assert!(same(&back, &samples));
        }
    }

    #[test]
    fn a_chunk_header_cannot_claim_more_samples_than_its_bytes_hold() {
        assert_eq!(sample_count_hint(&[0xff, 0xff, 0, 0]), 9);
        assert_eq!(sample_count_hint(&[0, 3, 1, 2, 3, 4, 5]), 3);
        assert_eq!(sample_count_hint(&[7]), 0);
        let lying = AggrChunk {
            min_time: 0,
            max_time: 10,
            raw: Some(pb::Chunk {
                r#type: pb::chunk::Encoding::Xor as i32,
                data: vec![0xff, 0xff, 1].into(),
                hash: 0,
            }),
            ..Default::default()
        };
        assert!(decode_chunks(&[lying], 0, 10).is_err());
    }

    #[test]
    fn overlapping_chunks_keep_one_sample_per_timestamp() {
        let a = chunk_to_pb(&encode(&[(1, 1.0), (2, 2.0), (3, 3.0)]), 1, 3);
        let b = chunk_to_pb(&encode(&[(2, 2.0), (3, 3.0), (4, 4.0)]), 2, 4);
        let got = decode_chunks(&[a, b], 0, 10).expect("decode");
        assert_eq!(got, vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]);
    }

    #[test]
    fn aggregate_only_chunks_are_refused_with_a_clear_error() {
        let c = AggrChunk {
            min_time: 5,
            max_time: 9,
            ..Default::default()
        };
        let e = decode_chunks(&[c], 0, 10).expect_err("refused");
        assert!(e.to_string().contains("downsampled"), "{e}");
    }

    /// A counter growing 60 per minute, resetting (to 60) at samples 100 and 250, as the
    /// 5m aggregate chunks of `downsample_raw_loop` in `chunks` pieces.
    fn counter_chunks(chunks: usize) -> (Vec<(i64, f64)>, Vec<AggrChunk>) {
        let mut v = 0.0;
        let raw: Vec<(i64, f64)> = (0..400i64)
            .map(|i| {
                v = if i == 100 || i == 250 { 60.0 } else { v + 60.0 };
                ((i + 1) * 60_000 - 1, v)
            })
            .collect();
        let wire = storage::downsample::window::downsample_raw_loop(&raw, 300_000, chunks)
            .expect("downsample")
            .into_iter()
            .map(|m| {
                aggr_chunk_to_pb(&m.chunk, m.min_time, m.max_time, &[AggrType::Counter])
                    .expect("counter set")
            })
            .collect();
        (raw, wire)
    }

    #[test]
    fn the_counter_aggregate_decodes_to_one_monotonic_counter_across_resets_and_chunks() {
        for pieces in [1, 3] {
            let (raw, mut wire) = counter_chunks(pieces);
            // Stores may send chunks out of order; the reader orders them.
            wire.reverse();
            let got = decode_chunks_as(&wire, 0, i64::MAX, AggrRead::Counter).expect("decode");
            assert!(
                got.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{got:?}"
            );
            // Every point lies on the reset-corrected line: 60 per minute from the first sample.
            for (t, v) in &got {
                let minutes = (t + 1 - raw[0].0 - 1) / 60_000;
                assert_eq!(*v, 60.0 * (minutes + 1) as f64, "at {t} ({pieces} chunks)");
            }
            assert_eq!(got.last().map(|p| p.0), raw.last().map(|p| p.0));
        }
    }

    #[test]
    fn functions_pick_aggregates_as_thanos_does() {
        let cases = [
            ("min", AggrRead::Min),
            ("min_over_time", AggrRead::Min),
            ("max_over_time", AggrRead::Max),
            ("count", AggrRead::Count),
            ("count_values", AggrRead::Count),
            ("sum_over_time", AggrRead::Sum),
            ("sum", AggrRead::Average),
            ("rate", AggrRead::Counter),
            ("resets", AggrRead::Counter),
            ("avg_over_time", AggrRead::Average),
            ("minute", AggrRead::Average),
        ];
        for (f, want) in cases {
            assert_eq!(AggrRead::for_func(Some(f)), want, "{f}");
        }
        assert_eq!(AggrRead::for_func(None), AggrRead::Average);
        assert_eq!(
            AggrRead::Average.to_pb(),
            vec![pb::Aggr::Count as i32, pb::Aggr::Sum as i32]
        );
    }

    #[test]
    fn a_chunk_without_the_aggregate_read_is_an_error_naming_it() {
        let (_, wire) = counter_chunks(1);
        let e = decode_chunks_as(&wire, 0, i64::MAX, AggrRead::Max).expect_err("no max");
        assert!(e.to_string().contains("no max aggregate"), "{e}");
        assert!(matches!(
            aggregates_from_pb(&[7]),
            Err(ConvertError::UnknownAggregate(7))
        ));
        assert_eq!(
            aggregates_from_pb(&[0, 3, 3]).expect("known"),
            vec![AggrType::Min]
        );
    }

    #[test]
    fn matchers_round_trip_and_bad_regexes_are_errors() {
        for m in [
            Matcher::equal("a", "b"),
            Matcher::not_equal("a", "b"),
            Matcher::regex("a", "b.*").expect("regex"),
            Matcher::not_regex("a", "b|c").expect("regex"),
        ] {
            let back = matcher_from_pb(&matcher_to_pb(&m)).expect("convert");
            assert_eq!(
                (back.kind(), back.name(), back.value()),
                (m.kind(), m.name(), m.value())
            );
        }
        let bad = pb::LabelMatcher {
            r#type: label_matcher::Type::Re as i32,
            name: "job".into(),
            value: "(".into(),
        };
        assert!(matches!(
            matcher_from_pb(&bad),
            Err(ConvertError::BadMatcher(_))
        ));
        let unknown = pb::LabelMatcher { r#type: 9, ..bad };
        assert!(matches!(
            matcher_from_pb(&unknown),
            Err(ConvertError::UnknownMatcherType { value: 9, .. })
        ));
    }

    #[test]
    fn wire_labels_are_sorted_on_arrival() {
        let l = labels_from_pb(vec![
            pb::Label {
                name: "b".into(),
                value: "2".into(),
            },
            pb::Label {
                name: "a".into(),
                value: "1".into(),
            },
        ]);
        assert_eq!(l, Labels::from_pairs([("a", "1"), ("b", "2")]));
        assert_eq!(labels_to_pb(&l)[0].name, "a");
    }
}
