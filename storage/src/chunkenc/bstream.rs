//! Bit streams, most significant bit first (reference 7.1).
//!
//! The writer reproduces Prometheus' `bstream` byte for byte, including its trailing empty
//! byte; the reader keeps up to 63 bits in a register and refills it eight bytes at a time,
//! reading zeros past the end so the decoder can check for overrun once per sample.

/// Appends bits MSB-first, emitting exactly the bytes Prometheus' `bstream` would.
#[derive(Debug, Clone)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    /// Pending bits in the low `nacc` bits (always fewer than 8 between calls).
    acc: u64,
    nacc: u32,
    /// Prometheus appends an empty byte after every byte written at an aligned position; it
    /// survives to the output when that was the last write.
    trailing_empty: bool,
}

impl BitWriter {
    /// A writer whose output starts with `prefix` (the chunk's sample count placeholder).
    pub(crate) fn with_prefix(prefix: &[u8], capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.max(prefix.len()));
        out.extend_from_slice(prefix);
        BitWriter {
            out,
            acc: 0,
            nacc: 0,
            trailing_empty: false,
        }
    }

    #[inline]
    fn put(&mut self, v: u64, n: u32) {
        // n <= 56 and nacc < 8, so nothing pending is shifted out.
        self.acc = (self.acc << n) | v;
        self.nacc += n;
        while self.nacc >= 8 {
            self.nacc -= 8;
            self.out.push((self.acc >> self.nacc) as u8);
        }
    }

    /// Writes one bit.
    #[inline]
    pub(crate) fn write_bit(&mut self, bit: bool) {
        self.put(u64::from(bit), 1);
        self.trailing_empty = false;
    }

    /// Writes the low `n` bits of `v` (1 <= n <= 64), as Prometheus' `writeBits`.
    #[inline]
    pub(crate) fn write_bits(&mut self, v: u64, n: u32) {
        if n > 56 {
            self.put((v >> 32) & mask(n - 32), n - 32);
            self.put(v & 0xffff_ffff, 32);
        } else {
            self.put(v & mask(n), n);
        }
        // Prometheus writes whole bytes first; when they land aligned, the last one leaves a
        // fresh empty byte behind it.
        self.trailing_empty = n.is_multiple_of(8) && self.nacc == 0;
    }

    /// Writes whole bytes, as Prometheus' `writeByte` loop for varints.
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_bits(u64::from(b), 8);
        }
    }

    /// Bytes the stream occupies so far, including the prefix and padding.
    pub(crate) fn len(&self) -> usize {
        self.out.len() + usize::from(self.nacc > 0) + usize::from(self.trailing_empty)
    }

    /// Mutable access to the output written so far (to patch the prefix).
    pub(crate) fn prefix_mut(&mut self) -> &mut [u8] {
        &mut self.out
    }

    /// The finished bytes: partial last byte zero-padded, plus Prometheus' empty byte.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.nacc > 0 {
            let b = (self.acc << (8 - self.nacc)) as u8;
            self.out.push(b);
        }
        if self.trailing_empty {
            self.out.push(0);
        }
        self.out
    }
}

/// The last bytes of `data` from `pos`, zero-padded to a word; by value so the caller's
/// reader does not escape into a call.
#[cold]
fn load_tail(data: &[u8], pos: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(rest) = data.get(pos..) {
        let n = rest.len().min(8);
        b[..n].copy_from_slice(&rest[..n]);
    }
    u64::from_be_bytes(b)
}

#[inline]
fn mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Reads bits MSB-first through a 64-bit register. `Copy` so a decode loop can hold it in a
/// local whose fields stay in registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte to load; may run past `data.len()`, those bytes read as zero.
    pos: usize,
    /// Valid bits left-aligned; bits below `valid` are either correct stream bits or zero.
    buf: u64,
    valid: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let mut r = BitReader {
            data,
            pos: 0,
            buf: 0,
            valid: 0,
        };
        r.refill();
        r
    }

    /// Tops the register up to at least 56 valid bits.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        let w = match self.data.get(self.pos..).and_then(<[u8]>::first_chunk::<8>) {
            Some(b) => u64::from_be_bytes(*b),
            None => load_tail(self.data, self.pos),
        };
        // Bits already in the register below `valid` are the same stream bytes, so OR-ing
        // the whole word again is harmless; only whole bytes are counted as loaded.
        self.buf |= w >> self.valid;
        let bytes = (63 - self.valid) >> 3;
        self.pos += bytes as usize;
        self.valid += bytes << 3;
    }

    /// The register, next bit in the most significant position.
    #[inline(always)]
    pub(crate) fn peek(&self) -> u64 {
        self.buf
    }

    /// Drops `n` bits (n <= valid bits, n < 64).
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.valid -= n;
    }

    /// Reads `n` bits, 1 <= n <= valid bits (so n <= 63).
    #[inline(always)]
    pub(crate) fn read(&mut self, n: u32) -> u64 {
        let x = self.buf >> (64 - n);
        self.consume(n);
        x
    }

    /// Reads `n` bits, 1 <= n <= 64, refilling as needed.
    #[inline(always)]
    pub(crate) fn read_long(&mut self, n: u32) -> u64 {
        self.refill();
        if n <= 56 {
            self.read(n)
        } else {
            let hi = self.read(n - 32);
            self.refill();
            (hi << 32) | self.read(32)
        }
    }

    /// Valid bits in the register.
    #[inline(always)]
    pub(crate) fn valid(&self) -> u32 {
        self.valid
    }

    /// Bits consumed from the start of `data`.
    #[inline(always)]
    pub(crate) fn bits_consumed(&self) -> u64 {
        (self.pos as u64) * 8 - u64::from(self.valid)
    }

    /// Bits of `data` not yet consumed (zero once past the end).
    #[inline(always)]
    pub(crate) fn bits_left(&self) -> u64 {
        self.bits_total().saturating_sub(self.bits_consumed())
    }

    /// Bits in `data`.
    #[inline(always)]
    pub(crate) fn bits_total(&self) -> u64 {
        (self.data.len() as u64) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aligned_byte_write_leaves_an_empty_byte() {
        let mut w = BitWriter::with_prefix(&[], 8);
        w.write_bits(0xab, 8);
        assert_eq!(w.len(), 2);
        assert_eq!(w.finish(), vec![0xab, 0]);

        let mut w = BitWriter::with_prefix(&[], 8);
        w.write_bit(true);
        w.write_bits(0xff, 8);
        assert_eq!(w.finish(), vec![0xff, 0x80]);

        let mut w = BitWriter::with_prefix(&[], 8);
        w.write_bits(0xab, 8);
        w.write_bit(true);
        assert_eq!(w.finish(), vec![0xab, 0x80]);
    }

    proptest! {
        #[test]
        fn bits_read_back_as_written(
            writes in proptest::collection::vec((any::<u64>(), 1u32..=64), 0..50)
        ) {
            let mut w = BitWriter::with_prefix(&[], 0);
            for &(v, n) in &writes {
                w.write_bits(v, n);
            }
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &writes {
                prop_assert_eq!(r.read_long(n), v & mask(n));
            }
            prop_assert!(r.bits_consumed() <= r.bits_total());
        }
    }
}
