//! Chunk records and chunk data from outside: parsing and decoding never panics.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use storage::block::segments::parse_record;
use storage::block::FileLocation;
use storage::chunkenc::{Chunk, Encoding};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if let Ok(encoding) = Encoding::from_byte(first) {
        let _ = Chunk::new(encoding, Bytes::copy_from_slice(rest)).samples();
    }
    let loc = FileLocation::new("fuzz", "chunks/000001");
    if let Ok((chunk, _)) = parse_record(&Bytes::copy_from_slice(data), 8, &loc) {
        let _ = chunk.samples();
    }
});
