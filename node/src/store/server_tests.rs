//! The store's time window and request limits, on the service itself.

use super::*;
use crate::store::catalog::TimeWindow;
use crate::store::flags::TimeOrDuration;
use proto::thanos::label_matcher;
use std::collections::BTreeMap;
use storage::block::meta::ThanosMeta;
use storage::block::{write_block, BlockWriterOptions};
use storage::bucket::fetcher::MetaFetcher;
use storage::labels::Labels;
use tokio_stream::StreamExt as _;

/// A service over one block of three series sampled every 15 s for 1000 samples.
async fn service(dir: &std::path::Path, window: TimeWindow, limits: SeriesLimits) -> StoreService {
    let bucket_dir = dir.join("bucket");
    std::fs::create_dir_all(&bucket_dir).expect("bucket dir");
    let series = (0..3)
        .map(|i| {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]);
            (labels, (0..1000).map(|k| (k * 15_000, k as f64)).collect())
        })
        .collect();
    let thanos = ThanosMeta {
        version: 1,
        labels: BTreeMap::from([("region".to_string(), "eu".to_string())]),
        source: "test".into(),
        ..Default::default()
    };
    write_block(
        &bucket_dir,
        series,
        Some(thanos),
        BlockWriterOptions::default(),
    )
    .expect("block");
    let (registry, bucket) = crate::store::tests::filesystem_bucket(dir, &bucket_dir);
    let fetcher = MetaFetcher::new(bucket.clone())
        .with_filter(crate::store::catalog::TimeWindowFilter(window.clone()));
    let options = crate::store::catalog::CatalogOptions {
        fetcher,
        window,
        header_dir: Some(dir.join("headers")),
        header_cache_bytes: 1,
        index_cache: None,
    };
    let catalog = Catalog::with_options(bucket, options, &registry).expect("catalog");
    catalog.sync().await.expect("sync");
    StoreService::new(Arc::new(catalog), DEFAULT_FRAME_BYTES).with_limits(limits)
}

fn window(min: i64, max: i64) -> TimeWindow {
    TimeWindow {
        min: TimeOrDuration::At(min),
        max: TimeOrDuration::At(max),
        clock: storage::bucket::fetcher::filters::system_clock(),
    }
}

fn all_of_m(mint: i64, maxt: i64, skip_chunks: bool) -> pb::SeriesRequest {
    pb::SeriesRequest {
        min_time: mint,
        max_time: maxt,
        matchers: vec![pb::LabelMatcher {
            r#type: label_matcher::Type::Eq as i32,
            name: "__name__".into(),
            value: "m".into(),
        }],
        skip_chunks,
        ..Default::default()
    }
}

/// The series frames of a Series call, or its status.
async fn series(svc: &StoreService, req: pb::SeriesRequest) -> Result<Vec<pb::Series>, Status> {
    let mut stream = Store::series(svc, Request::new(req)).await?.into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.next().await {
        if let Some(series_response::Result::Series(s)) = frame?.result {
            out.push(s);
        }
    }
    Ok(out)
}

#[tokio::test]
async fn series_over_a_limit_are_refused_as_resource_exhausted_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let open = service(tmp.path(), TimeWindow::unbounded(), SeriesLimits::default()).await;
    let all = series(&open, all_of_m(i64::MIN, i64::MAX, false))
        .await
        .expect("series");
    assert_eq!(all.len(), 3);
    let chunks: u64 = all.iter().map(|s| s.chunks.len() as u64).sum();
    assert!(chunks > 3, "{chunks} chunks");

    let limited = |series, samples| SeriesLimits { series, samples };
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path(), TimeWindow::unbounded(), limited(2, 0)).await;
    let e = series(&svc, all_of_m(i64::MIN, i64::MAX, false))
        .await
        .expect_err("over");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message().contains("series limit") && e.message().contains("got 3"),
        "{e:?}"
    );
    // A narrower request is under the limit.
    let mut one = all_of_m(i64::MIN, i64::MAX, false);
    one.matchers.push(pb::LabelMatcher {
        r#type: label_matcher::Type::Eq as i32,
        name: "i".into(),
        value: "1".into(),
    });
    assert_eq!(series(&svc, one).await.expect("under").len(), 1);

    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(
        dir.path(),
        TimeWindow::unbounded(),
        limited(0, chunks * 120 - 1),
    )
    .await;
    let e = series(&svc, all_of_m(i64::MIN, i64::MAX, false))
        .await
        .expect_err("over");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("samples limit"), "{e:?}");
    // Without chunks there are no samples to count.
    assert_eq!(
        series(&svc, all_of_m(i64::MIN, i64::MAX, true))
            .await
            .expect("labels only")
            .len(),
        3
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(
        dir.path(),
        TimeWindow::unbounded(),
        limited(3, chunks * 120),
    )
    .await;
    assert_eq!(
        series(&svc, all_of_m(i64::MIN, i64::MAX, false))
            .await
            .expect("at the limit")
            .len(),
        3
    );
}

