#![allow(clippy::unwrap_used)]

use super::*;
use crate::chunkenc::bstream::BitWriter;
use crate::chunkenc::STALE_NAN_BITS;
use crate::encoding::uvarint_len;
use proptest::prelude::*;

const T0: i64 = 1_700_000_000_000;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut a = XorAppender::new();
    for &(t, v) in samples {
        a.append(t, v).unwrap();
    }
    assert_eq!(a.num_samples(), samples.len());
    let size = a.size();
    let c = a.finish();
    assert_eq!(c.data.len(), size);
    c.data.to_vec()
}

fn bits_equal(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
}

#[test]
fn one_sample_chunk_matches_prometheus_with_trailing_empty_byte() {
    let data = encode(&[(T0, 5.0)]);
    assert_eq!(data, hex("0001 80a0abfef962 4014000000000000 00"));
    assert_eq!(data.len(), 17);
    assert_eq!(decode_xor(&data).unwrap(), vec![(T0, 5.0)]);
}

#[test]
fn two_sample_chunk_matches_prometheus() {
    let data = encode(&[(T0, 1.0), (T0 + 15_000, 1.0)]);
    assert_eq!(data, hex("0002 80a0abfef962 3ff0000000000000 9875 00"));
    assert_eq!(
        decode_xor(&data).unwrap(),
        vec![(T0, 1.0), (T0 + 15_000, 1.0)]
    );
}

#[test]
fn empty_chunk_is_just_a_zero_count() {
    assert_eq!(encode(&[]), vec![0, 0]);
    assert_eq!(decode_xor(&[0, 0]).unwrap(), vec![]);
}

/// Bytes of a three-sample chunk with equal values whose third sample has `dod`.
fn len_with_dod(dod: i64) -> usize {
    let d1 = 15_000i64;
    let data = encode(&[(T0, 1.0), (T0 + d1, 1.0), (T0 + 2 * d1 + dod, 1.0)]);
    assert_eq!(
        decode_xor(&data).unwrap()[2].0,
        T0 + 2 * d1 + dod,
        "dod {dod}"
    );
    data.len()
}

#[test]
fn dod_buckets_are_asymmetric_like_prometheus() {
    // Bytes before sample 2: count, varint t0 (6), v0, uvarint d1 (2), then 1 value bit.
    let head = 2 + 6 + 8 + uvarint_len(15_000);
    let expect = |dod_bits: usize| head + (1 + dod_bits + 1).div_ceil(8);
    for (dod, bits) in [
        (0, 1),
        (1, 16),
        (8192, 16),
        (-8191, 16),
        (-8192, 20),
        (8193, 20),
        (65536, 20),
        (-65535, 20),
        (-65536, 24),
        (524_288, 24),
        (-524_287, 24),
        (-524_288, 68),
        (524_289, 68),
        (i64::MAX / 4, 68),
    ] {
        assert_eq!(len_with_dod(dod), expect(bits), "dod {dod}");
    }
}

#[test]
fn sixty_four_significant_bits_are_written_as_zero() {
    let v0 = 1.0f64;
    let v1 = f64::from_bits(v0.to_bits() ^ 0x8000_0000_0000_0001);
    let data = encode(&[(T0, v0), (T0 + 1, v1)]);
    // After the d1 byte: bits 1 1, L = 00000, M = 000000, then 64 payload bits.
    let ctl = &data[2 + 6 + 8 + 1..];
    assert_eq!(ctl[0], 0b1100_0000);
    assert_eq!(ctl[1] & 0b1111_1000, 0);
    assert_eq!(
        data.len(),
        2 + 6 + 8 + 1 + (2 + 5 + 6 + 64usize).div_ceil(8)
    );
    let got = decode_xor(&data).unwrap();
    assert_eq!(got[1].1.to_bits(), v1.to_bits());
}

