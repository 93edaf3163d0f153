#![allow(clippy::unwrap_used)]
//! Whole blocks through a bucket: a raw block to 5m, that 5m block to 1h, each checked
//! against a plain computation over the raw samples.

use super::*;
use crate::block::meta::ThanosMeta;
use crate::block::{write_block, BlockWriterOptions};
use crate::bucket::backend::ObjectStoreBucket;
use crate::bucket::blocks::{list_block_ids, read_meta};
use crate::downsample::window::apply_counter_resets;
use crate::downsample::{AggrType, RES_1H};
use std::collections::BTreeMap;

const MIN: i64 = 60_000;

/// 50 hours of one-minute samples for a counter with two resets and a gauge, and a series
/// with a gap of several hours.
fn raw_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let start = 1_700_000_000_000 / MIN * MIN + 17_000;
    let n = 50 * 60;
    let mut counter = Vec::new();
    let mut value = 0.0;
    for i in 0..n {
        value = if i == 700 || i == 2000 {
            3.0
        } else {
            value + (i % 7) as f64
        };
        counter.push((start + i * MIN, value));
    }
    let gauge = (0..n)
        .map(|i| (start + i * MIN, ((i * 37) % 101) as f64 - 50.5))
        .collect();
    let gappy = (0..n)
        .filter(|i| !(600..1000).contains(i))
        .map(|i| (start + i * MIN, i as f64))
        .collect();
    vec![
        (
            Labels::from_pairs([("__name__", "requests_total"), ("job", "a")]),
            counter,
        ),
        (
            Labels::from_pairs([("__name__", "temperature"), ("job", "a")]),
            gauge,
        ),
        (
            Labels::from_pairs([("__name__", "gappy"), ("job", "b")]),
            gappy,
        ),
    ]
}

/// Count, sum, min, max per resolution-aligned window.
fn reference(samples: &[(i64, f64)], res: i64) -> BTreeMap<i64, [f64; 4]> {
    let mut m: BTreeMap<i64, [f64; 4]> = BTreeMap::new();
    for &(t, v) in samples {
        let e = m
            .entry(t - t % res)
            .or_insert([0.0, 0.0, f64::MAX, f64::MIN]);
        e[0] += 1.0;
        e[1] += v;
        e[2] = e[2].min(v);
        e[3] = e[3].max(v);
    }
    m
}

/// The counter with resets applied: at each raw timestamp, and at the last raw sample of
/// each window.
fn reference_counter(samples: &[(i64, f64)], res: i64) -> (BTreeMap<i64, f64>, BTreeMap<i64, f64>) {
    let (mut at, mut window) = (BTreeMap::new(), BTreeMap::new());
    let mut total = 0.0;
    let mut last = None;
    for &(t, v) in samples {
        total += match last {
            None => v,
            Some(l) if v < l => v,
            Some(l) => v - l,
        };
        last = Some(v);
        at.insert(t, total);
        window.insert(t - t % res, total);
    }
    (at, window)
}

struct Read {
    meta: BlockMeta,
    series: Vec<(Labels, Vec<(ChunkMeta, AggrChunk)>)>,
}

async fn read_block(bucket: &Arc<dyn Bucket>, id: Ulid) -> Read {
    let meta = read_meta(bucket.as_ref(), id).await.unwrap();
    let block = Block::open_bucket(bucket.clone(), meta.clone())
        .await
        .unwrap();
    let mut series = Vec::new();
    for r in block.index().all_postings().await.unwrap() {
        let (labels, metas) = block.index().series(r).await.unwrap();
        let mut chunks = Vec::new();
        for m in metas {
            let (enc, data) = block.chunks().chunk_record(m.chunk_ref).await.unwrap();
            assert_eq!(enc, CHUNK_ENC_AGGR, "{labels}: chunk encoding");
            chunks.push((m, AggrChunk::from_bytes(data)));
        }
        series.push((labels, chunks));
    }
    Read { meta, series }
}