#[tokio::test]
async fn the_time_window_clamps_info_and_every_answer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (min, max) = (3_000_000, 6_000_000);
    let svc = service(tmp.path(), window(min, max), SeriesLimits::default()).await;
    let info = Info::info(&svc, Request::new(infopb::InfoRequest {}))
        .await
        .expect("info")
        .into_inner()
        .store
        .expect("store info");
    assert_eq!((info.min_time, info.max_time), (min, max));

    let got = series(&svc, all_of_m(i64::MIN, i64::MAX, false))
        .await
        .expect("series");
    assert_eq!(got.len(), 3);
    for s in &got {
        assert!(!s.chunks.is_empty());
        for c in &s.chunks {
            assert!(
                c.max_time >= min && c.min_time <= max,
                "chunk [{}, {}]",
                c.min_time,
                c.max_time
            );
        }
    }
    // A range outside the window is answered, empty.
    assert!(series(&svc, all_of_m(max + 1, i64::MAX, false))
        .await
        .expect("outside")
        .is_empty());
    let names = Store::label_names(
        &svc,
        Request::new(pb::LabelNamesRequest {
            start: max + 1,
            end: max + 1000,
            ..Default::default()
        }),
    )
    .await
    .expect("label names")
    .into_inner();
    assert!(names.names.is_empty(), "{:?}", names.names);

    // A window missing the block entirely: not loaded at all.
    let dir = tempfile::tempdir().expect("tempdir");
    let none = service(
        dir.path(),
        window(20_000_000, 30_000_000),
        SeriesLimits::default(),
    )
    .await;
    assert!(none.catalog.snapshot().is_empty());
}

/// Every frame of a Series call (batches flattened), with how many frames carried them.
async fn frames(svc: &StoreService, req: pb::SeriesRequest) -> (Vec<pb::Series>, usize) {
    let mut stream = Store::series(svc, Request::new(req))
        .await
        .expect("series")
        .into_inner();
    let (mut out, mut n) = (Vec::new(), 0);
    while let Some(frame) = stream.next().await {
        n += 1;
        match frame.expect("frame").result {
            Some(series_response::Result::Series(s)) => out.push(s),
            Some(series_response::Result::Batch(b)) => out.extend(b.series),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    (out, n)
}

#[tokio::test]
async fn streamed_answers_equal_answers_framed_at_once_in_every_framing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let at_once = service(tmp.path(), TimeWindow::unbounded(), SeriesLimits::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Streamed two chunks at a time: every series alone in its group.
    let streamed = service(dir.path(), TimeWindow::unbounded(), SeriesLimits::default())
        .await
        .with_streaming(0, 2);
    for (mint, maxt) in [
        (i64::MIN, i64::MAX),
        (2_000_000, 9_000_000),
        (14_000_000, 14_500_000),
    ] {
        for batch in [0, 2] {
            let mut req = all_of_m(mint, maxt, false);
            req.response_batch_size = batch;
            let (a, frames_a) = frames(&at_once, req.clone()).await;
            let (b, frames_b) = frames(&streamed, req).await;
            assert_eq!(a, b, "range [{mint}, {maxt}], batch {batch}");
            assert_eq!(a.len(), 3, "range [{mint}, {maxt}]");
            assert!(a.iter().all(|s| !s.chunks.is_empty()));
            for s in &a {
                let times: Vec<i64> = s.chunks.iter().map(|c| c.min_time).collect();
                assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            }
            let want_frames = if batch == 0 { 3 } else { 2 };
            assert_eq!(
                (frames_a, frames_b),
                (want_frames, want_frames),
                "batch {batch}"
            );
        }
    }
}

#[tokio::test]
async fn answers_framed_in_parts_equal_answers_framed_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let at_once = service(tmp.path(), TimeWindow::unbounded(), SeriesLimits::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Parts of two chunks or more: every series in a part of its own.
    let in_parts = service(dir.path(), TimeWindow::unbounded(), SeriesLimits::default())
        .await
        .with_parts(2);
    for (mint, maxt) in [(i64::MIN, i64::MAX), (2_000_000, 9_000_000)] {
        for batch in [0, 2, 64] {
            let mut req = all_of_m(mint, maxt, false);
            req.response_batch_size = batch;
            let (a, _) = frames(&at_once, req.clone()).await;
            let (b, frames_b) = frames(&in_parts, req).await;
            assert_eq!(a, b, "range [{mint}, {maxt}], batch {batch}");
            assert_eq!(a.len(), 3, "range [{mint}, {maxt}]");
            // Each part ends its own batch: three frames even when one batch could hold all.
            assert_eq!(frames_b, 3, "batch {batch}");
        }
    }
}

#[test]
fn answers_are_cut_into_at_most_four_parts_of_at_least_the_part_size() {
    assert_eq!(parts_of(10_000, 512), 4);
    assert_eq!(parts_of(1_500, 512), 2);
    assert_eq!(parts_of(100, 512), 1);
    assert_eq!(parts_of(100, 0), 4);
}
