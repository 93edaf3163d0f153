//! XOR float chunks (encoding 1), byte-identical to Prometheus 2.42 (reference section 7).
//!
//! The iterator yields `Result<(i64, f64), ChunkError>` so that `collect::<Result<Vec<_>,
//! _>>()` and `?` work and an error cannot be ignored by accident; the error is a few words
//! without heap data and the fast path is inlined, so this costs nothing measurable against
//! a `next() -> bool` + `at()` design (see the `xor` benchmark). After an error the iterator
//! is fused and returns `None`.

use super::bstream::{BitReader, BitWriter};
use super::{Chunk, ChunkError, Encoding, MAX_SAMPLES_PER_CHUNK};
use bytes::Bytes;

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

/// Decodes an XOR chunk's data sample by sample; never panics on any bytes.
#[derive(Debug, Clone)]
pub struct XorIterator<'a> {
    r: BitReader<'a>,
    /// Samples the chunk claims; set to `read` after an error to fuse the iterator.
    total: u32,
    read: u32,
    t: i64,
    v: u64,
    delta: i64,
    leading: u32,
    trailing: u32,
    /// Bit offset of the bit stream after sample 1's time delta, within the chunk data.
    base_bits: u64,
    /// A header error to report on the first call.
    header_err: Option<ChunkError>,
}

impl<'a> XorIterator<'a> {
    /// An iterator over an XOR chunk's data (sample count first).
    pub fn new(data: &'a [u8]) -> Self {
        let mut it = XorIterator {
            r: BitReader::new(&[]),
            total: 0,
            read: 0,
            t: 0,
            v: 0,
            delta: 0,
            leading: 0,
            trailing: 0,
            base_bits: 0,
            header_err: None,
        };
        if let Err(e) = it.parse_header(data) {
            it.header_err = Some(e);
            it.total = 1;
        }
        it
    }

    /// Reads the byte-aligned start: count, varint t0, v0 and (with two or more samples)
    /// uvarint d1; the bit reader takes over after them.
    fn parse_header(&mut self, data: &'a [u8]) -> Result<(), ChunkError> {
        let mut d = crate::encoding::Decbuf::new(data, 0);
        let corrupt = |e: crate::encoding::DecodeError, sample| ChunkError::Corrupt {
            sample,
            bit: e.offset * 8,
            reason: "truncated or malformed chunk start",
        };
        self.total = u32::from(d.be16().map_err(|e| corrupt(e, 0))?);
        if self.total == 0 {
            return Ok(());
        }
        self.t = d.varint().map_err(|e| corrupt(e, 0))?;
        self.v = d.be64().map_err(|e| corrupt(e, 0))?;
        if self.total >= 2 {
            self.delta = d.uvarint().map_err(|e| corrupt(e, 1))? as i64;
        }
        self.base_bits = d.offset() * 8;
        self.r = BitReader::new(d.rest());
        Ok(())
    }

    /// Samples the chunk claims to hold.
    pub fn num_samples(&self) -> usize {
        self.total as usize
    }

    fn fail(&mut self, reason: &'static str, bit: u64) -> ChunkError {
        let sample = self.read;
        self.total = self.read;
        ChunkError::Corrupt {
            sample,
            bit: self.base_bits + bit,
            reason,
        }
    }

    #[cold]
    #[inline(never)]
    fn first_samples(&mut self) -> Result<(i64, f64), ChunkError> {
        if let Some(e) = self.header_err.take() {
            self.total = 0;
            return Err(e);
        }
        if self.read == 1 {
            self.t = self.t.wrapping_add(self.delta);
            self.r.refill();
            self.read_value()?;
        }
        self.finish_sample()
    }

    /// Counts the sample and checks it did not use bits past the end of the data.
    #[inline(always)]
    fn finish_sample(&mut self) -> Result<(i64, f64), ChunkError> {
        self.read += 1;
        if self.r.bits_consumed() > self.r.bits_total() {
            self.read -= 1;
            let end = self.r.bits_total();
            return Err(self.fail("sample count exceeds the bit stream (truncated chunk)", end));
        }
        Ok((self.t, f64::from_bits(self.v)))
    }

    /// Timestamp delta-of-delta: prefix `0`, `10`, `110`, `1110` (14/17/20-bit payloads,
    /// decoded without branches through tables) or `1111` (64 bits).
    #[inline(always)]
    fn read_dod(&mut self) {
        const WIDTH: [u32; 4] = [0, 14, 17, 20];
        const HALF: [u64; 4] = [0, 1 << 13, 1 << 16, 1 << 19];
        const FULL: [u64; 4] = [0, 1 << 14, 1 << 17, 1 << 20];
        let buf = self.r.peek();
        let ones = buf.leading_ones();
        let dod = if ones >= 4 {
            self.r.consume(4);
            self.r.read_long(64) as i64
        } else {
            let i = (ones & 3) as usize;
            let plen = ones + 1;
            let w = WIDTH[i];
            // Shifting by 1 then 63 - w yields 0 for w = 0 without a 64-bit shift.
            let u = ((buf << plen) >> 1) >> (63 - w);
            self.r.consume(plen + w);
            let wrap = if u > HALF[i] { FULL[i] } else { 0 };
            u.wrapping_sub(wrap) as i64
        };
        self.delta = self.delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.delta);
    }

    /// Value: `0` same, `10` reuse window, `11` + 5-bit leading + 6-bit length (0 = 64).
    /// Needs 13 valid bits on entry.
    #[inline(always)]
    fn read_value(&mut self) -> Result<(), ChunkError> {
        let top = self.r.peek() >> 62;
        if top < 2 {
            self.r.consume(1);
            return Ok(());
        }
        self.r.consume(2);
        if top == 3 {
            let x = self.r.read(11) as u32;
            let lead = x >> 6;
            let m = if x & 63 == 0 { 64 } else { x & 63 };
            if lead + m > 64 {
                let at = self.r.bits_consumed() - 11;
                return Err(self.fail("value window exceeds 64 bits", at));
            }
            self.leading = lead;
            self.trailing = 64 - lead - m;
        }
        let m = 64 - self.leading - self.trailing;
        let b = self.r.read_long(m);
        self.v ^= b << self.trailing;
        Ok(())
    }

    #[inline(never)]
    fn slow_sample(&mut self) -> Result<(i64, f64), ChunkError> {
        self.read_dod();
        if self.r.valid() < 13 {
            self.r.refill();
        }
        self.read_value()?;
        self.finish_sample()
    }
}

impl Iterator for XorIterator<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.read >= self.total {
            return None;
        }
        if self.read < 2 {
            return Some(self.first_samples());
        }
        // A sample without its 64-bit cases needs at most 24 + 13 bits.
        if self.r.valid() < 37 {
            self.r.refill();
        }
        // Fast path: `00` = same delta, same value (constant series at a steady interval).
        if self.r.peek() >> 62 == 0 {
            self.r.consume(2);
            self.t = self.t.wrapping_add(self.delta);
            return Some(self.finish_sample());
        }
        Some(self.slow_sample())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.total - self.read.min(self.total)) as usize;
        (0, Some(n))
    }
}

/// Decodes every sample of an XOR chunk's data.
pub fn decode_xor(data: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let it = XorIterator::new(data);
    let mut out = Vec::with_capacity(it.num_samples().min(MAX_SAMPLES_PER_CHUNK));
    for s in it {
        out.push(s?);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "xor_tests.rs"]
mod tests;
