//! The WAL's record format. A segment is the 8-byte magic [`MAGIC`] followed by frames:
//!
//! ```text
//! frame    = len:u32le  crc:u32le  payload[len]      crc = CRC32C (Castagnoli) of payload
//! payload  = 0x01 ts:i64le n:u32le series*n          samples of one evaluation at ts
//!          | 0x02 before:i64le                       samples before `before` are in blocks
//! series   = k:u32le (name_len:u32le name value_len:u32le value)*k  v:u64le (f64 bits)
//! ```
//!
//! Label names and values are UTF-8; a frame longer than [`MAX_PAYLOAD`] is refused as
//! corrupt rather than allocated. Kept free of I/O so the fuzz target compiles it alone.

use storage::labels::Labels;

/// First bytes of every segment file.
pub const MAGIC: &[u8; 8] = b"STRWAL1\n";
/// Largest payload a frame may declare.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Frame header: length and checksum.
pub const HEADER: usize = 8;

const SAMPLES: u8 = 1;
const SEALED: u8 = 2;

/// One WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Results of one evaluation, all at `ts`.
    Samples {
        /// Evaluation timestamp (ms).
        ts: i64,
        /// Series and their value at `ts`.
        series: Vec<(Labels, f64)>,
    },
    /// Every sample before `before` is in a sealed block.
    Sealed {
        /// End (exclusive) of the sealed range.
        before: i64,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes end inside the frame (a torn write when at the end of the last segment).
    #[error("frame needs {needed} bytes, {have} left")]
    Incomplete {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes there are.
        have: usize,
    },
    /// The declared length is impossible.
    #[error("frame length {0} is over the limit of {MAX_PAYLOAD} bytes or empty")]
    BadLength(usize),
    /// The payload does not match its checksum.
    #[error("checksum mismatch: frame says {expected:#010x}, payload has {actual:#010x}")]
    Checksum {
        /// The frame's checksum.
        expected: u32,
        /// The payload's.
        actual: u32,
    },
    /// The payload passed its checksum but does not decode.
    #[error("bad payload: {0}")]
    Payload(String),
}

/// Appends `record` as one frame to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match record {
        Record::Samples { ts, series } => {
            out.push(SAMPLES);
            out.extend_from_slice(&ts.to_le_bytes());
            out.extend_from_slice(&(series.len() as u32).to_le_bytes());
            for (labels, v) in series {
                out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
                for l in labels.iter() {
                    put_str(out, &l.name);
                    put_str(out, &l.value);
                }
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        Record::Sealed { before } => {
            out.push(SEALED);
            out.extend_from_slice(&before.to_le_bytes());
        }
    }
    let len = (out.len() - start - HEADER) as u32;
    let crc = crc32c::crc32c(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Decodes the frame at the start of `buf`: the record and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Record, usize), FrameError> {
    if buf.len() < HEADER {
        return Err(FrameError::Incomplete {
            needed: HEADER,
            have: buf.len(),
        });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let expected = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Err(FrameError::BadLength(len));
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Err(FrameError::Incomplete {
            needed: HEADER + len,
            have: buf.len(),
        });
    };
    let actual = crc32c::crc32c(payload);
    if actual != expected {
        return Err(FrameError::Checksum { expected, actual });
    }
    let record = decode_payload(payload).map_err(FrameError::Payload)?;
    Ok((record, HEADER + len))
}

fn decode_payload(p: &[u8]) -> Result<Record, String> {
    let mut r = Reader { buf: p, pos: 0 };
    let record = match r.u8()? {
        SAMPLES => {
            let ts = r.i64()?;
            let n = r.u32()? as usize;
            // Each series takes at least 12 bytes: a count and a value.
            if n > r.left() / 12 {
                return Err(format!("{n} series cannot fit in {} bytes", r.left()));
            }
            let mut series = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.u32()? as usize;
                if k > r.left() / 8 {
                    return Err(format!("{k} labels cannot fit in {} bytes", r.left()));
                }
                let mut pairs = Vec::with_capacity(k);
                for _ in 0..k {
                    pairs.push((r.str()?, r.str()?));
                }
                let labels = Labels::from_pairs(pairs);
                if labels.len() != k {
                    return Err("a series repeats a label name".into());
                }
                series.push((labels, f64::from_bits(r.u64()?)));
            }
            Record::Samples { ts, series }
        }
        SEALED => Record::Sealed { before: r.i64()? },
        kind => return Err(format!("unknown record type {kind}")),
    };
    if r.left() != 0 {
        return Err(format!("{} bytes after the record", r.left()));
    }
    Ok(record)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let s = self
            .buf
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or_else(|| format!("ends at byte {} inside a {n}-byte field", self.buf.len()))?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }

    fn str(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| "a label is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples(ts: i64, series: Vec<(Labels, f64)>) -> Record {
        Record::Samples { ts, series }
    }

    fn same(a: &Record, b: &Record) -> bool {
        match (a, b) {
            (Record::Samples { ts: t1, series: s1 }, Record::Samples { ts: t2, series: s2 }) => {
                t1 == t2
                    && s1.len() == s2.len()
                    && s1
                        .iter()
                        .zip(s2)
                        .all(|((l1, v1), (l2, v2))| l1 == l2 && v1.to_bits() == v2.to_bits())
            }
            _ => a == b,
        }
    }

    fn arb_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{0,12}", 0..5)
            .prop_map(Labels::from_pairs)
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            (
                any::<i64>(),
                proptest::collection::vec((arb_labels(), any::<f64>()), 0..8)
            )
                .prop_map(|(ts, s)| samples(ts, s)),
            any::<i64>().prop_map(|before| Record::Sealed { before }),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip_through_frames(records in proptest::collection::vec(arb_record(), 1..6)) {
            let mut buf = Vec::new();
            for r in &records {
                encode(r, &mut buf);
            }
            let mut pos = 0;
            for r in &records {
                let (got, n) = decode(&buf[pos..]).expect("decodes");
                prop_assert!(same(&got, r), "{got:?} != {r:?}");
                pos += n;
            }
            prop_assert_eq!(pos, buf.len());
        }

        #[test]
        fn a_cut_frame_is_incomplete_and_a_flipped_byte_is_caught(r in arb_record(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            encode(&r, &mut buf);
            let at = cut.index(buf.len());
            let is_incomplete = matches!(decode(&buf[..at]), Err(FrameError::Incomplete { .. }));
            prop_assert!(is_incomplete);
            let i = flip.index(buf.len());
            buf[i] ^= 0x40;
            prop_assert!(decode(&buf).is_err(), "flipped byte {i} went unnoticed");
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn a_valid_checksum_over_a_bad_payload_is_a_payload_error() {
        let payload = [SEALED, 1, 2, 3];
        let mut buf = (payload.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        assert!(matches!(decode(&buf), Err(FrameError::Payload(_))));
        let huge = ((MAX_PAYLOAD + 1) as u32).to_le_bytes();
        let mut buf = huge.to_vec();
        buf.extend_from_slice(&[0; 4]);
        assert_eq!(decode(&buf), Err(FrameError::BadLength(MAX_PAYLOAD + 1)));
    }
}