/// Checks one series' aggregate chunks against the raw samples at `res`.
fn check_series(labels: &Labels, chunks: &[(ChunkMeta, AggrChunk)], raw: &[(i64, f64)], res: i64) {
    let want = reference(raw, res);
    let mut got: BTreeMap<i64, [f64; 4]> = BTreeMap::new();
    let mut prev_max = i64::MIN;
    for (m, c) in chunks {
        assert!(m.min_time > prev_max, "{labels}: chunks overlap");
        prev_max = m.max_time;
        let [count, sum, min, max] = [AggrType::Count, AggrType::Sum, AggrType::Min, AggrType::Max]
            .map(|a| c.samples(a).unwrap());
        assert_eq!(
            count.first().map(|s| s.0),
            Some(m.min_time),
            "{labels}: chunk min time"
        );
        assert_eq!(
            count.last().map(|s| s.0),
            Some(m.max_time),
            "{labels}: chunk max time"
        );
        for i in 0..count.len() {
            let t = count[i].0;
            assert!(
                [sum[i].0, min[i].0, max[i].0].iter().all(|&x| x == t),
                "{labels}: aggregates not aligned at {t}"
            );
            got.insert(t - t % res, [count[i].1, sum[i].1, min[i].1, max[i].1]);
        }
    }
    assert_eq!(got, want, "{labels}: count/sum/min/max per window");

    let last_chunk = chunks.last().unwrap().1.samples(AggrType::Counter).unwrap();
    assert_eq!(
        last_chunk.last().map(|s| s.1),
        raw.last().map(|s| s.1),
        "{labels}: last raw value"
    );
    if raw.iter().any(|s| s.1 < 0.0) {
        // Not a counter: its counter aggregate need not be monotonic, so readers' reset
        // handling would not give back the raw totals.
        return;
    }
    // A reader applying resets across chunks sees the raw counter's total at each window.
    let counters: Vec<Vec<(i64, f64)>> = chunks
        .iter()
        .map(|(_, c)| c.samples(AggrType::Counter).unwrap())
        .collect();
    let applied = apply_counter_resets(counters);
    let (at_raw, at_window) = reference_counter(raw, res);
    assert_eq!(
        applied.first(),
        raw.first(),
        "{labels}: first raw value kept"
    );
    // Window ends carry the total at the window's last sample; a chunk's first sample is a
    // raw timestamp and carries the total there.
    for (t, v) in applied.iter().skip(1) {
        let want = at_raw.get(t).or_else(|| at_window.get(&(t - t % res)));
        assert_eq!(Some(v), want, "{labels}: counter at {t}");
    }
    assert!(
        applied.len() > at_window.len(),
        "{labels}: every window has a counter sample"
    );
}

#[tokio::test]
async fn raw_block_to_5m_then_1h_matches_the_raw_samples_in_memory() {
    raw_to_5m_to_1h(Arc::new(ObjectStoreBucket::in_memory())).await;
}

#[tokio::test]
async fn raw_block_to_5m_then_1h_matches_the_raw_samples_over_s3() {
    let s3 = crate::testing::s3::S3Server::start().await.unwrap();
    let config = crate::bucket::config::BucketConfig::parse(
        &s3.yaml(crate::testing::s3::SECRET_KEY, ""),
        "test",
    )
    .unwrap();
    let metrics =
        crate::bucket::metrics::BucketMetrics::register(&prometheus::Registry::new()).unwrap();
    let bucket = crate::bucket::open::open_bucket(&config, &Default::default(), &metrics).unwrap();
    raw_to_5m_to_1h(bucket).await;
    // The objects really are in the S3 server's directory.
    assert!(std::fs::read_dir(s3.bucket_dir()).unwrap().count() >= 3);
}

#[tokio::test]
async fn raw_block_to_5m_then_1h_matches_the_raw_samples_in_a_filesystem_bucket() {
    let root = tempfile::tempdir().unwrap();
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        root.path().display()
    );
    let config = crate::bucket::config::BucketConfig::parse(&yaml, "test").unwrap();
    let metrics =
        crate::bucket::metrics::BucketMetrics::register(&prometheus::Registry::new()).unwrap();
    let bucket = crate::bucket::open::open_bucket(&config, &Default::default(), &metrics).unwrap();
    raw_to_5m_to_1h(bucket).await;
}

