//! StoreAPI messages from outside: decoding `thanos.SeriesRequest`, `LabelNamesRequest` and
//! `LabelValuesRequest` and converting their matchers as the store does, and decoding the
//! `SeriesResponse` frames a querier receives (labels, raw chunks) never panics; converted
//! matchers go back to the wire unchanged.
//!
//! node is a binary crate, so its `store/convert.rs` and `query/merge.rs` (which convert.rs
//! uses) are compiled into this target with `#[path]` includes.
//!
//! Input: one byte choosing the message, then the protobuf bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use proto::thanos::{self as pb, series_response};
use storage::labels::Labels;
use storage::matcher::Matcher;

#[allow(dead_code)]
#[path = "../../node/src/query/merge.rs"]
mod merge_impl;

mod query {
    pub(crate) use crate::merge_impl as merge;
}

#[allow(dead_code)]
#[path = "../../node/src/store/convert.rs"]
mod convert;

/// Strata's StoreAPI server refuses larger requests (`MAX_REQUEST_BYTES` is larger still; this
/// keeps each run fast).
const MAX_INPUT: usize = 64 << 10;

/// Converts matchers as the store does, then checks what the store relies on: converted
/// matchers go back to the wire unchanged, and matching a block's external labels or a value
/// never panics.
fn store_matchers(ms: &[pb::LabelMatcher]) {
    let Ok(converted) = convert::matchers_from_pb(ms) else {
        return;
    };
    for (m, wire) in converted.iter().zip(ms) {
        assert_eq!(&convert::matcher_to_pb(m), wire);
        let _ = m.matches("");
        let _ = m.matches(&wire.value);
    }
    let external = Labels::from_pairs([("cluster", "eu1"), ("replica", "a")]);
    let _ = query::merge::match_external(&external, &converted);
    let _: Vec<Matcher> = converted;
}

fn querier_series(s: pb::Series, mint: i64, maxt: i64) {
    let labels = convert::labels_from_pb(s.labels);
    assert!(labels
        .iter()
        .zip(labels.iter().skip(1))
        .all(|(a, b)| a.name < b.name));
    if let Ok(samples) = convert::decode_chunks(&s.chunks, mint, maxt) {
        assert!(
            samples.windows(2).all(|w| w[0].0 < w[1].0),
            "samples in time order"
        );
        assert!(samples.iter().all(|(t, _)| (mint..=maxt).contains(t)));
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&kind, bytes)) = input.split_first() else {
        return;
    };
    if bytes.len() > MAX_INPUT {
        return;
    }
    match kind % 4 {
        0 => {
            if let Ok(req) = pb::SeriesRequest::decode(bytes) {
                store_matchers(&req.matchers);
                let again = pb::SeriesRequest::decode(req.encode_to_vec().as_slice())
                    .expect("own encoding decodes");
                assert_eq!(again, req);
            }
        }
        1 => {
            if let Ok(req) = pb::LabelNamesRequest::decode(bytes) {
                store_matchers(&req.matchers);
            }
        }
        2 => {
            if let Ok(req) = pb::LabelValuesRequest::decode(bytes) {
                store_matchers(&req.matchers);
            }
        }
        _ => {
            let Ok(frame) = pb::SeriesResponse::decode(bytes) else {
                return;
            };
            let (mint, maxt) = (0, 1_000_000);
            match frame.result {
                Some(series_response::Result::Series(s)) => querier_series(s, mint, maxt),
                Some(series_response::Result::Batch(b)) => {
                    for s in b.series {
                        querier_series(s, mint, maxt);
                    }
                }
                _ => {}
            }
        }
    }
});
