//! Native-histogram chunks (encodings 2 and 3) are recognised but not decoded.
//!
//! Strata reads only the fixed header, enough to describe the chunk in an error or a
//! listing; decoding samples is refused with [`ChunkError::Unsupported`] so callers can say
//! "block X series Y uses native histograms, not supported".

use super::{Chunk, ChunkError, Encoding};

/// The counter-reset hint in the top two bits of a histogram chunk's header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterResetHint {
    /// `0b00`: unknown.
    Unknown,
    /// `0b10`: the chunk starts with a counter reset.
    CounterReset,
    /// `0b01`: the chunk continues the previous one without a reset.
    NotCounterReset,
    /// `0b11`: a gauge histogram.
    Gauge,
}

/// What can be read from a histogram chunk without decoding its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramChunkHeader {
    /// Integer or float histogram.
    pub encoding: Encoding,
    /// Samples in the chunk.
    pub num_samples: u16,
    /// The counter-reset hint.
    pub counter_reset: CounterResetHint,
}

/// Reads the sample count and header byte of a histogram chunk.
pub fn histogram_header(chunk: &Chunk) -> Result<HistogramChunkHeader, ChunkError> {
    if !chunk.encoding.is_histogram() {
        return Err(ChunkError::Corrupt {
            sample: 0,
            bit: 0,
            reason: "not a histogram chunk",
        });
    }
    let Some(&[a, b, h]) = chunk.data.get(..3) else {
        return Err(ChunkError::Corrupt {
            sample: 0,
            bit: 0,
            reason: "histogram chunk shorter than its 3-byte header",
        });
    };
    let counter_reset = match h >> 6 {
        0b10 => CounterResetHint::CounterReset,
        0b01 => CounterResetHint::NotCounterReset,
        0b11 => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    };
    Ok(HistogramChunkHeader {
        encoding: chunk.encoding,
        num_samples: u16::from_be_bytes([a, b]),
        counter_reset,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_of_a_gauge_histogram_chunk_is_read() {
        let c = Chunk::new(Encoding::FloatHistogram, vec![0u8, 7, 0xc0, 0]);
        let h = histogram_header(&c).unwrap();
        assert_eq!(h.num_samples, 7);
        assert_eq!(h.counter_reset, CounterResetHint::Gauge);
        assert_eq!(h.encoding, Encoding::FloatHistogram);
    }

    #[test]
    fn truncated_or_float_chunks_are_not_histogram_headers() {
        assert!(histogram_header(&Chunk::new(Encoding::Histogram, vec![0u8, 1])).is_err());
        assert!(histogram_header(&Chunk::new(Encoding::Xor, vec![0u8, 1, 0])).is_err());
    }
}
