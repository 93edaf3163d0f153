//! Byte-level primitives shared by every TSDB file: big-endian integers, Go-style varints,
//! length-prefixed strings and CRC-32C.
//!
//! Decoding never panics: running off the end or a malformed varint is a [`DecodeError`] that
//! carries the absolute offset, so callers can name where a file is corrupt.

/// Why a decode failed and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {reason}")]
pub struct DecodeError {
    /// Absolute offset in the file (base offset of the buffer plus position).
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// CRC-32C (Castagnoli) of `data`, as every TSDB file stores it.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// A read cursor over a byte slice that knows its absolute position in the file.
#[derive(Debug, Clone)]
pub struct Decbuf<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Decbuf<'a> {
    /// A cursor over `data`, which starts at absolute file offset `base`.
    pub fn new(data: &'a [u8], base: u64) -> Self {
        Decbuf { data, pos: 0, base }
    }

    /// Absolute file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The unconsumed bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    /// An error at the current position.
    pub fn error(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.offset(),
            reason: reason.into(),
        }
    }

    /// Consumes `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!("need {n} bytes, only {} left", self.remaining())));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// A big-endian u16.
    pub fn be16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A big-endian u32.
    pub fn be32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A big-endian u64.
    pub fn be64(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A Go `binary.Uvarint`: at most 10 bytes, no overflow past 64 bits.
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let start = self.offset();
        let mut x: u64 = 0;
        let mut shift = 0u32;
        for i in 0..10 {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(DecodeError {
                    offset: start,
                    reason: "truncated uvarint".into(),
                });
            };
            self.pos += 1;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                return Ok(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        Err(DecodeError {
            offset: start,
            reason: "uvarint overflows 64 bits".into(),
        })
    }

    /// A uvarint that must fit in 32 bits.
    pub fn uvarint32(&mut self) -> Result<u32, DecodeError> {
        let start = self.offset();
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| DecodeError {
            offset: start,
            reason: format!("value {v} does not fit 32 bits"),
        })
    }

    /// A zig-zag varint (Go `binary.Varint`).
    pub fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A uvarint length followed by that many bytes of UTF-8.
    pub fn uvarint_str(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.offset();
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| self.error("string length too large"))?;
        let b = self.bytes(n)?;
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: start,
            reason: "string is not valid UTF-8".into(),
        })
    }
}

/// An append-only byte buffer with the encoders matching [`Decbuf`].
#[derive(Debug, Default, Clone)]
pub struct Encbuf {
    buf: Vec<u8>,
}

impl Encbuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Encbuf::default()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forgets everything written, keeping the allocation.
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    /// The bytes written.
    pub fn get(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the bytes written.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Appends one byte.
    pub fn put_u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Appends raw bytes.
    pub fn put_bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends a big-endian u16.
    pub fn put_be16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u32.
    pub fn put_be32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian u64.
    pub fn put_be64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a Go-style uvarint.
    pub fn put_uvarint(&mut self, v: u64) {
        put_uvarint(&mut self.buf, v);
    }

    /// Appends a zig-zag varint.
    pub fn put_varint(&mut self, v: i64) {
        put_uvarint(&mut self.buf, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Appends a uvarint length and the string's bytes.
    pub fn put_uvarint_str(&mut self, s: &str) {
        self.put_uvarint(s.len() as u64);
        self.put_bytes(s.as_bytes());
    }

    /// Appends the CRC-32C of `self[from..]` as big-endian u32.
    pub fn put_crc32c_since(&mut self, from: usize) {
        let c = crc32c(&self.buf[from..]);
        self.put_be32(c);
    }
}

/// Appends a Go-style uvarint to `out`.
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Number of bytes `put_uvarint` writes for `v`.
pub fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn uvarint_round_trips(v: u64) {
            let mut e = Encbuf::new();
            e.put_uvarint(v);
            prop_assert_eq!(e.len(), uvarint_len(v));
            let mut d = Decbuf::new(e.get(), 0);
            prop_assert_eq!(d.uvarint().ok(), Some(v));
            prop_assert_eq!(d.remaining(), 0);
        }

        #[test]
        fn varint_round_trips(v: i64) {
            let mut e = Encbuf::new();
            e.put_varint(v);
            let mut d = Decbuf::new(e.get(), 0);
            prop_assert_eq!(d.varint().ok(), Some(v));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(data: Vec<u8>) {
            let mut d = Decbuf::new(&data, 100);
            let _ = d.uvarint_str();
            let _ = d.varint();
            let _ = d.be64();
        }
    }

    #[test]
    fn truncated_input_names_the_offset() {
        let mut d = Decbuf::new(&[0x80, 0x80], 40);
        let e = d.uvarint().unwrap_err();
        assert_eq!(e.offset, 40);
        let mut d = Decbuf::new(&[1, 2, 3], 10);
        d.skip(2).unwrap();
        assert_eq!(d.be32().unwrap_err().offset, 12);
    }

    #[test]
    fn crc32c_matches_a_known_vector() {
        // The empty tombstones file of every Prometheus block ends with the CRC of nothing.
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn uvarint_rejects_overflow() {
        let mut d = Decbuf::new(&[0xff; 11], 0);
        assert!(d.uvarint().is_err());
    }
}
