use super::*;
use crate::block::Block;
use crate::bucket::marks::{read_mark, NO_COMPACT_MARK_FILENAME};
use crate::compact::index::read_index;
use crate::compact::planner::DEFAULT_RANGES;
use crate::compact::testutil::{bucket, put_block, samples, series_labels, Series};

const H: i64 = 3_600_000;

fn config(scratch: &std::path::Path) -> CompactorConfig {
    CompactorConfig {
        downsample: false,
        scratch_dir: scratch.join("compact"),
        consistency_delay_ms: 0,
        delete_delay_ms: 48 * H,
        retention: Retention::default(),
        concurrency: 2,
        replica_labels: Vec::new(),
        ranges: DEFAULT_RANGES.to_vec(),
        partial_upload_threshold_ms: super::super::cleaner::PARTIAL_UPLOAD_THRESHOLD_MS,
    }
}

fn two_hours(k: i64) -> Vec<Series> {
    (0..3)
        .map(|i| (series_labels("up", i), samples(k * 2 * H, 240, 30_000)))
        .collect()
}

async fn five_blocks(b: &dyn Bucket, labels: &[(&str, &str)]) -> Vec<BlockMeta> {
    let mut out = Vec::new();
    for k in 0..5 {
        out.push(put_block(b, two_hours(k), k * 2 * H, (k + 1) * 2 * H, labels).await);
    }
    out
}

async fn live_metas(b: &Arc<dyn Bucket>) -> Vec<BlockMeta> {
    let f = crate::bucket::fetcher::read_all(b.as_ref()).await.unwrap();
    let mut out = Vec::new();
    for m in f.metas.into_values() {
        if read_mark::<DeletionMark>(b.as_ref(), m.ulid)
            .await
            .unwrap()
            .is_none()
        {
            out.push(m);
        }
    }
    out
}

#[tokio::test]
async fn one_pass_merges_a_full_range_marks_sources_and_writes_the_index() {
    let b = bucket();
    let inputs = five_blocks(b.as_ref(), &[("cluster", "eu")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let report = Compactor::new(b.clone(), config(tmp.path()))
        .with_progress(Arc::new(move |done, total| {
            log.lock().unwrap().push((done, total))
        }))
        .run_pass()
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(0, 1), (1, 1)]);
    assert_eq!(report.compactions, 1, "{report:?}");
    assert_eq!(report.blocks_compacted, 4);
    assert_eq!(report.marked_for_deletion.get("compacted"), Some(&4));
    let live = live_metas(&b).await;
    assert_eq!(live.len(), 2, "the 8h block and the newest 2h block");
    let merged = live.iter().find(|m| m.compaction.level == 2).unwrap();
    assert_eq!((merged.min_time, merged.max_time), (0, 8 * H));
    let mut srcs: Vec<Ulid> = inputs[..4].iter().map(|m| m.ulid).collect();
    srcs.sort();
    assert_eq!(merged.compaction.sources, srcs);
    assert!(live.iter().any(|m| m.ulid == inputs[4].ulid));
    // Every sample is still there.
    let block = Block::open_bucket(b.clone(), merged.clone()).await.unwrap();
    let all = block.all_series().await.unwrap();
    assert_eq!(all.len(), 3);
    let want: Vec<(i64, f64)> = (0..4)
        .flat_map(|k| samples(k * 2 * H, 240, 30_000))
        .collect();
    assert_eq!(all[0].samples, want);
    // The index lists all six blocks and the four marks.
    assert!(report.index_written);
    let idx = read_index(b.as_ref()).await.unwrap().unwrap();
    assert_eq!(idx.blocks.len(), 6);
    assert_eq!(idx.block_deletion_marks.len(), 4);
    // A second pass has nothing more to do.
    let again = Compactor::new(b.clone(), config(tmp.path()))
        .run_pass()
        .await
        .unwrap();
    assert_eq!(again.compactions, 0, "{again:?}");
}

