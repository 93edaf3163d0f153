//! XOR float chunks (encoding 1), byte-identical to Prometheus 2.42 (reference section 7).
//!
//! This file holds the appender; decoding is in `xor_iter.rs`.

use super::bstream::BitWriter;
use super::{Chunk, ChunkError, Encoding, MAX_SAMPLES_PER_CHUNK};
use bytes::Bytes;

pub use super::xor_iter::{decode_xor, XorIterator};

/// Window value meaning "no window yet": the first changed value of a chunk always gets a
/// fresh window (`11` control bits), as in Prometheus.
const NO_WINDOW: u8 = 0xff;

/// Builds one XOR chunk sample by sample.
#[derive(Debug, Clone)]
pub struct XorAppender {
    w: BitWriter,
    num: u16,
    t: i64,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorAppender {
    fn default() -> Self {
        Self::new()
    }
}

impl XorAppender {
    /// An appender for a fresh, empty chunk.
    pub fn new() -> Self {
        XorAppender {
            // Prometheus starts chunks with a 128-byte buffer; 120 samples usually fit.
            w: BitWriter::with_prefix(&[0, 0], 128),
            num: 0,
            t: 0,
            v: 0,
            t_delta: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Samples appended so far.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// Size of the chunk data if finished now, in bytes.
    pub fn size(&self) -> usize {
        self.w.len()
    }

    /// Appends a sample. Timestamps should increase (Prometheus' head guarantees it); others
    /// still round-trip because all arithmetic wraps exactly as in Prometheus.
    pub fn append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        if usize::from(self.num) >= MAX_SAMPLES_PER_CHUNK {
            return Err(ChunkError::Full);
        }
        let vbits = v.to_bits();
        let mut buf = [0u8; 10];
        match self.num {
            0 => {
                let zz = ((t << 1) ^ (t >> 63)) as u64;
                self.w.write_bytes(uvarint(zz, &mut buf));
                self.w.write_bits(vbits, 64);
            }
            1 => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                self.w.write_bytes(uvarint(t_delta, &mut buf));
                self.write_value(vbits);
                self.t_delta = t_delta;
            }
            _ => {
                let t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                self.write_dod(dod);
                self.write_value(vbits);
                self.t_delta = t_delta;
            }
        }
        self.t = t;
        self.v = vbits;
        self.num += 1;
        Ok(())
    }

    fn write_dod(&mut self, dod: i64) {
        // Buckets are asymmetric: k payload bits cover -(2^(k-1) - 1) ..= 2^(k-1).
        let fits = |k: u32| -((1i64 << (k - 1)) - 1) <= dod && dod <= 1i64 << (k - 1);
        let w = &mut self.w;
        if dod == 0 {
            w.write_bit(false);
        } else if fits(14) {
            w.write_bits(0b10, 2);
            w.write_bits(dod as u64, 14);
        } else if fits(17) {
            w.write_bits(0b110, 3);
            w.write_bits(dod as u64, 17);
        } else if fits(20) {
            w.write_bits(0b1110, 4);
            w.write_bits(dod as u64, 20);
        } else {
            w.write_bits(0b1111, 4);
            w.write_bits(dod as u64, 64);
        }
    }

    fn write_value(&mut self, vbits: u64) {
        let delta = vbits ^ self.v;
        let w = &mut self.w;
        if delta == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        // Five bits hold the leading count, so it is clamped to 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            w.write_bits(delta >> self.trailing, sig);
            return;
        }
        self.leading = leading;
        self.trailing = trailing;
        w.write_bit(true);
        w.write_bits(u64::from(leading), 5);
        let sig = 64 - u32::from(leading) - u32::from(trailing);
        // 64 significant bits do not fit six bits; it is written as 0 (0 never occurs).
        w.write_bits(u64::from(sig & 63), 6);
        w.write_bits(delta >> trailing, sig);
    }

    /// The chunk so far, leaving the appender usable.
    pub fn to_chunk(&self) -> Chunk {
        self.clone().finish()
    }

    /// The finished chunk.
    pub fn finish(mut self) -> Chunk {
        let count = self.num.to_be_bytes();
        if let Some(p) = self.w.prefix_mut().get_mut(..2) {
            p.copy_from_slice(&count);
        }
        Chunk::new(Encoding::Xor, Bytes::from(self.w.finish()))
    }
}

/// Go `binary.PutUvarint` into `buf`, returning the bytes used.
fn uvarint(mut v: u64, buf: &mut [u8; 10]) -> &[u8] {
    let mut n = 0;
    for slot in buf.iter_mut() {
        n += 1;
        if v < 0x80 {
            *slot = v as u8;
            break;
        }
        *slot = (v as u8) | 0x80;
        v >>= 7;
    }
    &buf[..n]
}

#[cfg(test)]
#[path = "xor_tests.rs"]
mod tests;
