//! The table of contents: the last 52 bytes of an index file.

use crate::encoding::{crc32c, Decbuf, DecodeError, Encbuf};

/// Section offsets from the TOC; zero means the section is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Toc {
    /// Symbol table.
    pub symbols: u64,
    /// First byte of the series section (entries themselves are 16-byte aligned).
    pub series: u64,
    /// First byte after the series section, where label indices start.
    pub label_indices: u64,
    /// Label offset table (comes after the postings in the file).
    pub label_offset_table: u64,
    /// First byte after the label indices; may point at padding before the first list.
    pub postings: u64,
    /// Postings offset table.
    pub postings_offset_table: u64,
}

impl Toc {
    /// Encoded size including the CRC.
    pub const LEN: u64 = 6 * 8 + 4;

    /// The 52 bytes as written at the end of the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encbuf::new();
        for v in self.slots() {
            e.put_be64(v);
        }
        e.put_crc32c_since(0);
        e.into_inner()
    }

    /// Parses and CRC-checks the 52 bytes found at absolute offset `base`.
    pub fn decode(b: &[u8], base: u64) -> Result<Toc, DecodeError> {
        let mut d = Decbuf::new(b, base);
        if b.len() != Self::LEN as usize {
            return Err(d.error(format!("TOC must be {} bytes, got {}", Self::LEN, b.len())));
        }
        let body = d.bytes(48)?;
        let want = d.be32()?;
        let got = crc32c(body);
        if want != got {
            return Err(DecodeError {
                offset: base,
                reason: format!("TOC CRC mismatch: stored {want:#010x}, computed {got:#010x}"),
            });
        }
        let mut d = Decbuf::new(body, base);
        Ok(Toc {
            symbols: d.be64()?,
            series: d.be64()?,
            label_indices: d.be64()?,
            label_offset_table: d.be64()?,
            postings: d.be64()?,
            postings_offset_table: d.be64()?,
        })
    }

    /// The six offsets in TOC order.
    pub fn slots(&self) -> [u64; 6] {
        [
            self.symbols,
            self.series,
            self.label_indices,
            self.label_offset_table,
            self.postings,
            self.postings_offset_table,
        ]
    }

    /// The smallest section start above `off`, or `limit`: no section that starts at or
    /// before `off` can extend past it (sections never interleave).
    pub fn next_section_after(&self, off: u64, limit: u64) -> u64 {
        self.slots()
            .into_iter()
            .filter(|&s| s > off)
            .fold(limit, u64::min)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_crc() {
        let toc = Toc {
            symbols: 5,
            series: 80,
            label_indices: 214,
            label_offset_table: 432,
            postings: 304,
            postings_offset_table: 479,
        };
        let mut b = toc.encode();
        assert_eq!(b.len(), 52);
        assert_eq!(Toc::decode(&b, 1000).unwrap(), toc);
        b[10] ^= 4;
        assert_eq!(Toc::decode(&b, 1000).unwrap_err().offset, 1000);
        assert_eq!(toc.next_section_after(80, 9999), 214);
        assert_eq!(toc.next_section_after(479, 9999), 9999);
    }
}
