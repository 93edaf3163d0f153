//! Thanos aggregate chunks (encoding 0xff) from outside: decoding every aggregate and
//! downsampling them further never panics, and what decodes re-encodes to the same aggregates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::downsample::{downsample_aggr, AggrChunk, AggrType};

fuzz_target!(|data: &[u8]| {
    // Chunks are at most a few KiB; larger inputs only slow the search down.
    if data.len() > 8 << 10 {
        return;
    }
    let c = AggrChunk::from_bytes(data.to_vec());
    if let Ok(parts) = c.parts() {
        // Non-canonical varints and trailing bytes are accepted (as in Thanos), so the bytes
        // may differ; what they say may not.
        let again = AggrChunk::encode(std::array::from_fn(|i| parts[i].as_ref()));
        assert_eq!(again.parts().ok().as_ref(), Some(&parts), "re-encoding changed the chunk");
    }
    for a in AggrType::ALL {
        let _ = c.samples(a);
    }
    let _ = c.num_samples();
    // The range and resolutions come from the input too (as a block's index would give them).
    let word = |i: usize| {
        let mut b = [0u8; 8];
        for (k, x) in data.iter().skip(i * 8).take(8).enumerate() {
            b[k] = *x;
        }
        i64::from_le_bytes(b)
    };
    let (mint, maxt) = (word(0), word(1));
    let in_res = (word(2) & 0xffff_ffff).max(1);
    let out_res = (word(3) & 0xffff_ffff).max(1);
    let _ = downsample_aggr(&[c.clone(), c], mint, maxt, in_res, out_res);
});
