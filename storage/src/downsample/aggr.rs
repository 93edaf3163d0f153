//! Thanos' aggregate chunk (`downsample.AggrChunk`), byte-compatible: a chunk record with
//! encoding byte 0xff whose data is, for count, sum, min, max and counter in that order, a
//! uvarint length then (when the length is not 0) the sub-chunk's encoding byte and its
//! `length` bytes of data. A length of 0 marks an aggregate that is not set.

use crate::chunkenc::{is_stale_nan, Chunk, ChunkError, Encoding};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// The chunk encoding byte of an aggregate chunk (Thanos' `ChunkEncAggr`).
pub const CHUNK_ENC_AGGR: u8 = 0xff;

/// One of the five aggregates, numbered as in Thanos (`AggrType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggrType {
    /// Number of raw samples in the window.
    Count = 0,
    /// Sum of the raw samples in the window.
    Sum = 1,
    /// Smallest raw sample in the window.
    Min = 2,
    /// Largest raw sample in the window.
    Max = 3,
    /// Counter value with resets applied, plus the chunk's first and last raw values.
    Counter = 4,
}

impl AggrType {
    /// All aggregates in encoding order.
    pub const ALL: [AggrType; 5] = [
        AggrType::Count,
        AggrType::Sum,
        AggrType::Min,
        AggrType::Max,
        AggrType::Counter,
    ];

    /// Thanos' name (`count`, `sum`, `min`, `max`, `counter`).
    pub fn name(self) -> &'static str {
        match self {
            AggrType::Count => "count",
            AggrType::Sum => "sum",
            AggrType::Min => "min",
            AggrType::Max => "max",
            AggrType::Counter => "counter",
        }
    }

    /// Position in the chunk (0 to 4).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AggrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an aggregate chunk could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggrError {
    /// The bytes end inside a length or a sub-chunk.
    #[error(
        "aggregate chunk truncated at byte {offset} while reading the {aggr} aggregate: {reason}"
    )]
    Truncated {
        /// Aggregate being read.
        aggr: AggrType,
        /// Byte offset in the chunk data.
        offset: usize,
        /// What was missing.
        reason: &'static str,
    },
    /// A sub-chunk has an encoding byte no Prometheus chunk has.
    #[error("the {aggr} aggregate has an unknown sub-chunk encoding byte {byte:#04x}")]
    UnknownEncoding {
        /// Aggregate being read.
        aggr: AggrType,
        /// The byte found.
        byte: u8,
    },
    /// The requested aggregate is not set in this chunk (Thanos' `ErrAggrNotExist`).
    #[error("aggregate {0} does not exist in this chunk")]
    NotExist(AggrType),
    /// The sub-chunk's samples could not be decoded.
    #[error("the {aggr} aggregate's sub-chunk: {source}")]
    SubChunk {
        /// Aggregate being read.
        aggr: AggrType,
        /// The decoder's error.
        source: ChunkError,
    },
}

/// An aggregate chunk's data (what follows the 0xff encoding byte in a chunk record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggrChunk {
    data: Bytes,
}

