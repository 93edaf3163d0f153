//! Byte-level layout checks for `verify`: every record of every section has a valid CRC (even
//! the label index tables that readers never use), records sit at their alignment, and padding
//! is zero. Readers skip padding and unused tables, so only this pass can notice damage there.

use super::reader::{read, IndexReader};
use super::toc::Toc;
use crate::block::error::BlockError;
use crate::encoding::{crc32c, Decbuf};

/// How a section's records encode their length.
#[derive(Clone, Copy)]
enum LenPrefix {
    /// `BE32 len` (symbols, label indices, postings, offset tables).
    Be32,
    /// `uvarint len` (series entries).
    Uvarint,
}

/// One section of the file: where it is and how its records look.
struct Section {
    name: &'static str,
    start: u64,
    end: u64,
    align: u64,
    prefix: LenPrefix,
}

fn sections(toc: &Toc, data_end: u64) -> Vec<Section> {
    let end_of = |start: u64| toc.next_section_after(start, data_end);
    let mut out = Vec::new();
    let mut push = |name, start: u64, align, prefix| {
        if start != 0 {
            out.push(Section {
                name,
                start,
                end: end_of(start),
                align,
                prefix,
            });
        }
    };
    push("symbol table", toc.symbols, 1, LenPrefix::Be32);
    push("series", toc.series, 16, LenPrefix::Uvarint);
    push("label indices", toc.label_indices, 4, LenPrefix::Be32);
    push("postings", toc.postings, 4, LenPrefix::Be32);
    push(
        "label offset table",
        toc.label_offset_table,
        1,
        LenPrefix::Be32,
    );
    push(
        "postings offset table",
        toc.postings_offset_table,
        1,
        LenPrefix::Be32,
    );
    out
}

/// Walks one section's records; returns the issues found.
fn check_section(s: &Section, bytes: &[u8]) -> Vec<String> {
    let mut issues = Vec::new();
    let mut d = Decbuf::new(bytes, s.start);
    while d.remaining() > 0 {
        let misalign = d.offset() % s.align;
        if misalign != 0 || d.rest()[0] == 0 && d.rest().iter().all(|&b| b == 0) {
            // Padding up to the next record, or to the end of the section.
            let pad = if misalign != 0 {
                ((s.align - misalign) as usize).min(d.remaining())
            } else {
                d.remaining()
            };
            let at = d.offset();
            if d.rest()[..pad].iter().any(|&b| b != 0) {
                issues.push(format!("{}: non-zero padding at offset {at}", s.name));
            }
            let _ = d.skip(pad);
            continue;
        }
        let at = d.offset();
        let len = match s.prefix {
            LenPrefix::Be32 => d.be32().map(u64::from),
            LenPrefix::Uvarint => d.uvarint(),
        };
        let record = len.and_then(|n| {
            let body = d.bytes(usize::try_from(n).unwrap_or(usize::MAX))?;
            let stored = d.be32()?;
            Ok((body, stored))
        });
        match record {
            Ok((body, stored)) => {
                let computed = crc32c(body);
                if computed != stored {
                    issues.push(format!(
                        "{}: record at offset {at}: CRC-32C mismatch (stored {stored:#010x}, computed {computed:#010x})",
                        s.name
                    ));
                }
            }
            Err(e) => {
                issues.push(format!("{}: record at offset {at}: {}", s.name, e.reason));
                break;
            }
        }
    }
    issues
}

impl IndexReader {
    /// Checks every section's records, alignment and padding; see the module comment.
    pub async fn verify_layout(&self) -> Result<Vec<String>, BlockError> {
        let data_end = self.source().size().saturating_sub(Toc::LEN);
        let mut issues = Vec::new();
        for s in sections(self.toc(), data_end) {
            if s.start > s.end {
                issues.push(format!(
                    "{}: starts at {} past its end {}",
                    s.name, s.start, s.end
                ));
                continue;
            }
            let bytes = read(self.source(), self.location(), s.start..s.end).await?;
            issues.extend(check_section(&s, &bytes));
        }
        Ok(issues)
    }
}
