//! Conversions between the StoreAPI's wire messages and Strata's types: labels, matchers and
//! chunks (raw XOR chunks travel exactly as a block stores them, sample-count header included).

use proto::thanos::{self as pb, label_matcher, AggrChunk};
use storage::block::tombstones::Intervals;
use storage::chunkenc::xor::XorAppender;
use storage::chunkenc::XorIterator;
use storage::chunkenc::{Chunk, ChunkError, Encoding};
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
            data: chunk.data.to_vec(),
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

/// Decodes a series' raw chunks into its samples in `[mint, maxt]`, in time order; chunks that
/// overlap (several stores or blocks) keep the first sample of each timestamp.
pub fn decode_chunks(
    chunks: &[AggrChunk],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(i64, f64)>, ConvertError> {
    // Chunks decode straight into one buffer, filtered in place; only chunks that overlap
    // (rare: several blocks or stores) need the merge.
    let mut out: Vec<(i64, f64)> = Vec::new();
    let mut starts = Vec::with_capacity(chunks.len());
    let mut ordered = true;
    for c in chunks {
        if c.max_time < mint || c.min_time > maxt {
            continue;
        }
        let raw = c.raw.as_ref().ok_or(ConvertError::NoRawChunk {
            min_time: c.min_time,
            max_time: c.max_time,
        })?;
        let corrupt = |source| ConvertError::Chunk {
            min_time: c.min_time,
            max_time: c.max_time,
            source,
        };
        match pb::chunk::Encoding::try_from(raw.r#type) {
            Ok(pb::chunk::Encoding::Xor) => {}
            Ok(pb::chunk::Encoding::Histogram) => {
                return Err(corrupt(ChunkError::Unsupported(Encoding::Histogram)))
            }
            Ok(pb::chunk::Encoding::FloatHistogram) => {
                return Err(corrupt(ChunkError::Unsupported(Encoding::FloatHistogram)))
            }
            Err(_) => return Err(ConvertError::UnknownEncoding(raw.r#type)),
        }
        let start = out.len();
        XorIterator::new(&raw.data)
            .decode_into(&mut out)
            .map_err(corrupt)?;
        let mut w = start;
        for r in start..out.len() {
            let s = out[r];
            if s.0 >= mint && s.0 <= maxt {
                out[w] = s;
                w += 1;
            }
        }
        out.truncate(w);
        if w > start {
            if start > 0 && out[start - 1].0 >= out[start].0 {
                ordered = false;
            }
            starts.push(start);
        }
    }
    if ordered {
        return Ok(out);
    }
    let mut runs: Vec<Vec<(i64, f64)>> = Vec::with_capacity(starts.len());
    for (i, &s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(out.len());
        runs.push(out.get(s..e).unwrap_or_default().to_vec());
    }
    Ok(crate::query::merge::merge_samples(runs))
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
                raw: Some(pb::Chunk { r#type: kind, data, hash: 0 }),
                ..Default::default()
            };
            let _ = decode_chunks(&[wire], 0, 10);
        }
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
