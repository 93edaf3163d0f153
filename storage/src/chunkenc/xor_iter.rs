//! Decoding XOR chunks (reference 7.7), fast and panic-free on any bytes.
//!
//! Three ways to read, all over one decode loop (`decode_to`) that copies the decoder state
//! into locals so the bit register, timestamp and value stay in CPU registers:
//! - [`XorIterator`] as an `Iterator<Item = Result<(i64, f64), ChunkError>>`: idiomatic
//!   (`?`, `collect::<Result<Vec<_>, _>>()`), an error cannot be ignored by accident. It
//!   decodes 32 samples at a time into an internal buffer; `next()` hands them out.
//! - [`XorIterator::next_batch`]: the same samples as slices, for scan loops.
//! - [`XorIterator::decode_into`] / [`decode_xor`]: the whole chunk straight into a `Vec`,
//!   fastest (one pass, no per-batch set-up).
//!
//! Runs of unchanged samples (`00`: same interval, same value, the common constant series)
//! are expanded many at a time from the register's leading zeros.

use super::bstream::BitReader;
use super::{ChunkError, MAX_SAMPLES_PER_CHUNK};
use crate::encoding::{Decbuf, DecodeError};

/// Samples decoded per refill of the iterator's buffer (a power of two, see `next`).
const BATCH: usize = 32;

/// Decoder state; plain values so [`XorIterator::fill`] can keep a copy in registers.
#[derive(Debug, Clone, Copy)]
struct Dec<'a> {
    r: BitReader<'a>,
    /// Samples the chunk claims; lowered to `read` after an error to end decoding.
    total: u32,
    read: u32,
    t: i64,
    v: u64,
    delta: i64,
    /// Width of the value window (64 - leading - trailing), 1..=64; the decoder's window
    /// starts as (0, 0), i.e. 64 bits.
    width: u32,
    trailing: u32,
    /// Bit offset of the reader's first bit within the chunk data, for errors.
    base_bits: u64,
}

/// Builds an error by value, off the hot path, so the decoder state never escapes.
#[cold]
#[inline(never)]
fn corrupt(sample: u32, bit: u64, reason: &'static str) -> ChunkError {
    ChunkError::Corrupt {
        sample,
        bit,
        reason,
    }
}

const TRUNCATED: &str = "sample count exceeds the bit stream (truncated chunk)";

impl Dec<'_> {
    fn truncated(&self) -> ChunkError {
        corrupt(self.read, self.base_bits + self.r.bits_total(), TRUNCATED)
    }

    /// Timestamp delta-of-delta: prefix `0`, `10`, `110`, `1110` (14/17/20-bit payloads,
    /// decoded without branches through tables) or `1111` (64 bits). Needs 24 valid bits.
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
            // Shifting by 1 then by 63 - w yields 0 for w = 0 without a 64-bit shift.
            let u = ((buf << plen) >> 1) >> (63 - w);
            self.r.consume(plen + w);
            let wrap = if u > HALF[i] { FULL[i] } else { 0 };
            u.wrapping_sub(wrap) as i64
        };
        self.delta = self.delta.wrapping_add(dod);
        self.t = self.t.wrapping_add(self.delta);
    }

    /// Value: `0` same, `10` reuse the window, `11` + 5-bit leading + 6-bit length (0 means
    /// 64) + payload. Needs 13 valid bits on entry. Branches, not conditional moves: a
    /// branchless version measured slower, as it lengthens the dependency chain through the
    /// bit register that speculation otherwise hides.
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
                let at = self.base_bits + self.r.bits_consumed() - 11;
                return Err(corrupt(self.read, at, "value window exceeds 64 bits"));
            }
            self.width = m;
            self.trailing = 64 - lead - m;
        }
        // 1 <= width <= 64 and leading + trailing <= 63, so the shift below is < 64.
        let m = self.width;
        // Small payloads (counters, gauges) are usually already in the register.
        let b = if m <= self.r.valid() {
            self.r.read(m)
        } else {
            self.r.read_long(m)
        };
        self.v ^= b << self.trailing;
        Ok(())
    }

    /// Samples 0 and 1, whose timestamps were read with the header.
    #[inline(always)]
    fn first_sample(&mut self) -> Result<(), ChunkError> {
        if self.read == 1 {
            self.t = self.t.wrapping_add(self.delta);
            self.r.refill();
            self.read_value()?;
        }
        self.end_sample()?;
        self.read += 1;
        Ok(())
    }

    /// A sample from 2 on that is not the `00` fast case.
    #[inline(always)]
    fn sample(&mut self) -> Result<(), ChunkError> {
        self.one_sample()?;
        self.read += 1;
        Ok(())
    }

    #[inline(always)]
    fn one_sample(&mut self) -> Result<(), ChunkError> {
        if self.r.peek() >> 63 == 0 {
            // Steady interval, the usual case: a predictable branch beats the table path.
            self.r.consume(1);
            self.t = self.t.wrapping_add(self.delta);
        } else {
            self.read_dod();
            if self.r.valid() < 13 {
                self.r.refill();
            }
        }
        self.read_value()?;
        self.end_sample()
    }

    /// Refuses the sample if it used bits past the end of the data.
    #[inline(always)]
    fn end_sample(&self) -> Result<(), ChunkError> {
        if self.r.bits_consumed() > self.r.bits_total() {
            return Err(self.truncated());
        }
        Ok(())
    }
}

