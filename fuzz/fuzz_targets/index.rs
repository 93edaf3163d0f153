//! Index files from outside: opening, reading every series and verifying never panics.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use storage::block::index::IndexReader;
use storage::block::source::InMemory;
use storage::block::FileLocation;

fuzz_target!(|data: &[u8]| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    rt.block_on(async {
        let source = Arc::new(InMemory(Bytes::copy_from_slice(data)));
        let Ok(reader) = IndexReader::open(source, FileLocation::new("fuzz", "index")).await else {
            return;
        };
        if let Ok(refs) = reader.all_postings().await {
            for r in refs.into_iter().take(1000) {
                let _ = reader.series(r).await;
            }
        }
        for name in reader.label_names() {
            for value in reader.label_values(name) {
                let _ = reader.postings(name, value).await;
            }
        }
        let _ = reader.verify().await;
    });
});
