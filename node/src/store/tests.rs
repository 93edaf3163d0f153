//! The store's services and the querier's client together in one process: frames under a
//! small size limit reassemble into whole series, batches too, and external labels travel.

use super::client::StoreEndpoint;
use super::{Catalog, StoreService};
use proto::thanos::store_client::StoreClient;
use proto::thanos::{label_matcher, series_response, LabelMatcher, SeriesRequest};
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::block::meta::ThanosMeta;
use storage::block::{write_block, BlockWriterOptions};
use storage::bucket::{open_from_flags, BucketMetrics, BucketOptions};
use storage::labels::Labels;
use storage::matcher::Matcher;

type Data = Vec<(Labels, Vec<(i64, f64)>)>;

fn data() -> Data {
    (0..3)
        .map(|i| {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]);
            let samples = (0..1000)
                .map(|k| (k * 15_000, (k * (i + 1)) as f64 * 0.5))
                .collect();
            (labels, samples)
        })
        .collect()
}

/// A store over one block of `data()` with external labels `region="eu"`, serving frames of
/// at most `frame_bytes` on a loopback port; returns the address.
async fn serve(dir: &std::path::Path, frame_bytes: usize) -> String {
    let bucket_dir = dir.join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let thanos = ThanosMeta {
        version: 1,
        labels: BTreeMap::from([("region".to_string(), "eu".to_string())]),
        source: "test".into(),
        ..Default::default()
    };
    write_block(
        &bucket_dir,
        data(),
        Some(thanos),
        BlockWriterOptions::default(),
    )
    .expect("block");
    let (registry, bucket) = crate::store::tests::filesystem_bucket(dir, &bucket_dir);
    let catalog = Arc::new(Catalog::new(bucket, &registry).expect("catalog"));
    catalog.sync().await.expect("sync");
    let svc = StoreService::new(catalog, frame_bytes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.store_server())
            .add_service(svc.info_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

fn with_region(d: Data) -> Data {
    let eu = Labels::from_pairs([("region", "eu")]);
    d.into_iter().map(|(l, s)| (l.merged(&eu), s)).collect()
}

/// A FILESYSTEM bucket at `bucket_dir` opened as the store opens its bucket, and the registry
/// its metrics are in (the catalog registers there too).
pub(crate) fn filesystem_bucket(
    dir: &std::path::Path,
    bucket_dir: &std::path::Path,
) -> (prometheus::Registry, Arc<dyn storage::bucket::Bucket>) {
    let registry = prometheus::Registry::new();
    let metrics = BucketMetrics::register(&registry).expect("metrics");
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    );
    let bucket = open_from_flags(None, Some(&yaml), dir, &BucketOptions::default(), &metrics)
        .expect("bucket");
    (registry, bucket)
}

#[tokio::test]
async fn series_cut_into_small_frames_reassemble_whole_on_the_client() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let addr = serve(tmp.path(), 200).await;
    let store = StoreEndpoint::new(&addr).expect("endpoint");

    let meta = store.info().await.expect("info");
    assert_eq!(
        meta.label_sets,
        vec![Labels::from_pairs([("region", "eu")])]
    );
    assert_eq!((meta.min_time, meta.max_time), (0, 999 * 15_000 + 1));

    let got = store
        .series(
            &[Matcher::equal("__name__", "m")],
            i64::MIN,
            i64::MAX,
            false,
        )
        .await
        .expect("series");
    let got: Data = got
        .series
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect();
    assert_eq!(got, with_region(data()));

    // A sub-range comes back trimmed to it.
    let part = store
        .series(&[Matcher::equal("i", "1")], 30_000, 60_000, false)
        .await
        .expect("series");
    assert_eq!(part.series.len(), 1);
    assert_eq!(
        part.series[0].samples,
        vec![(30_000, 2.0), (45_000, 3.0), (60_000, 4.0)]
    );

    // The series really spanned several frames.
    let mut client = StoreClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let req = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![LabelMatcher {
            r#type: label_matcher::Type::Eq as i32,
            name: "__name__".into(),
            value: "m".into(),
        }],
        ..Default::default()
    };
    let mut stream = client
        .series(req.clone())
        .await
        .expect("Series")
        .into_inner();
    let mut frames = 0;
    while stream.message().await.expect("frame").is_some() {
        frames += 1;
    }
    assert!(
        frames > 3 * 2,
        "{frames} frames for 3 series of 9 chunks under 200 bytes each"
    );

    // External labels exclude or satisfy matchers.
    let none = store
        .series(&[Matcher::equal("region", "us")], i64::MIN, i64::MAX, false)
        .await
        .expect("series");
    assert!(none.series.is_empty());
    let all = store
        .series(&[Matcher::equal("region", "eu")], i64::MIN, i64::MAX, true)
        .await
        .expect("series");
    assert_eq!(all.series.len(), 3);
}

#[tokio::test]
async fn batched_responses_carry_every_series_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let addr = serve(tmp.path(), super::DEFAULT_FRAME_BYTES).await;
    let mut client = StoreClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let req = SeriesRequest {
        min_time: i64::MIN,
        max_time: i64::MAX,
        matchers: vec![LabelMatcher {
            r#type: label_matcher::Type::Re as i32,
            name: "i".into(),
            value: ".+".into(),
        }],
        response_batch_size: 2,
        ..Default::default()
    };
    let mut stream = client.series(req).await.expect("Series").into_inner();
    let mut sizes = Vec::new();
    while let Some(frame) = stream.message().await.expect("frame") {
        match frame.result {
            Some(series_response::Result::Batch(b)) => sizes.push(b.series.len()),
            other => panic!("expected a batch, got {other:?}"),
        }
    }
    assert_eq!(sizes, vec![2, 1]);
}

#[tokio::test]
async fn a_store_whose_blocks_are_not_loaded_is_unavailable_not_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = prometheus::Registry::new();
    let metrics = BucketMetrics::register(&registry).expect("metrics");
    let bucket = open_from_flags(None, None, tmp.path(), &BucketOptions::default(), &metrics)
        .expect("bucket");
    // Never synced.
    let svc = StoreService::new(
        Arc::new(Catalog::new(bucket, &registry).expect("catalog")),
        super::DEFAULT_FRAME_BYTES,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.store_server())
            .add_service(svc.info_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let store = StoreEndpoint::new(&addr).expect("endpoint");
    let e = store.info().await.expect_err("not ready");
    assert!(e.to_string().contains("not ready"), "{e}");
    let e = store
        .series(&[Matcher::equal("a", "b")], 0, 1, false)
        .await
        .expect_err("not ready");
    assert!(e.to_string().contains("Unavailable"), "{e}");
}
