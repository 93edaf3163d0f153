//! Prometheus remote-read answers from outside, decoded as a sidecar will: a snappy-compressed
//! `prometheus.ReadResponse` (samples), or one frame's `prometheus.ChunkedReadResponse`
//! (XOR chunks, decoded by storage's chunk decoder). Neither panics nor allocates without
//! bound.
//!
//! The proto crate has no Prometheus remote-read types yet (and nothing in the workspace
//! decodes remote read), so the messages are declared here with prost, field for field from
//! Prometheus 2.42's prompb/remote.proto and prompb/types.proto; switch to the proto crate's
//! types when the sidecar adds them.
//!
//! Input: one byte choosing the body kind, then the body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use storage::chunkenc::{Chunk, Encoding};
use storage::labels::Labels;

/// Prometheus' default remote-read response limit is far above this; a fuzz input's body
/// claiming more than this decompressed is refused as a sidecar would refuse an oversized one.
const MAX_DECOMPRESSED: usize = 8 << 20;

#[derive(Clone, PartialEq, Message)]
struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    results: Vec<QueryResult>,
}

#[derive(Clone, PartialEq, Message)]
struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    query_index: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    chunks: Vec<PromChunk>,
}

#[derive(Clone, PartialEq, Message)]
struct PromChunk {
    #[prost(int64, tag = "1")]
    min_time_ms: i64,
    #[prost(int64, tag = "2")]
    max_time_ms: i64,
    /// UNKNOWN = 0, XOR = 1, HISTOGRAM = 2, FLOAT_HISTOGRAM = 3: TSDB's chunk encoding bytes.
    #[prost(int32, tag = "3")]
    r#type: i32,
    #[prost(bytes = "bytes", tag = "4")]
    data: Bytes,
}

fn labels(ls: Vec<Label>) -> Labels {
    Labels::from_pairs(ls.into_iter().map(|l| (l.name, l.value)))
}

fn sampled(body: &[u8]) {
    let Ok(len) = snap::raw::decompress_len(body) else {
        return;
    };
    if len > MAX_DECOMPRESSED {
        return;
    }
    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(body) else {
        return;
    };
    assert_eq!(raw.len(), len, "snappy's header length is what it decodes");
    let Ok(resp) = ReadResponse::decode(raw.as_slice()) else {
        return;
    };
    for r in resp.results {
        for ts in r.timeseries {
            let _ = labels(ts.labels);
            let _ = ts
                .samples
                .windows(2)
                .all(|w| w[0].timestamp < w[1].timestamp);
        }
    }
}

fn chunked(frame: &[u8]) {
    let Ok(resp) = ChunkedReadResponse::decode(frame) else {
        return;
    };
    for s in resp.chunked_series {
        let _ = labels(s.labels);
        for c in s.chunks {
            let Ok(byte) = u8::try_from(c.r#type) else {
                continue;
            };
            let Ok(encoding) = Encoding::from_byte(byte) else {
                continue;
            };
            let _ = Chunk::new(encoding, c.data).samples();
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&kind, body)) = input.split_first() else {
        return;
    };
    if kind % 2 == 0 {
        sampled(body);
    } else {
        chunked(body);
    }
});