impl AggrChunk {
    /// Wraps chunk data read from a segment record with encoding byte [`CHUNK_ENC_AGGR`].
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        AggrChunk { data: data.into() }
    }

    /// Encodes the five sub-chunks (indexed by [`AggrType::index`]); `None` is an unset
    /// aggregate. Byte-identical to Thanos' `EncodeAggrChunk`.
    pub fn encode(parts: [Option<&Chunk>; 5]) -> Self {
        let size: usize = parts
            .iter()
            .map(|p| p.map_or(1, |c| 10 + 1 + c.data.len()))
            .sum();
        let mut b = BytesMut::with_capacity(size);
        for part in parts {
            match part {
                None => b.put_u8(0),
                Some(c) => {
                    put_uvarint(&mut b, c.data.len() as u64);
                    b.put_u8(c.encoding.as_byte());
                    b.extend_from_slice(&c.data);
                }
            }
        }
        AggrChunk { data: b.freeze() }
    }

    /// The chunk data, to be written in a record with encoding byte [`CHUNK_ENC_AGGR`].
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// All five sub-chunks in order (`None` where unset). Bytes after the fifth are ignored,
    /// as Thanos does.
    pub fn parts(&self) -> Result<[Option<Chunk>; 5], AggrError> {
        let mut out: [Option<Chunk>; 5] = Default::default();
        let mut pos = 0usize;
        for aggr in AggrType::ALL {
            let (part, next) = self.part_at(aggr, pos)?;
            out[aggr.index()] = part;
            pos = next;
        }
        Ok(out)
    }

    /// The sub-chunk of `aggr`; [`AggrError::NotExist`] when it is unset.
    pub fn get(&self, aggr: AggrType) -> Result<Chunk, AggrError> {
        let mut pos = 0usize;
        for a in AggrType::ALL {
            let (part, next) = self.part_at(a, pos)?;
            if a == aggr {
                return part.ok_or(AggrError::NotExist(aggr));
            }
            pos = next;
        }
        Err(AggrError::NotExist(aggr))
    }

    /// The float samples of one aggregate: what a store answers a query for that aggregate
    /// with. Histogram sub-chunks are [`AggrError::SubChunk`] with
    /// [`ChunkError::Unsupported`].
    pub fn samples(&self, aggr: AggrType) -> Result<Vec<(i64, f64)>, AggrError> {
        self.get(aggr)?
            .samples()
            .map_err(|source| AggrError::SubChunk { aggr, source })
    }

    /// Samples of the count aggregate, 0 when it is unreadable (Thanos' `NumSamples`).
    pub fn num_samples(&self) -> usize {
        self.get(AggrType::Count)
            .and_then(|c| {
                c.num_samples().map_err(|source| AggrError::SubChunk {
                    aggr: AggrType::Count,
                    source,
                })
            })
            .map_or(0, usize::from)
    }

    /// True when the counter sub-chunk holds native histograms (Thanos' `isHistogramAggrChunk`).
    pub fn is_histogram(&self) -> bool {
        self.get(AggrType::Counter)
            .is_ok_and(|c| c.encoding.is_histogram())
    }

    fn part_at(&self, aggr: AggrType, pos: usize) -> Result<(Option<Chunk>, usize), AggrError> {
        let b = self.data.get(pos..).unwrap_or_default();
        let truncated = |offset, reason| AggrError::Truncated {
            aggr,
            offset,
            reason,
        };
        let (len, n) = uvarint(b).ok_or_else(|| truncated(pos, "bad or missing uvarint length"))?;
        if len == 0 {
            return Ok((None, pos + n));
        }
        let start = pos + n;
        let need = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .filter(|&need| need <= self.data.len() - start)
            .ok_or_else(|| truncated(start, "sub-chunk longer than the remaining bytes"))?;
        let byte = self.data[start];
        let encoding =
            Encoding::from_byte(byte).map_err(|_| AggrError::UnknownEncoding { aggr, byte })?;
        let chunk = Chunk::new(encoding, self.data.slice(start + 1..start + need));
        Ok((Some(chunk), start + need))
    }
}

/// Thanos' `expandXorChunkIterator` over decoded samples: drops staleness markers and
/// samples before the previous kept one (the previous starts at timestamp 0).
pub(crate) fn expand_xor(samples: &[(i64, f64)], out: &mut Vec<(i64, f64)>) {
    let mut last_t = 0i64;
    for &(t, v) in samples {
        if is_stale_nan(v) {
            continue;
        }
        if t >= last_t {
            out.push((t, v));
            last_t = t;
        }
    }
}

fn put_uvarint(b: &mut BytesMut, mut x: u64) {
    while x >= 0x80 {
        b.put_u8((x as u8) | 0x80);
        x >>= 7;
    }
    b.put_u8(x as u8);
}

/// Go's `binary.Uvarint`: the value and bytes read, `None` on a short or overlong varint.
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    let mut s = 0u32;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return None;
            }
            return Some((x | (u64::from(byte) << s), i + 1));
        }
        x |= u64::from(byte & 0x7f) << s;
        s += 7;
    }
    None
}

#[cfg(test)]
#[path = "aggr_tests.rs"]
mod tests;
