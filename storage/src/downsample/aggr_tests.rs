#![allow(clippy::unwrap_used)]

use super::*;
use crate::chunkenc::XorAppender;
use proptest::prelude::*;

fn xor(samples: &[(i64, f64)]) -> Chunk {
    let mut app = XorAppender::new();
    for &(t, v) in samples {
        app.append(t, v).unwrap();
    }
    app.finish()
}

#[test]
fn layout_is_uvarint_length_encoding_byte_then_data_per_aggregate() {
    // A one-sample XOR chunk: BE16 count 1, zigzag varint of t=99 (198 = c6 01), then 4.0,
    // then the empty byte Prometheus' bit stream keeps open after byte-aligned writes.
    let count = xor(&[(99, 4.0)]);
    assert_eq!(
        count.data.as_ref(),
        &[0, 1, 0xc6, 0x01, 0x40, 0x10, 0, 0, 0, 0, 0, 0, 0]
    );
    let c = AggrChunk::encode([Some(&count), None, None, None, None]);
    let mut want = vec![13u8, 0x01];
    want.extend_from_slice(&count.data);
    want.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(c.bytes().as_ref(), want.as_slice());
    assert_eq!(c.get(AggrType::Count).unwrap(), count);
    assert_eq!(c.samples(AggrType::Count).unwrap(), vec![(99, 4.0)]);
    assert_eq!(
        c.get(AggrType::Sum),
        Err(AggrError::NotExist(AggrType::Sum))
    );
    assert_eq!(
        c.get(AggrType::Counter),
        Err(AggrError::NotExist(AggrType::Counter))
    );
    assert_eq!(c.num_samples(), 1);
}

#[test]
fn lengths_of_128_bytes_or_more_take_two_varint_bytes() {
    let samples: Vec<(i64, f64)> = (0..60)
        .map(|i| (i * 15_000, (i * i) as f64 * 1.37))
        .collect();
    let sum = xor(&samples);
    assert!(sum.data.len() >= 128, "{}", sum.data.len());
    let c = AggrChunk::encode([None, Some(&sum), None, None, None]);
    let b = c.bytes();
    assert_eq!(b[0], 0);
    let len = sum.data.len();
    assert_eq!(&b[1..3], &[(len as u8) | 0x80, (len >> 7) as u8]);
    assert_eq!(b[3], 0x01);
    assert_eq!(c.samples(AggrType::Sum).unwrap(), samples);
}

#[test]
fn corrupt_chunks_are_errors_naming_the_aggregate() {
    assert!(matches!(
        AggrChunk::from_bytes(vec![]).get(AggrType::Count),
        Err(AggrError::Truncated {
            aggr: AggrType::Count,
            offset: 0,
            ..
        })
    ));
    // Sum claims 5 bytes but only 2 follow.
    let e = AggrChunk::from_bytes(vec![0, 5, 1, 0])
        .get(AggrType::Sum)
        .unwrap_err();
    assert!(
        matches!(
            e,
            AggrError::Truncated {
                aggr: AggrType::Sum,
                offset: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("sum"), "{e}");
    let e = AggrChunk::from_bytes(vec![2, 9, 0, 0])
        .get(AggrType::Count)
        .unwrap_err();
    assert_eq!(
        e,
        AggrError::UnknownEncoding {
            aggr: AggrType::Count,
            byte: 9
        }
    );
    // An overlong varint.
    let e = AggrChunk::from_bytes(vec![0xff; 11])
        .get(AggrType::Count)
        .unwrap_err();
    assert!(matches!(e, AggrError::Truncated { .. }), "{e}");
    // The XOR data itself is broken: the sub-chunk error says which aggregate.
    let c = AggrChunk::from_bytes(vec![3, 1, 0, 5, 0xff, 0, 0, 0, 0]);
    let e = c.samples(AggrType::Count).unwrap_err();
    assert!(
        matches!(
            e,
            AggrError::SubChunk {
                aggr: AggrType::Count,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(c.num_samples(), 5);
}

#[test]
fn histogram_counters_are_recognised_and_refused_as_floats() {
    let h = Chunk::new(Encoding::FloatHistogram, vec![0u8, 1, 0xc0]);
    let count = xor(&[(1, 1.0)]);
    let c = AggrChunk::encode([Some(&count), Some(&h), None, None, Some(&h)]);
    assert!(c.is_histogram());
    assert_eq!(c.get(AggrType::Counter).unwrap(), h);
    assert_eq!(
        c.samples(AggrType::Sum),
        Err(AggrError::SubChunk {
            aggr: AggrType::Sum,
            source: ChunkError::Unsupported(Encoding::FloatHistogram)
        })
    );
    let plain = AggrChunk::encode([Some(&count), None, None, None, Some(&count)]);
    assert!(!plain.is_histogram());
}

fn arb_part() -> impl Strategy<Value = Option<Chunk>> {
    prop_oneof![
        Just(None),
        proptest::collection::vec((0i64..1 << 40, any::<f64>()), 1..200).prop_map(|mut s| {
            s.sort_by_key(|x| x.0);
            Some(xor(&s))
        }),
        (proptest::collection::vec(any::<u8>(), 1..300), 2u8..4).prop_map(|(d, e)| {
            let enc = Encoding::from_byte(e).unwrap();
            Some(Chunk::new(enc, d))
        }),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_gives_back_every_part(parts in proptest::array::uniform5(arb_part())) {
        let refs: [Option<&Chunk>; 5] = std::array::from_fn(|i| parts[i].as_ref());
        let c = AggrChunk::encode(refs);
        let back = c.parts().unwrap();
        prop_assert_eq!(&back, &parts);
        for a in AggrType::ALL {
            match &parts[a.index()] {
                Some(p) => prop_assert_eq!(&c.get(a).unwrap(), p),
                None => prop_assert_eq!(c.get(a), Err(AggrError::NotExist(a))),
            }
        }
        // Re-encoding what was decoded gives the same bytes.
        let again = AggrChunk::encode(std::array::from_fn(|i| back[i].as_ref()));
        prop_assert_eq!(again.bytes(), c.bytes());
    }

    #[test]
    fn decoding_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let c = AggrChunk::from_bytes(data);
        let _ = c.parts();
        for a in AggrType::ALL {
            let _ = c.samples(a);
        }
        let _ = c.num_samples();
        let _ = c.is_histogram();
    }
}