#[test]
fn leading_zeros_are_clamped_to_31() {
    let v0 = 1.0f64;
    let v1 = f64::from_bits(v0.to_bits() ^ 1);
    let data = encode(&[(T0, v0), (T0 + 1, v1)]);
    let ctl = u16::from_be_bytes([data[17], data[18]]);
    // 1 1 L=11111 M=100001 (33 bits: 64 - 31 - 0)
    assert_eq!(ctl >> 3, 0b1_1111_1110_0001);
    assert_eq!(decode_xor(&data).unwrap()[1].1.to_bits(), v1.to_bits());
}

#[test]
fn reused_window_of_zero_zero_reads_64_bits() {
    // Prometheus re-opening a one-sample chunk emits `10` with the decoder's (0, 0) window.
    let mut w = BitWriter::with_prefix(&[0, 2], 32);
    w.write_bytes(&[0x02]); // varint t0 = 1
    w.write_bits(2.0f64.to_bits(), 64);
    w.write_bytes(&[0x05]); // d1 = 5
    w.write_bits(0b10, 2);
    w.write_bits(2.0f64.to_bits() ^ 3.5f64.to_bits(), 64);
    let data = w.finish();
    assert_eq!(decode_xor(&data).unwrap(), vec![(1, 2.0), (6, 3.5)]);
}

#[test]
fn count_larger_than_stream_is_an_error_not_garbage() {
    let samples: Vec<_> = (0..10).map(|i| (T0 + i * 15_000, i as f64)).collect();
    let mut data = encode(&samples);
    data[0] = 0xff;
    let mut it = XorIterator::new(&data);
    let mut ok = 0;
    let err = loop {
        match it.next() {
            Some(Ok(_)) => ok += 1,
            Some(Err(e)) => break e,
            None => panic!("ended without error after {ok}"),
        }
    };
    assert!(ok >= 10, "{ok}");
    assert!(
        matches!(err, ChunkError::Corrupt { reason, .. } if reason.contains("exceeds")),
        "{err}"
    );
    assert!(it.next().is_none(), "fused after an error");
}