async fn raw_to_5m_to_1h(bucket: Arc<dyn Bucket>) {
    let tmp = tempfile::tempdir().unwrap();
    let mut series = raw_series();
    // The index lists series in label order.
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let thanos = ThanosMeta {
        labels: BTreeMap::from([("cluster".to_string(), "eu1".to_string())]),
        source: "sidecar".into(),
        ..Default::default()
    };
    let (dir, meta) = write_block(
        &tmp.path().join("raw"),
        series.clone(),
        Some(thanos),
        BlockWriterOptions::default(),
    )
    .unwrap();
    let mut meta = upload_block(bucket.as_ref(), &dir, &meta, None)
        .await
        .unwrap();
    meta.compaction.level = 3;
    meta.compaction.sources = vec![Ulid(7), Ulid(8), meta.ulid];
    meta.compaction.sources.sort();
    bucket
        .put(&format!("{}/meta.json", meta.ulid), meta.to_json().into())
        .await
        .unwrap();

    let work = tmp.path().join("work");
    let id5 = downsample_block(bucket.clone(), &meta, RES_5M, &work)
        .await
        .unwrap();
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(left.is_empty(), "local copies removed: {left:?}");
    let b5 = read_block(&bucket, id5).await;
    let m = &b5.meta;
    assert_eq!((m.min_time, m.max_time), (meta.min_time, meta.max_time));
    assert_eq!(m.compaction, meta.compaction);
    let t = m.thanos.as_ref().unwrap();
    assert_eq!(t.downsample.resolution, RES_5M);
    assert_eq!(t.source, "compactor");
    assert_eq!(t.labels, meta.thanos.as_ref().unwrap().labels);
    let files: Vec<&str> = t.files.iter().map(|f| f.rel_path.as_str()).collect();
    assert_eq!(files, ["chunks/000001", "index", "meta.json"]);
    assert_eq!(t.segment_files, ["000001"]);
    assert_eq!(m.stats.num_series, 3);
    assert_eq!(
        m.stats.num_chunks,
        b5.series.iter().map(|s| s.1.len() as u64).sum::<u64>()
    );
    assert_eq!(b5.series.len(), series.len());
    for ((labels, chunks), (want_labels, raw)) in b5.series.iter().zip(&series) {
        assert_eq!(labels, want_labels);
        // 50 h is 600 windows: Thanos cuts those into chunks of at most ~140.
        assert!(chunks.len() >= 4, "{labels}: {} chunks", chunks.len());
        check_series(labels, chunks, raw, RES_5M);
    }

    let id1 = downsample_block(bucket.clone(), &b5.meta, RES_1H, &work)
        .await
        .unwrap();
    let b1 = read_block(&bucket, id1).await;
    assert_eq!(
        b1.meta.thanos.as_ref().unwrap().downsample.resolution,
        RES_1H
    );
    assert_eq!(b1.meta.compaction.sources, meta.compaction.sources);
    for ((labels, chunks), (_, raw)) in b1.series.iter().zip(&series) {
        check_series(labels, chunks, raw, RES_1H);
    }
    // `tools bucket verify` reads aggregate chunks too: both downsampled blocks are sound.
    for b in [&b5.meta, &b1.meta] {
        let issues = crate::block::verify::verify_block(bucket.clone(), b).await;
        assert!(issues.is_empty(), "{}: {issues:?}", b.ulid);
    }
    let mut ids = list_block_ids(bucket.as_ref()).await.unwrap();
    ids.sort();
    let mut want = vec![meta.ulid, id5, id1];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn a_target_resolution_not_coarser_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let mut meta = BlockMeta::new_level1(Ulid(1), 0, 10);
    meta.thanos_mut().downsample.resolution = RES_5M;
    let e = downsample_block(bucket.clone(), &meta, RES_5M, tmp.path())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DownsampleError::ResolutionNotLower {
                current: RES_5M,
                target: RES_5M,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("not coarser"), "{e}");
    assert!(list_block_ids(bucket.as_ref()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_input_block_is_an_error_and_uploads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let meta = BlockMeta::new_level1(Ulid(1), 0, 10);
    let e = downsample_block(bucket.clone(), &meta, RES_5M, tmp.path())
        .await
        .unwrap_err();
    assert!(matches!(e, DownsampleError::Block(_)), "{e}");
    assert!(list_block_ids(bucket.as_ref()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_downsampled_block_passes_promtool_analyze() {
    if !crate::testing::promtool_available() {
        eprintln!("SKIPPED: promtool/prometheus not on PATH (bash .ci/run installs them)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut series = raw_series();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let (dir, _) = write_block(
        &tmp.path().join("raw"),
        series,
        Some(ThanosMeta::default()),
        BlockWriterOptions::default(),
    )
    .unwrap();
    let input = Block::open_dir(&dir).await.unwrap();
    let out = tmp.path().join("out");
    let id = Ulid::new();
    let meta = write_downsampled(&input, id, &out.join(id.to_string()), RES_5M)
        .await
        .unwrap();
    let report = crate::testing::prometheus::promtool_analyze(&out, &id.to_string()).unwrap();
    assert!(report.contains(&format!("Block ID: {id}")), "{report}");
    assert!(report.contains("Series: 3"), "{report}");
    assert_eq!(meta.stats.num_series, 3);
    // Samples are counted as Thanos does: the windows in the count aggregates.
    let windows: u64 = input
        .all_series()
        .await
        .unwrap()
        .iter()
        .map(|s| reference(&s.samples, RES_5M).len() as u64)
        .sum();
    assert_eq!(meta.stats.num_samples, windows);
}