/// Decodes up to `out.len()` samples into `out`; returns how many, and the error that
/// stopped decoding early, if any. The state is copied into a local so that it stays in
/// registers for the whole loop.
fn decode_to(dec: &mut Dec<'_>, out: &mut [(i64, f64)]) -> (usize, Option<ChunkError>) {
    let mut d = *dec;
    let mut n = 0;
    let mut err = None;
    let cap = out.len().min(d.total.saturating_sub(d.read) as usize);
    let Some(out) = out.get_mut(..cap) else {
        return (0, None);
    };
    while n < cap && d.read < 2 {
        if let Err(e) = d.first_sample() {
            err = Some(e);
            break;
        }
        if let Some(slot) = out.get_mut(n) {
            *slot = (d.t, f64::from_bits(d.v));
        }
        n += 1;
    }
    while err.is_none() && n < cap {
        // A sample without its 64-bit cases needs at most 24 + 13 bits.
        if d.r.valid() < 37 {
            d.r.refill();
        }
        let buf = d.r.peek();
        if buf >> 60 == 0 {
            // A run of `00` pairs: same interval, same value (a lone one takes the general
            // path). Bounded by the register, the output and the real bits left.
            let k = ((buf.leading_zeros() / 2).min(d.r.valid() / 2) as usize)
                .min(cap - n)
                .min((d.r.bits_left() / 2).min(32) as usize);
            let Some(run) = out.get_mut(n..n + k).filter(|_| k > 0) else {
                err = Some(d.truncated());
                break;
            };
            let v = f64::from_bits(d.v);
            for slot in run {
                d.t = d.t.wrapping_add(d.delta);
                *slot = (d.t, v);
            }
            d.r.consume(2 * k as u32);
            d.read += k as u32;
            n += k;
            continue;
        }
        if let Err(e) = d.sample() {
            err = Some(e);
            break;
        }
        if let Some(slot) = out.get_mut(n) {
            *slot = (d.t, f64::from_bits(d.v));
        }
        n += 1;
    }
    if err.is_some() {
        // Nothing more will be decoded from this chunk.
        d.total = d.read;
    }
    *dec = d;
    (n, err)
}

/// Decodes an XOR chunk's data; yields `Result<(i64, f64), ChunkError>` and never panics.
///
/// Items are `Result`s so `collect::<Result<Vec<_>, _>>()` and `?` work and an error cannot
/// be ignored; the error is small and without heap data. After an error the iterator
/// returns `None`. Samples before the error are yielded first.
#[derive(Debug, Clone)]
pub struct XorIterator<'a> {
    dec: Dec<'a>,
    buf: [(i64, f64); BATCH],
    idx: usize,
    len: usize,
    err: Option<ChunkError>,
}

impl<'a> XorIterator<'a> {
    /// An iterator over an XOR chunk's data (sample count first).
    pub fn new(data: &'a [u8]) -> Self {
        let mut it = XorIterator {
            dec: Dec {
                r: BitReader::new(&[]),
                total: 0,
                read: 0,
                t: 0,
                v: 0,
                delta: 0,
                width: 64,
                trailing: 0,
                base_bits: 0,
            },
            buf: [(0, 0.0); BATCH],
            idx: 0,
            len: 0,
            err: None,
        };
        if let Err(e) = it.parse_header(data) {
            it.dec.total = 0;
            it.err = Some(e);
        }
        it
    }

