//! Helpers for the compaction unit tests: metas and blocks in an in-memory bucket.

use crate::block::meta::{BlockMeta, ThanosMeta};
use crate::block::BlockWriterOptions;
use crate::bucket::blocks::upload_block;
use crate::bucket::{Bucket, ObjectStoreBucket};
use crate::labels::Labels;
use std::sync::Arc;
use ulid::Ulid;

/// A meta with ULID `id` (timestamp part 0), range `[min, max)`, external labels and resolution.
pub fn meta(id: u128, min: i64, max: i64, labels: &[(&str, &str)], resolution: i64) -> BlockMeta {
    let mut m = BlockMeta::new_level1(Ulid(id), min, max);
    let t = m.thanos_mut();
    t.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.downsample.resolution = resolution;
    t.source = "sidecar".into();
    m
}

/// An empty in-memory bucket.
pub fn bucket() -> Arc<dyn Bucket> {
    Arc::new(ObjectStoreBucket::in_memory())
}

/// One series' labels and samples.
pub type Series = (Labels, Vec<(i64, f64)>);

/// Writes `series` as a block covering `[min, max)` with external `labels` and uploads it.
pub async fn put_block(
    bucket: &dyn Bucket,
    series: Vec<Series>,
    min: i64,
    max: i64,
    labels: &[(&str, &str)],
) -> BlockMeta {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sorted = series;
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let id = Ulid::new();
    let mut w = crate::block::BlockWriter::new(dir.path(), id, BlockWriterOptions::default())
        .expect("writer");
    for (l, s) in sorted {
        w.add_series(l, &s).expect("series");
    }
    let thanos = ThanosMeta {
        version: 1,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        source: "sidecar".into(),
        ..ThanosMeta::default()
    };
    let (path, meta) = w.finish(Some(thanos), Some((min, max))).expect("finish");
    upload_block(bucket, &path, &meta, None)
        .await
        .expect("upload")
}

/// `n` samples of one series every `step` ms from `start`, value = timestamp / 1000.
pub fn samples(start: i64, n: i64, step: i64) -> Vec<(i64, f64)> {
    (0..n)
        .map(|i| (start + i * step, (start + i * step) as f64 / 1000.0))
        .collect()
}

/// Labels `__name__=name, i=i`.
pub fn series_labels(name: &str, i: usize) -> Labels {
    Labels::from_pairs([("__name__", name.to_string()), ("i", i.to_string())])
}