#[tokio::test]
async fn a_corrupt_block_is_marked_no_compact_and_the_rest_is_compacted() {
    let b = bucket();
    let inputs = five_blocks(b.as_ref(), &[]).await;
    let bad = inputs[0].ulid;
    let path = format!("{bad}/chunks/000001");
    let mut data = b.get(&path).await.unwrap().to_vec();
    for byte in data.iter_mut().skip(8) {
        *byte = 0xff;
    }
    b.put(&path, data.into()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let report = Compactor::new(b.clone(), config(tmp.path()))
        .run_pass()
        .await
        .unwrap();
    assert_eq!(
        report.marked_no_compact.get(REASON_CORRUPT),
        Some(&1),
        "{report:?}"
    );
    let mark: NoCompactMark = read_mark(b.as_ref(), bad).await.unwrap().unwrap();
    assert_eq!(mark.reason, REASON_CORRUPT);
    assert!(mark.details.contains("corrupt"), "{}", mark.details);
    // Blocks 2-4 of the 8h range still merge around the marked one.
    assert_eq!(report.compactions, 1);
    assert_eq!(report.blocks_compacted, 3);
    assert!(b
        .exists(&format!("{bad}/{NO_COMPACT_MARK_FILENAME}"))
        .await
        .unwrap());
    assert!(read_mark::<DeletionMark>(b.as_ref(), bad)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn overlapping_replicas_are_deduplicated_under_the_replica_label() {
    let b = bucket();
    let a: Vec<(i64, f64)> = (0..200).map(|i| (i * 15_000, i as f64)).collect();
    let r: Vec<(i64, f64)> = (0..200).map(|i| (i * 15_000 + 900, i as f64)).collect();
    let l = series_labels("c", 1);
    put_block(
        b.as_ref(),
        vec![(l.clone(), a.clone())],
        0,
        2 * H,
        &[("cluster", "eu"), ("replica", "a")],
    )
    .await;
    put_block(
        b.as_ref(),
        vec![(l.clone(), r)],
        0,
        2 * H,
        &[("cluster", "eu"), ("replica", "b")],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.replica_labels = vec!["replica".into()];
    let report = Compactor::new(b.clone(), cfg).run_pass().await.unwrap();
    assert_eq!(report.vertical_compactions, 1, "{report:?}");
    let live = live_metas(&b).await;
    assert_eq!(live.len(), 1);
    let labels = live[0].external_labels();
    assert_eq!(labels.len(), 1);
    assert_eq!(labels["cluster"], "eu");
    let block = Block::open_bucket(b.clone(), live[0].clone())
        .await
        .unwrap();
    assert_eq!(block.all_series().await.unwrap()[0].samples, a);
}

#[tokio::test]
async fn overlapping_blocks_without_dedup_keep_every_distinct_sample() {
    let b = bucket();
    let l = series_labels("g", 1);
    put_block(
        b.as_ref(),
        vec![(l.clone(), samples(0, 100, 10_000))],
        0,
        2 * H,
        &[],
    )
    .await;
    put_block(
        b.as_ref(),
        vec![(l.clone(), samples(500_000, 100, 10_000))],
        0,
        2 * H,
        &[],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let report = Compactor::new(b.clone(), config(tmp.path()))
        .run_pass()
        .await
        .unwrap();
    assert_eq!(report.vertical_compactions, 1);
    let live = live_metas(&b).await;
    let block = Block::open_bucket(b.clone(), live[0].clone())
        .await
        .unwrap();
    // 0..990 s and 500..1490 s at 10 s: 150 distinct timestamps.
    assert_eq!(block.all_series().await.unwrap()[0].samples.len(), 150);
}

#[tokio::test]
async fn retention_marks_expired_blocks_and_a_zero_delete_delay_removes_them() {
    let b = bucket();
    let inputs = five_blocks(b.as_ref(), &[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.delete_delay_ms = 0;
    // Blocks ending more than 7h before now (15h - 1 ms) expire: the first three.
    cfg.retention.raw_ms = 7 * H;
    let now = 15 * H - 1;
    let report = Compactor::new(b.clone(), cfg)
        .with_clock(Arc::new(move || now))
        .run_pass()
        .await
        .unwrap();
    assert_eq!(
        report.marked_for_deletion.get("retention"),
        Some(&3),
        "{report:?}"
    );
    assert_eq!(report.deleted, 3);
    for m in &inputs[..3] {
        assert!(!b.exists(&format!("{}/meta.json", m.ulid)).await.unwrap());
    }
    assert_eq!(live_metas(&b).await.len(), 2);
}

#[tokio::test]
async fn a_pass_downsamples_a_raw_block_spanning_40_hours_to_5m_once() {
    let b = bucket();
    // One raw block of 48 h (as a 2d compaction leaves it), 3 series at 30 s.
    let series: Vec<Series> = (0..3)
        .map(|i| (series_labels("up", i), samples(0, 48 * 120, 30_000)))
        .collect();
    let raw = put_block(b.as_ref(), series, 0, 48 * H, &[("cluster", "eu")]).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.downsample = true;
    let compactor = Compactor::new(b.clone(), cfg);
    let report = compactor.run_pass().await.unwrap();
    assert_eq!(
        (report.downsampled, report.downsample_failures),
        (1, 0),
        "{report:?}"
    );
    let live = live_metas(&b).await;
    let five_m: Vec<&BlockMeta> = live.iter().filter(|m| m.resolution() == 300_000).collect();
    assert_eq!(five_m.len(), 1, "{live:?}");
    assert_eq!(five_m[0].compaction.sources, raw.compaction.sources);
    assert_eq!((five_m[0].min_time, five_m[0].max_time), (0, 48 * H));
    assert!(
        live.iter().any(|m| m.ulid == raw.ulid),
        "the raw block stays"
    );
    // The next pass finds the raw block's sources in a 5m block already.
    let again = compactor.run_pass().await.unwrap();
    assert_eq!(again.downsampled, 0, "{again:?}");
}

/// Raw 2h blocks `[from, to)` of [`two_hours`]' series, each downsampled to 5m in `b`.
async fn five_minute_blocks(b: &Arc<dyn Bucket>, ranges: &[(i64, i64)]) -> Vec<BlockMeta> {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for &(from, to) in ranges {
        let series: Vec<Series> = (0..3)
            .map(|i| {
                (
                    series_labels("up", i),
                    samples(from, (to - from) / 30_000, 30_000),
                )
            })
            .collect();
        let raw = put_block(b.as_ref(), series, from, to, &[("cluster", "eu")]).await;
        let id = downsample_block(b.clone(), &raw, 300_000, tmp.path())
            .await
            .unwrap();
        out.push(
            crate::bucket::blocks::read_meta(b.as_ref(), id)
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn a_pass_merges_5m_blocks_by_level_and_overlapping_ones_vertically() {
    let b = bucket();
    let ranges: Vec<(i64, i64)> = (0..5).map(|k| (k * 2 * H, (k + 1) * 2 * H)).collect();
    let inputs = five_minute_blocks(&b, &ranges).await;
    let tmp = tempfile::tempdir().unwrap();
    let report = Compactor::new(b.clone(), config(tmp.path()))
        .run_pass()
        .await
        .unwrap();
    assert!(report.marked_no_compact.is_empty(), "{report:?}");
    let five_m = |live: Vec<BlockMeta>| -> Vec<BlockMeta> {
        let mut v: Vec<BlockMeta> = live
            .into_iter()
            .filter(|m| m.resolution() == 300_000)
            .collect();
        v.sort_by_key(|m| m.min_time);
        v
    };
    let live = five_m(live_metas(&b).await);
    // The first 8h range merged into one block, the newest block left for later.
    let spans: Vec<(i64, i64)> = live.iter().map(|m| (m.min_time, m.max_time)).collect();
    assert_eq!(spans, vec![(0, 8 * H), (8 * H, 10 * H)], "{report:?}");
    assert_eq!(live[0].compaction.parents.len(), 4);
    let want: u64 = inputs[..4].iter().map(|m| m.stats.num_samples).sum();
    assert_eq!(live[0].stats.num_samples, want);

    // Overlapping 5m blocks are merged vertically instead of being marked no-compact.
    let b = bucket();
    let inputs = five_minute_blocks(&b, &[(0, 2 * H), (H, 3 * H)]).await;
    let tmp = tempfile::tempdir().unwrap();
    let report = Compactor::new(b.clone(), config(tmp.path()))
        .run_pass()
        .await
        .unwrap();
    assert!(report.marked_no_compact.is_empty(), "{report:?}");
    assert!(report.vertical_compactions >= 1, "{report:?}");
    let live = five_m(live_metas(&b).await);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!((live[0].min_time, live[0].max_time), (0, 3 * H));
    // 3 series, one window per 5 minutes of [0, 3h): every window once.
    assert_eq!(live[0].stats.num_samples, 3 * 36);
    assert!(inputs.iter().all(|m| m.stats.num_samples == 3 * 24));
}

#[tokio::test]
async fn merges_overlap_uploads_yet_a_merge_waits_for_the_output_it_builds_on() {
    let b = bucket();
    // 25 2h blocks: six 8h merges (each upload overlapping the next merge), then the 2d
    // merge of their outputs, which must wait for the last upload; the newest block stays.
    for k in 0..25 {
        put_block(b.as_ref(), two_hours(k), k * 2 * H, (k + 1) * 2 * H, &[]).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let report = Compactor::new(b.clone(), config(tmp.path()))
        .run_pass()
        .await
        .unwrap();
    assert_eq!(
        (report.compactions, report.failed_compactions),
        (7, 0),
        "{report:?}"
    );
    assert_eq!(report.blocks_compacted, 24 + 6);
    // Merges two to six found their sources fetched; the 2d merge's are outputs.
    assert_eq!(report.prefetched, 5);
    let mut live = live_metas(&b).await;
    live.sort_by_key(|m| m.min_time);
    let spans: Vec<(i64, i64)> = live.iter().map(|m| (m.min_time, m.max_time)).collect();
    assert_eq!(spans, vec![(0, 48 * H), (48 * H, 50 * H)]);
    assert_eq!(live[0].compaction.parents.len(), 6);
    assert_eq!(live[0].stats.num_samples, 24 * 3 * 240);
    // Every 8h output was up before the 2d merge read it, and is marked as its source.
    for p in &live[0].compaction.parents {
        assert!(read_mark::<DeletionMark>(b.as_ref(), p.ulid)
            .await
            .unwrap()
            .is_some());
    }
}

/// Nine 2h blocks: two 8h merges, the newest block left alone.
async fn nine_blocks(b: &dyn Bucket) -> Vec<BlockMeta> {
    let mut out = Vec::new();
    for k in 0..9 {
        out.push(put_block(b, two_hours(k), k * 2 * H, (k + 1) * 2 * H, &[]).await);
    }
    out
}

#[tokio::test]
async fn the_next_merges_sources_are_fetched_ahead_only_within_the_budget() {
    let sizes = |ms: &[BlockMeta]| ms.iter().map(|m| known_size(m).unwrap()).sum::<u64>();
    for (budget_delta, want_prefetched) in [(Some(0i64), 1), (Some(-1), 0), (None, 1)] {
        let b = bucket();
        let inputs = nine_blocks(b.as_ref()).await;
        let second = sizes(&inputs[4..8]);
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Compactor::new(b.clone(), config(tmp.path()));
        if let Some(d) = budget_delta {
            c = c.with_prefetch_max((second as i64 + d) as u64);
        }
        let report = c.run_pass().await.unwrap();
        assert_eq!(
            (report.compactions, report.failed_compactions),
            (2, 0),
            "{report:?}"
        );
        assert_eq!(
            report.prefetched, want_prefetched,
            "budget {budget_delta:?} around the second merge's {second} bytes"
        );
        let mut live = live_metas(&b).await;
        live.sort_by_key(|m| m.min_time);
        let spans: Vec<(i64, i64)> = live.iter().map(|m| (m.min_time, m.max_time)).collect();
        assert_eq!(spans, vec![(0, 8 * H), (8 * H, 16 * H), (16 * H, 18 * H)]);
        let mut want: Vec<Ulid> = inputs[4..8].iter().map(|m| m.ulid).collect();
        want.sort();
        assert_eq!(live[1].compaction.sources, want);
        assert_eq!(live[1].stats.num_samples, 4 * 3 * 240);
    }
}

#[test]
fn the_predicted_next_merge_is_the_planners_and_never_one_on_the_output() {
    let metas: Vec<BlockMeta> = (0..9)
        .map(|k| super::super::testutil::meta(k as u128 + 1, k * 2 * H, (k + 1) * 2 * H, &[], 0))
        .collect();
    let none = BTreeSet::new();
    let first = plan(&metas, &none, &DEFAULT_RANGES);
    assert_eq!(first.len(), 4);
    let next = predict_next(&metas, &first, &none, &DEFAULT_RANGES);
    let ids: Vec<Ulid> = next.iter().map(|m| m.ulid).collect();
    let want: Vec<Ulid> = metas[4..8].iter().map(|m| m.ulid).collect();
    assert_eq!(ids, want);
    // Five 8h blocks and four 2h blocks completing the 2d range, and a newer one: after
    // the 2h blocks' merge the planner would choose the 2d range, which holds its output.
    let mut metas: Vec<BlockMeta> = (0..5)
        .map(|k| super::super::testutil::meta(k as u128 + 1, k * 8 * H, (k + 1) * 8 * H, &[], 0))
        .collect();
    metas.extend(
        (20..25)
            .map(|k| super::super::testutil::meta(k as u128, k * 2 * H, (k + 1) * 2 * H, &[], 0)),
    );
    let first = plan(&metas, &none, &DEFAULT_RANGES);
    assert_eq!(first.len(), 4, "the 2h blocks of 40h..48h");
    assert!(predict_next(&metas, &first, &none, &DEFAULT_RANGES).is_empty());
}

/// A bucket whose range reads of the given blocks' files fail as unavailable.
#[derive(Debug)]
struct UnreadableBlocks {
    inner: Arc<dyn Bucket>,
    blocks: Vec<Ulid>,
}

#[async_trait::async_trait]
impl Bucket for UnreadableBlocks {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn get(&self, path: &str) -> Result<bytes::Bytes, BucketError> {
        self.inner.get(path).await
    }
    async fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes, BucketError> {
        if self.blocks.iter().any(|b| path.starts_with(&b.to_string())) {
            return Err(BucketError::new(
                crate::bucket::ErrorKind::Unavailable,
                "get_range",
                path,
                "injected",
            ));
        }
        self.inner.get_range(path, range).await
    }
    async fn head(&self, path: &str) -> Result<crate::bucket::ObjectInfo, BucketError> {
        self.inner.head(path).await
    }
    async fn put(&self, path: &str, data: bytes::Bytes) -> Result<(), BucketError> {
        self.inner.put(path, data).await
    }
    async fn upload_file(&self, path: &str, local: &std::path::Path) -> Result<u64, BucketError> {
        self.inner.upload_file(path, local).await
    }
    async fn delete(&self, path: &str) -> Result<(), BucketError> {
        self.inner.delete(path).await
    }
    async fn list_dir(&self, dir: &str) -> Result<Vec<String>, BucketError> {
        self.inner.list_dir(dir).await
    }
    async fn list_recursive(
        &self,
        prefix: &str,
    ) -> Result<Vec<crate::bucket::ObjectInfo>, BucketError> {
        self.inner.list_recursive(prefix).await
    }
}

/// Every path under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn a_failed_fetch_ahead_fails_that_merge_only_and_leaves_nothing_behind() {
    let inner = bucket();
    let inputs = nine_blocks(inner.as_ref()).await;
    let b: Arc<dyn Bucket> = Arc::new(UnreadableBlocks {
        inner: inner.clone(),
        blocks: vec![inputs[6].ulid],
    });
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path());
    let scratch = cfg.scratch_dir.clone();
    let report = Compactor::new(b.clone(), cfg).run_pass().await.unwrap();
    assert_eq!(report.prefetched, 1, "{report:?}");
    assert_eq!(
        (report.compactions, report.failed_compactions),
        (1, 1),
        "the first merge is done, the second fails as its fetch did: {report:?}"
    );
    assert_eq!(report.marked_for_deletion.get("compacted"), Some(&4));
    assert!(
        report.marked_no_compact.is_empty(),
        "an unavailable bucket is no reason to mark a block: {report:?}"
    );
    let live = live_metas(&inner).await;
    assert_eq!(
        live.len(),
        1 + 5,
        "the first output and the second merge's sources, kept"
    );
    for m in &inputs[4..] {
        assert!(live.iter().any(|l| l.ulid == m.ulid));
    }
    assert_eq!(files_under(&scratch), Vec::<std::path::PathBuf>::new());
}
