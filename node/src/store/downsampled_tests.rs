//! Series over a bucket holding a raw block and its 5m block: the resolution a request allows
//! picks the blocks, and downsampled chunks travel as the requested aggregates.

use super::*;
use crate::store::convert::{decode_chunks_as, AggrRead};
use std::collections::BTreeMap;
use storage::block::meta::ThanosMeta;
use storage::block::{write_block, BlockWriterOptions};
use storage::downsample::{downsample_block, RES_5M};
use storage::labels::Labels;
use tokio_stream::StreamExt as _;

const MIN: i64 = 60_000;

/// One gauge sampled every minute for 10 h, at 1 ms before each minute.
fn raw() -> Vec<(i64, f64)> {
    (0..600)
        .map(|i| ((i + 1) * MIN - 1, ((i * 37) % 101) as f64))
        .collect()
}

async fn service(dir: &std::path::Path) -> StoreService {
    let bucket_dir = dir.join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let labels = Labels::from_pairs([("__name__", "m")]);
    let thanos = ThanosMeta {
        version: 1,
        source: "test".into(),
        labels: BTreeMap::from([("replica".to_string(), "a".to_string())]),
        ..Default::default()
    };
    let (_, meta) = write_block(
        &bucket_dir,
        vec![(labels, raw())],
        Some(thanos),
        BlockWriterOptions::default(),
    )
    .expect("block");
    let (registry, bucket) = crate::store::tests::filesystem_bucket(dir, &bucket_dir);
    downsample_block(bucket.clone(), &meta, RES_5M, &dir.join("scratch"))
        .await
        .expect("downsample");
    let catalog = Catalog::new(bucket, &registry).expect("catalog");
    catalog.sync().await.expect("sync");
    assert_eq!(catalog.snapshot().len(), 2, "raw and 5m blocks served");
    StoreService::new(Arc::new(catalog), DEFAULT_FRAME_BYTES)
}

fn request(window: i64, aggregates: &[pb::Aggr]) -> pb::SeriesRequest {
    pb::SeriesRequest {
        min_time: 0,
        max_time: 600 * MIN,
        matchers: vec![pb::LabelMatcher {
            r#type: 0,
            name: "__name__".into(),
            value: "m".into(),
        }],
        max_resolution_window: window,
        aggregates: aggregates.iter().map(|a| *a as i32).collect(),
        ..Default::default()
    }
}

async fn chunks(svc: &StoreService, req: pb::SeriesRequest) -> Result<Vec<pb::AggrChunk>, Status> {
    let mut stream = Store::series(svc, Request::new(req)).await?.into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.next().await {
        match frame?.result {
            Some(series_response::Result::Series(s)) => out.extend(s.chunks),
            Some(series_response::Result::Batch(b)) => {
                out.extend(b.series.into_iter().flat_map(|s| s.chunks))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Per 5m window (keyed by its last ms): count, sum, min, max of the raw samples.
fn windows() -> BTreeMap<i64, [f64; 4]> {
    let mut m: BTreeMap<i64, [f64; 4]> = BTreeMap::new();
    for (t, v) in raw() {
        let e = m
            .entry(t - t % RES_5M + RES_5M - 1)
            .or_insert([0.0, 0.0, f64::MAX, f64::MIN]);
        e[0] += 1.0;
        e[1] += v;
        e[2] = e[2].min(v);
        e[3] = e[3].max(v);
    }
    m
}

#[tokio::test]
async fn a_raw_request_reads_the_raw_block_exactly_as_before() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let svc = service(tmp.path()).await;
    let got = chunks(&svc, request(0, &[pb::Aggr::Max]))
        .await
        .expect("series");
    assert!(got.iter().all(|c| c.raw.is_some() && c.max.is_none()));
    let samples = decode_chunks_as(&got, 0, 600 * MIN, AggrRead::Max).expect("decode");
    assert_eq!(samples, raw());
}

#[tokio::test]
async fn a_5m_request_reads_the_requested_aggregates_of_the_5m_block() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let svc = service(tmp.path()).await;
    let want = windows();
    for (aggr, read, column) in [
        (pb::Aggr::Count, AggrRead::Count, 0),
        (pb::Aggr::Sum, AggrRead::Sum, 1),
        (pb::Aggr::Min, AggrRead::Min, 2),
        (pb::Aggr::Max, AggrRead::Max, 3),
    ] {
        let got = chunks(&svc, request(RES_5M, &[aggr]))
            .await
            .expect("series");
        assert!(!got.is_empty());
        assert!(got.iter().all(|c| c.raw.is_none()), "{aggr:?}: no raw data");
        let samples = decode_chunks_as(&got, 0, 600 * MIN, read).expect("decode");
        let expected: Vec<(i64, f64)> = want.iter().map(|(t, w)| (*t, w[column])).collect();
        assert_eq!(samples, expected, "{aggr:?}");
    }
    // No aggregate named: count and sum, read as the window average.
    let got = chunks(&svc, request(RES_5M, &[])).await.expect("series");
    assert!(got
        .iter()
        .all(|c| c.count.is_some() && c.sum.is_some() && c.max.is_none()));
    let avg = decode_chunks_as(&got, 0, 600 * MIN, AggrRead::Average).expect("decode");
    let expected: Vec<(i64, f64)> = want.iter().map(|(t, w)| (*t, w[1] / w[0])).collect();
    assert_eq!(avg, expected);
    // A window finer than 5m is raw data again.
    let got = chunks(&svc, request(RES_5M - 1, &[pb::Aggr::Max]))
        .await
        .expect("series");
    assert!(got.iter().all(|c| c.raw.is_some()));
}

#[tokio::test]
async fn bad_downsampling_requests_are_invalid_arguments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let svc = service(tmp.path()).await;
    let mut unknown = request(RES_5M, &[]);
    unknown.aggregates = vec![42];
    let e = chunks(&svc, unknown).await.expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("aggregate 42"), "{e:?}");
    let e = chunks(&svc, request(-1, &[])).await.expect_err("refused");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("negative"), "{e:?}");
}