#[test]
fn every_truncation_fails_cleanly() {
    let samples: Vec<_> = (0..50)
        .map(|i| (T0 + i * 15_000 + (i % 3) * 7, (i * i) as f64 * 0.37))
        .collect();
    let data = encode(&samples);
    for cut in 0..data.len() - 1 {
        assert!(decode_xor(&data[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn impossible_value_window_is_an_error() {
    let mut w = BitWriter::with_prefix(&[0, 2], 32);
    w.write_bytes(&[0x02]);
    w.write_bits(0, 64);
    w.write_bytes(&[0x05]);
    w.write_bits(0b11, 2);
    w.write_bits(31, 5);
    w.write_bits(63, 6); // 31 + 63 > 64
    w.write_bits(0, 64);
    let e = decode_xor(&w.finish()).unwrap_err();
    assert!(e.to_string().contains("window"), "{e}");
    assert!(matches!(e, ChunkError::Corrupt { sample: 1, .. }), "{e:?}");
}

#[test]
fn short_header_is_an_error() {
    for data in [
        &[][..],
        &[0][..],
        &[0, 1][..],
        &[0, 1, 0x80][..],
        &[0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0][..],
    ] {
        assert!(decode_xor(data).is_err(), "{data:?}");
    }
}

#[test]
fn appender_refuses_the_65536th_sample() {
    let mut a = XorAppender::new();
    for i in 0..65_535 {
        a.append(i, 1.0).unwrap();
    }
    assert_eq!(a.append(65_535, 1.0), Err(ChunkError::Full));
    let c = a.finish();
    assert_eq!(c.num_samples(), Ok(65_535));
    assert_eq!(c.samples().unwrap().len(), 65_535);
}

fn special_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::from_bits(0x7ff8_0000_0000_0001)),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        (0u32..1000).prop_map(f64::from),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(15_000i64),
        0i64..20,
        0i64..9_000,
        0i64..70_000,
        0i64..600_000,
        0i64..(1 << 40),
        0i64..i64::MAX / 70_000,
    ]
}

proptest! {
    #[test]
    fn xor_round_trips_bit_exact(
        t0 in prop_oneof![any::<i64>(), -(1i64 << 45)..(1i64 << 45)],
        steps in proptest::collection::vec((step(), special_value()), 0..300),
        v0 in special_value(),
    ) {
        let mut samples = vec![(t0, v0)];
        let mut t = t0;
        for (d, v) in steps {
            t = t.wrapping_add(d);
            samples.push((t, v));
        }
        let data = encode(&samples);
        let got = decode_xor(&data).unwrap();
        prop_assert!(bits_equal(&got, &samples));
        let chunk = Chunk::new(Encoding::Xor, data);
        prop_assert_eq!(chunk.num_samples(), Ok(samples.len() as u16));
    }

    #[test]
    fn xor_round_trips_arbitrary_timestamps(
        samples in proptest::collection::vec((any::<i64>(), any::<u64>()), 1..100),
    ) {
        let samples: Vec<_> = samples.into_iter().map(|(t, v)| (t, f64::from_bits(v))).collect();
        let got = decode_xor(&encode(&samples)).unwrap();
        prop_assert!(bits_equal(&got, &samples));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_xor(&data);
        let n = XorIterator::new(&data).take(70_000).count();
        prop_assert!(n <= 65_536);
    }

    #[test]
    fn decoding_mutated_chunks_never_panics(
        samples in proptest::collection::vec((0i64..100_000, any::<u64>()), 1..60),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..5),
    ) {
        let mut t = 0;
        let samples: Vec<_> = samples.into_iter().map(|(d, v)| { t += d; (t, f64::from_bits(v)) }).collect();
        let mut data = encode(&samples);
        let n = data.len();
        for (i, x) in flips {
            data[i % n] ^= x;
        }
        let _ = decode_xor(&data);
    }
}

/// Samples as bits, and the error that ended decoding.
type Decoded = (Vec<(i64, u64)>, Option<ChunkError>);

/// Decodes with each API: the iterator, batches, and the bulk decoder; all must agree.
fn decode_three_ways(data: &[u8]) -> [Decoded; 3] {
    let bits = |v: Vec<(i64, f64)>| v.into_iter().map(|(t, v)| (t, v.to_bits())).collect();
    let mut a = Vec::new();
    let mut a_err = None;
    for s in XorIterator::new(data) {
        match s {
            Ok(s) => a.push(s),
            Err(e) => a_err = Some(e),
        }
    }
    let mut b = Vec::new();
    let mut it = XorIterator::new(data);
    // Take a few with next() first so mixing the two is covered.
    let mut b_err = None;
    for s in it.by_ref().take(3) {
        match s {
            Ok(s) => b.push(s),
            Err(e) => b_err = Some(e),
        }
    }
    if b_err.is_none() {
        b_err = loop {
            match it.next_batch() {
                Ok(Some(batch)) => b.extend_from_slice(batch),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
    }
    let mut c = Vec::new();
    let c_err = XorIterator::new(data).decode_into(&mut c).err();
    [(bits(a), a_err), (bits(b), b_err), (bits(c), c_err)]
}

proptest! {
    #[test]
    fn iterator_batches_and_bulk_decoding_agree(
        samples in proptest::collection::vec((0i64..40_000, 0u64..4, any::<u64>()), 1..200),
        flip in proptest::option::of((any::<usize>(), any::<u8>())),
        cut in proptest::option::of(any::<usize>()),
    ) {
        // Values drawn from a few shapes so runs, reuse and fresh windows all occur.
        let mut t = 0;
        let mut v = 0.0;
        let samples: Vec<_> = samples.into_iter().map(|(d, kind, x)| {
            t += if d % 3 == 0 { 15_000 } else { d };
            v = match kind { 0 => v, 1 => v + (x % 5) as f64, 2 => f64::from_bits(x), _ => -v };
            (t, v)
        }).collect();
        let mut data = encode(&samples);
        if let Some((i, x)) = flip {
            let n = data.len();
            data[i % n] ^= x;
        }
        if let Some(c) = cut {
            data.truncate(c % (data.len() + 1));
        }
        let [a, b, c] = decode_three_ways(&data);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
        if flip.is_none() && cut.is_none() {
            prop_assert!(a.1.is_none());
            prop_assert!(bits_equal(&decode_xor(&data).unwrap(), &samples));
        }
    }
}
