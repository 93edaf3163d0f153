//! meta.json from outside: parsing never panics, and what parses serialises back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::block::BlockMeta;

fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = BlockMeta::parse("fuzz", data) {
        let again = BlockMeta::parse("fuzz", &meta.to_json()).expect("own output parses");
        assert_eq!(again.ulid, meta.ulid);
    }
});
