//! The ruler's WAL records from disk (node's `rule/wal/codec.rs`, compiled in with a `#[path]`
//! include: node is a binary crate): decoding never panics nor allocates past the frame limit,
//! and what decodes re-encodes to a frame that decodes to the same record.
//!
//! Input: a first byte choosing the mode, then either raw segment bytes (frames one after
//! another, as replay reads them) or one payload that gets a valid header and CRC32C, so the
//! payload parser is reached without the fuzzer having to solve the checksum.
#![no_main]

#[allow(dead_code)]
#[path = "../../node/src/rule/wal/codec.rs"]
mod codec;

use codec::{decode, encode, Record, HEADER};
use libfuzzer_sys::fuzz_target;

fn same(a: &Record, b: &Record) -> bool {
    match (a, b) {
        (Record::Samples { ts: t1, series: s1 }, Record::Samples { ts: t2, series: s2 }) => {
            t1 == t2
                && s1.len() == s2.len()
                && s1
                    .iter()
                    .zip(s2)
                    .all(|((l1, v1), (l2, v2))| l1 == l2 && v1.to_bits() == v2.to_bits())
        }
        _ => a == b,
    }
}

fn check(record: &Record) {
    let mut again = Vec::new();
    encode(record, &mut again);
    let (back, n) = decode(&again).expect("own frame decodes");
    assert_eq!(n, again.len());
    assert!(same(&back, record), "{back:?} != {record:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let mut pos = 0;
        while pos < rest.len() {
            match decode(&rest[pos..]) {
                Ok((record, n)) => {
                    assert!(n >= HEADER && n <= rest.len() - pos);
                    check(&record);
                    pos += n;
                }
                Err(_) => break,
            }
        }
    } else if !rest.is_empty() {
        let mut frame = (rest.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc32c::crc32c(rest).to_le_bytes());
        frame.extend_from_slice(rest);
        if let Ok((record, n)) = decode(&frame) {
            assert_eq!(n, frame.len());
            check(&record);
        }
    }
});
