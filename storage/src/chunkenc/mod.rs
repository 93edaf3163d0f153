//! Chunk encodings: XOR for floats; histogram chunks are recognised.
//!
//! A chunk's `data` always starts with a big-endian u16 sample count followed by the
//! encoding's bit stream (reference section 6). [`Chunk`] pairs that data with its
//! [`Encoding`]; [`XorAppender`] writes float chunks byte-identical to Prometheus 2.42 and
//! [`XorIterator`] decodes them without panicking on any input.

mod bstream;
pub mod histogram;
pub mod xor;
mod xor_iter;

use bytes::Bytes;
use std::fmt;

pub use xor::{decode_xor, XorAppender, XorIterator};

/// Bits of Prometheus' staleness marker, a NaN that ends a series; compare bits, not values.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// True when `v` is exactly the staleness marker (other NaNs are ordinary values).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Most samples a chunk can hold: the count is a big-endian u16.
pub const MAX_SAMPLES_PER_CHUNK: usize = u16::MAX as usize;

/// The encoding byte of a chunk record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Encoding {
    /// Gorilla-style float samples.
    Xor = 1,
    /// Native histograms with integer counts.
    Histogram = 2,
    /// Native histograms with float counts.
    FloatHistogram = 3,
}

impl Encoding {
    /// Parses an encoding byte; 0x81 (Prometheus' head-internal out-of-order XOR) reads as
    /// XOR, as Prometheus 2.42's own chunk pool does.
    pub fn from_byte(b: u8) -> Result<Encoding, ChunkError> {
        match b {
            1 | 0x81 => Ok(Encoding::Xor),
            2 => Ok(Encoding::Histogram),
            3 => Ok(Encoding::FloatHistogram),
            other => Err(ChunkError::UnknownEncoding(other)),
        }
    }

    /// The byte written to a chunk record.
    pub fn as_byte(self) -> u8 {
        self as u8
    }

    /// Prometheus' name for the encoding.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Xor => "XOR",
            Encoding::Histogram => "histogram",
            Encoding::FloatHistogram => "floathistogram",
        }
    }

    /// True for the two native-histogram encodings.
    pub fn is_histogram(self) -> bool {
        !matches!(self, Encoding::Xor)
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (encoding {})", self.name(), self.as_byte())
    }
}

/// Why a chunk could not be encoded or decoded. Small (no heap) so the decoder's hot path
/// can return it cheaply; block readers add block, file and offset around it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The encoding byte is none Strata knows.
    #[error("unknown chunk encoding byte {0:#04x}")]
    UnknownEncoding(u8),
    /// A known encoding Strata does not decode (native histograms).
    #[error("chunk encoding {0} is not supported: native histograms are not supported")]
    Unsupported(Encoding),
    /// The chunk's bytes do not follow the encoding.
    #[error("corrupt chunk at sample {sample}, bit {bit} of the chunk data: {reason}")]
    Corrupt {
        /// Index of the sample being decoded.
        sample: u32,
        /// Bit position within the chunk data (including the 2-byte count) where it failed.
        bit: u64,
        /// What was wrong.
        reason: &'static str,
    },
    /// The appender already holds [`MAX_SAMPLES_PER_CHUNK`] samples.
    #[error("chunk is full: it already holds {MAX_SAMPLES_PER_CHUNK} samples")]
    Full,
}

/// One chunk: its encoding and its data (sample count and bit stream), as stored in a
/// segment file record between the encoding byte and the CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// How `data` is encoded.
    pub encoding: Encoding,
    /// The sample count (BE16) followed by the bit stream.
    pub data: Bytes,
}

impl Chunk {
    /// A chunk from its encoding and data.
    pub fn new(encoding: Encoding, data: impl Into<Bytes>) -> Self {
        Chunk {
            encoding,
            data: data.into(),
        }
    }

    /// The sample count from the first two bytes.
    pub fn num_samples(&self) -> Result<u16, ChunkError> {
        match self.data.get(..2) {
            Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
            _ => Err(ChunkError::Corrupt {
                sample: 0,
                bit: 0,
                reason: "chunk data shorter than its 2-byte sample count",
            }),
        }
    }

    /// An iterator over the float samples; histogram chunks are
    /// [`ChunkError::Unsupported`].
    pub fn float_iter(&self) -> Result<XorIterator<'_>, ChunkError> {
        match self.encoding {
            Encoding::Xor => Ok(XorIterator::new(&self.data)),
            other => Err(ChunkError::Unsupported(other)),
        }
    }

    /// All float samples decoded; histogram chunks are [`ChunkError::Unsupported`].
    pub fn samples(&self) -> Result<Vec<(i64, f64)>, ChunkError> {
        let mut out = Vec::new();
        self.float_iter()?.decode_into(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encoding_bytes_parse_with_ooo_xor_as_xor() {
        assert_eq!(Encoding::from_byte(1), Ok(Encoding::Xor));
        assert_eq!(Encoding::from_byte(0x81), Ok(Encoding::Xor));
        assert_eq!(Encoding::from_byte(2), Ok(Encoding::Histogram));
        assert_eq!(Encoding::from_byte(3), Ok(Encoding::FloatHistogram));
        for b in [0u8, 4, 5, 6, 0x80, 0xff] {
            assert_eq!(Encoding::from_byte(b), Err(ChunkError::UnknownEncoding(b)));
        }
        assert!(ChunkError::UnknownEncoding(4).to_string().contains("0x04"));
    }

    #[test]
    fn stale_nan_is_recognised_by_bits_only() {
        assert!(is_stale_nan(f64::from_bits(STALE_NAN_BITS)));
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(f64::from_bits(0x7ff8_0000_0000_0001)));
        assert!(!is_stale_nan(1.0));
    }

    #[test]
    fn histogram_chunks_are_refused_naming_the_encoding() {
        let c = Chunk::new(Encoding::Histogram, vec![0u8, 1, 0x40, 0]);
        let e = c.samples().unwrap_err();
        assert_eq!(e, ChunkError::Unsupported(Encoding::Histogram));
        assert!(e.to_string().contains("histogram (encoding 2)"), "{e}");
        let c = Chunk::new(Encoding::FloatHistogram, vec![0u8, 0]);
        assert!(c.samples().unwrap_err().to_string().contains("encoding 3"));
    }

    #[test]
    fn num_samples_of_short_data_is_an_error() {
        assert!(Chunk::new(Encoding::Xor, vec![1u8]).num_samples().is_err());
        assert_eq!(
            Chunk::new(Encoding::Xor, vec![1u8, 2]).num_samples(),
            Ok(258)
        );
    }
}