    /// Reads the byte-aligned start: count, varint t0, v0 and (with two or more samples)
    /// uvarint d1; the bit reader takes over after them.
    fn parse_header(&mut self, data: &'a [u8]) -> Result<(), ChunkError> {
        let mut d = Decbuf::new(data, 0);
        let bad = |e: DecodeError, sample| ChunkError::Corrupt {
            sample,
            bit: e.offset * 8,
            reason: "truncated or malformed chunk start",
        };
        let dec = &mut self.dec;
        dec.total = u32::from(d.be16().map_err(|e| bad(e, 0))?);
        if dec.total == 0 {
            return Ok(());
        }
        dec.t = d.varint().map_err(|e| bad(e, 0))?;
        dec.v = d.be64().map_err(|e| bad(e, 0))?;
        if dec.total >= 2 {
            dec.delta = d.uvarint().map_err(|e| bad(e, 1))? as i64;
        }
        dec.base_bits = d.offset() * 8;
        dec.r = BitReader::new(d.rest());
        Ok(())
    }

    /// Samples the chunk claims to hold.
    pub fn num_samples(&self) -> usize {
        self.dec.total as usize
    }

    /// The next samples, up to 32 at a time, as a slice; `Ok(None)` at the end. Samples
    /// already taken by `next()` are not repeated. The fastest way to scan a chunk without
    /// collecting it: the caller's loop runs over a plain slice.
    pub fn next_batch(&mut self) -> Result<Option<&[(i64, f64)]>, ChunkError> {
        if self.idx >= self.len {
            if let Some(e) = self.err.take() {
                return Err(e);
            }
            let (n, err) = decode_to(&mut self.dec, &mut self.buf);
            self.idx = 0;
            self.len = n;
            self.err = err;
            if n == 0 {
                return self.err.take().map_or(Ok(None), Err);
            }
        }
        let start = self.idx;
        self.idx = self.len;
        Ok(self.buf.get(start..self.len))
    }

    #[inline(never)]
    fn refill_next(&mut self) -> Option<Result<(i64, f64), ChunkError>> {
        if let Some(e) = self.err.take() {
            return Some(Err(e));
        }
        let (n, err) = decode_to(&mut self.dec, &mut self.buf);
        self.len = n;
        self.err = err;
        if n == 0 {
            return self.err.take().map(Err);
        }
        self.idx = 1;
        Some(Ok(self.buf[0]))
    }

    /// Appends every remaining sample to `out`; faster than iterating, as the samples are
    /// decoded straight into `out` in one pass.
    pub fn decode_into(mut self, out: &mut Vec<(i64, f64)>) -> Result<(), ChunkError> {
        if let Some(buffered) = self.buf.get(self.idx..self.len) {
            out.extend_from_slice(buffered);
        }
        if let Some(e) = self.err.take() {
            return Err(e);
        }
        let start = out.len();
        let want = self.dec.total.saturating_sub(self.dec.read) as usize;
        out.resize(start + want, (0, 0.0));
        let (n, err) = match out.get_mut(start..) {
            Some(dst) => decode_to(&mut self.dec, dst),
            None => (0, None),
        };
        out.truncate(start + n);
        err.map_or(Ok(()), Err)
    }

    fn remaining_hint(&self) -> usize {
        let undecoded = self.dec.total.saturating_sub(self.dec.read) as usize;
        (self.len.saturating_sub(self.idx) + undecoded).min(MAX_SAMPLES_PER_CHUNK)
    }
}

impl Iterator for XorIterator<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let i = self.idx;
        if i < self.len {
            self.idx = i + 1;
            // len <= BATCH, a power of two: the mask only spares a bounds check.
            return Some(Ok(self.buf[i & (BATCH - 1)]));
        }
        self.refill_next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let buffered = self.len.saturating_sub(self.idx);
        (buffered, Some(self.remaining_hint() + 1))
    }
}

/// Decodes every sample of an XOR chunk's data.
pub fn decode_xor(data: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let mut out = Vec::new();
    XorIterator::new(data).decode_into(&mut out)?;
    Ok(out)
}
