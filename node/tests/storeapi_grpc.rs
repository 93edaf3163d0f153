//! The store role speaks Thanos' StoreAPI on its gRPC port: Info describes the blocks, Series
//! streams sorted series with chunks byte-identical to the block files, and bad requests get
//! `InvalidArgument`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;
mod storeapi_common;

use proto::thanos::info::info_client::InfoClient;
use proto::thanos::store_client::StoreClient;
use proto::thanos::{label_matcher, series_response, LabelMatcher, SeriesRequest};
use std::collections::BTreeMap;
use storage::block::Block;
use storage::testing::promtool_available;
use storeapi_common::*;
use tonic::Code;

fn matcher(kind: label_matcher::Type, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind as i32,
        name: name.into(),
        value: value.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_serves_thanos_storeapi_with_chunks_as_stored() {
    if !promtool_available() {
        eprintln!("SKIPPED: promtool not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, block_dirs) = bucket(tmp.path());
    let mut store = StoreNode::start(tmp.path(), "store", &bucket);
    tokio::task::block_in_place(|| store.wait_ready());
    let url = format!("http://{}", store.grpc);

    let mut blocks = Vec::new();
    for d in &block_dirs {
        blocks.push(Block::open_dir(d).await.expect("open block"));
    }
    let info = InfoClient::connect(url.clone())
        .await
        .expect("connect")
        .info(proto::thanos::info::InfoRequest {})
        .await
        .expect("Info")
        .into_inner();
    assert_eq!(info.component_type, "store");
    let s = info.store.expect("store info");
    assert_eq!(
        s.min_time,
        blocks.iter().map(|b| b.meta().min_time).min().unwrap()
    );
    assert_eq!(
        s.max_time,
        blocks.iter().map(|b| b.meta().max_time).max().unwrap()
    );

    let mut client = StoreClient::connect(url.clone()).await.expect("connect");
    let legacy = client
        .info(proto::thanos::InfoRequest {})
        .await
        .expect("legacy Info")
        .into_inner();
    assert_eq!((legacy.min_time, legacy.max_time), (s.min_time, s.max_time));

    // Every chunk of the selected series, as the block files hold them.
    let mut want: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for b in &blocks {
        let refs = b
            .index()
            .postings("__name__", "http_requests_total")
            .await
            .expect("postings");
        for r in refs {
            let (labels, metas) = b.index().series(r).await.expect("series");
            if labels.get("job") != Some("api") {
                continue;
            }
            for m in metas {
                let c = b.chunk(&m).await.expect("chunk");
                want.entry(labels.to_string())
                    .or_default()
                    .push(c.data.to_vec());
            }
        }
    }
    let req = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![
            matcher(label_matcher::Type::Eq, "__name__", "http_requests_total"),
            matcher(label_matcher::Type::Re, "job", "a.i"),
        ],
        ..Default::default()
    };
    let mut stream = client
        .series(req.clone())
        .await
        .expect("Series")
        .into_inner();
    let mut got: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut order = Vec::new();
    while let Some(frame) = stream.message().await.expect("frame") {
        let Some(series_response::Result::Series(s)) = frame.result else {
            panic!("unexpected frame {frame:?}");
        };
        let labels = storage::labels::Labels::from_pairs(
            s.labels.iter().map(|l| (l.name.clone(), l.value.clone())),
        );
        let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "labels sorted by name");
        let times: Vec<i64> = s.chunks.iter().map(|c| c.min_time).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "chunks sorted by min_time"
        );
        for c in s.chunks {
            let raw = c.raw.expect("raw chunk");
            assert_eq!(raw.r#type, proto::thanos::chunk::Encoding::Xor as i32);
            got.entry(labels.to_string())
                .or_default()
                .push(raw.data.to_vec());
        }
        order.push(labels);
    }
    assert_eq!(got, want, "chunks byte-identical to the blocks'");
    assert_eq!(order.len(), 12);
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "series sorted, each once"
    );

    // skip_chunks: the same series, no chunks.
    let mut stream = client
        .series(SeriesRequest {
            skip_chunks: true,
            ..req.clone()
        })
        .await
        .expect("Series")
        .into_inner();
    let mut n = 0;
    while let Some(frame) = stream.message().await.expect("frame") {
        if let Some(series_response::Result::Series(s)) = frame.result {
            assert!(s.chunks.is_empty());
            n += 1;
        }
    }
    assert_eq!(n, 12);

    // Bad requests: a regex that does not compile, an empty label name, a reversed range.
    let bad = SeriesRequest {
        matchers: vec![matcher(label_matcher::Type::Re, "job", "(")],
        ..req.clone()
    };
    let e = client.series(bad).await.expect_err("bad regex refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("bad matcher"), "{}", e.message());
    let e = client
        .label_values(proto::thanos::LabelValuesRequest::default())
        .await
        .expect_err("empty label refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = client
        .series(SeriesRequest {
            min_time: 10,
            max_time: 5,
            ..req.clone()
        })
        .await
        .expect_err("reversed range refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    let names = client
        .label_names(proto::thanos::LabelNamesRequest {
            matchers: vec![matcher(
                label_matcher::Type::Eq,
                "__name__",
                "temperature_celsius",
            )],
            ..Default::default()
        })
        .await
        .expect("LabelNames")
        .into_inner();
    assert_eq!(names.names, vec!["__name__", "room"]);
    let values = client
        .label_values(proto::thanos::LabelValuesRequest {
            label: "room".into(),
            ..Default::default()
        })
        .await
        .expect("LabelValues")
        .into_inner();
    assert_eq!(values.values, vec!["attic", "cellar", "kitchen"]);
}
