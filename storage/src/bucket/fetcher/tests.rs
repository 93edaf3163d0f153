use super::*;
use crate::block::meta::RESOLUTION_5M;
use crate::bucket::fault::{Fault, FaultBucket};
use crate::bucket::marks::{write_mark, DeletionMark};
use crate::bucket::{ErrorKind, ObjectStoreBucket};
use crate::matcher::Matcher;
use bytes::Bytes;

/// 2026-01-01T00:00:00Z, the tests' "now".
const NOW: i64 = 1_767_225_600_000;

fn clock() -> Clock {
    Arc::new(|| NOW)
}

/// A ULID made `age_ms` before `NOW`.
fn id_aged(age_ms: i64, n: u8) -> Ulid {
    Ulid::from_parts((NOW - age_ms) as u64, u128::from(n))
}

async fn put_meta(b: &dyn Bucket, meta: &BlockMeta) {
    b.put(
        &format!("{}/{META_FILENAME}", meta.ulid),
        Bytes::from(meta.to_json()),
    )
    .await
    .unwrap();
}

fn meta(id: Ulid, min: i64, max: i64) -> BlockMeta {
    BlockMeta::new_level1(id, min, max)
}

fn bucket() -> Arc<dyn Bucket> {
    Arc::new(ObjectStoreBucket::in_memory())
}

fn ids(f: &Fetched) -> Vec<Ulid> {
    f.metas.keys().copied().collect()
}

#[tokio::test]
async fn fetch_sorts_blocks_into_metas_partial_and_failed() {
    let b = bucket();
    let (good, partial, garbage, wrong) =
        (id_aged(9, 1), id_aged(9, 2), id_aged(9, 3), id_aged(9, 4));
    put_meta(b.as_ref(), &meta(good, 0, 10)).await;
    b.put(&format!("{partial}/index"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    b.put(
        &format!("{garbage}/meta.json"),
        Bytes::from_static(b"{not json"),
    )
    .await
    .unwrap();
    let mut other = meta(good, 0, 10);
    other.ulid = id_aged(9, 5);
    b.put(&format!("{wrong}/meta.json"), Bytes::from(other.to_json()))
        .await
        .unwrap();
    let f = MetaFetcher::new(b).fetch().await.unwrap();
    assert_eq!(ids(&f), [good]);
    assert_eq!(f.partial, [partial]);
    assert_eq!(
        f.failed.keys().copied().collect::<Vec<_>>(),
        [garbage, wrong]
    );
    let e = f.failed[&garbage].to_string();
    assert!(
        e.contains(&garbage.to_string()) && e.contains("meta.json"),
        "{e}"
    );
    assert!(f.excluded.is_empty());
}

#[tokio::test]
async fn a_bucket_failure_fails_the_whole_fetch() {
    let inner = ObjectStoreBucket::in_memory();
    put_meta(&inner, &meta(id_aged(9, 1), 0, 10)).await;
    let fb = FaultBucket::new(Arc::new(inner));
    fb.fail_next("get", 1, Fault::Kind(ErrorKind::Unavailable));
    let err = MetaFetcher::new(Arc::new(fb)).fetch().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
}

#[tokio::test]
async fn consistency_delay_hides_young_blocks_but_not_the_compactors() {
    let b = bucket();
    let (old, young, compacted) = (
        id_aged(3_600_000, 1),
        id_aged(60_000, 2),
        id_aged(60_000, 3),
    );
    put_meta(b.as_ref(), &meta(old, 0, 10)).await;
    put_meta(b.as_ref(), &meta(young, 0, 10)).await;
    let mut m = meta(compacted, 0, 10);
    m.thanos_mut().source = "compactor".into();
    put_meta(b.as_ref(), &m).await;
    let f = MetaFetcher::new(b)
        .with_filter(ConsistencyDelayFilter {
            delay_ms: 30 * 60_000,
            clock: clock(),
        })
        .fetch()
        .await
        .unwrap();
    assert_eq!(ids(&f), [old, compacted]);
    assert_eq!(f.excluded.get(&young), Some(&"too-fresh"));
}

#[tokio::test]
async fn deletion_marks_hide_blocks_only_after_the_delay_and_are_all_recorded() {
    let b = bucket();
    let (unmarked, fresh_mark, old_mark, bad_mark) =
        (id_aged(9, 1), id_aged(9, 2), id_aged(9, 3), id_aged(9, 4));
    for id in [unmarked, fresh_mark, old_mark, bad_mark] {
        put_meta(b.as_ref(), &meta(id, 0, 10)).await;
    }
    let now_s = NOW / 1000;
    write_mark(b.as_ref(), &DeletionMark::new(fresh_mark, now_s - 60, ""))
        .await
        .unwrap();
    write_mark(b.as_ref(), &DeletionMark::new(old_mark, now_s - 7200, ""))
        .await
        .unwrap();
    b.put(
        &format!("{bad_mark}/deletion-mark.json"),
        Bytes::from_static(b"garbage"),
    )
    .await
    .unwrap();
    let f = MetaFetcher::new(b)
        .with_filter(DeletionMarkFilter {
            delay_ms: 3_600_000,
            clock: clock(),
        })
        .fetch()
        .await
        .unwrap();
    // An unreadable mark is ignored (the block stays), as in Thanos.
    assert_eq!(ids(&f), [unmarked, fresh_mark, bad_mark]);
    assert_eq!(f.excluded.get(&old_mark), Some(&"marked-for-deletion"));
    assert_eq!(
        f.deletion_marks.keys().copied().collect::<Vec<_>>(),
        [fresh_mark, old_mark]
    );
}

#[tokio::test]
async fn time_range_keeps_blocks_meeting_the_range() {
    let b = bucket();
    let (before, touching_start, inside, after) =
        (id_aged(9, 1), id_aged(9, 2), id_aged(9, 3), id_aged(9, 4));
    put_meta(b.as_ref(), &meta(before, 0, 100)).await; // [0, 100) ends before 100
    put_meta(b.as_ref(), &meta(touching_start, 50, 101)).await;
    put_meta(b.as_ref(), &meta(inside, 150, 160)).await;
    put_meta(b.as_ref(), &meta(after, 201, 300)).await;
    let f = MetaFetcher::new(b)
        .with_filter(TimeRangeFilter {
            min_ms: 100,
            max_ms: 200,
        })
        .fetch()
        .await
        .unwrap();
    assert_eq!(ids(&f), [touching_start, inside]);
    assert_eq!(f.excluded.get(&before), Some(&"time-excluded"));
    assert_eq!(f.excluded.get(&after), Some(&"time-excluded"));
}

#[tokio::test]
async fn external_labels_and_resolution_filters_select_blocks() {
    let b = bucket();
    let (eu, us, none, eu_5m) = (id_aged(9, 1), id_aged(9, 2), id_aged(9, 3), id_aged(9, 4));
    for (id, region, res) in [(eu, "eu", 0), (us, "us", 0), (eu_5m, "eu", RESOLUTION_5M)] {
        let mut m = meta(id, 0, 10);
        m.thanos_mut().labels.insert("region".into(), region.into());
        m.thanos_mut().downsample.resolution = res;
        put_meta(b.as_ref(), &m).await;
    }
    put_meta(b.as_ref(), &meta(none, 0, 10)).await;
    let f = MetaFetcher::new(b.clone())
        .with_filter(ExternalLabelsFilter {
            matchers: vec![Matcher::regex("region", "eu|").unwrap()],
        })
        .with_filter(ResolutionFilter { keep: vec![0] })
        .fetch()
        .await
        .unwrap();
    // A block without the label matches as "" (here: allowed by the regex).
    assert_eq!(ids(&f), [eu, none]);
    assert_eq!(f.excluded.get(&us), Some(&"label-excluded"));
    assert_eq!(f.excluded.get(&eu_5m), Some(&"resolution-excluded"));
}

#[tokio::test]
async fn a_sync_of_an_unchanged_bucket_is_one_listing_and_reads_only_new_objects() {
    let inner: Arc<dyn Bucket> = bucket();
    let blocks: Vec<Ulid> = (1..=5).map(|n| id_aged(9, n)).collect();
    for id in &blocks {
        put_meta(inner.as_ref(), &meta(*id, 0, 10)).await;
    }
    let now_s = NOW / 1000;
    write_mark(
        inner.as_ref(),
        &DeletionMark::new(blocks[0], now_s - 60, ""),
    )
    .await
    .unwrap();
    let counted = Arc::new(FaultBucket::new(inner.clone()));
    let fetcher = MetaFetcher::new(counted.clone()).with_filter(DeletionMarkFilter {
        delay_ms: 3_600_000,
        clock: clock(),
    });
    let calls = |c: &FaultBucket| (c.calls("list"), c.calls("list_dir"), c.calls("get"));

    let first = fetcher.fetch().await.unwrap();
    assert_eq!(ids(&first), blocks);
    assert_eq!(
        first.deletion_marks.keys().copied().collect::<Vec<_>>(),
        [blocks[0]]
    );
    // One listing; every meta.json and the one mark read once.
    assert_eq!(calls(&counted), (1, 0, 6));

    let second = fetcher.fetch().await.unwrap();
    assert_eq!(ids(&second), blocks);
    assert_eq!(second.deletion_marks.len(), 1);
    assert_eq!(
        calls(&counted),
        (2, 0, 6),
        "an unchanged bucket needs its listing only"
    );

    // A new block and a new (old enough) mark: exactly their two objects are read.
    let new = id_aged(9, 6);
    put_meta(inner.as_ref(), &meta(new, 0, 10)).await;
    write_mark(
        inner.as_ref(),
        &DeletionMark::new(blocks[1], now_s - 7200, ""),
    )
    .await
    .unwrap();
    let third = fetcher.fetch().await.unwrap();
    assert_eq!(calls(&counted), (3, 0, 8));
    assert_eq!(third.excluded.get(&blocks[1]), Some(&"marked-for-deletion"));
    assert!(third.metas.contains_key(&new) && third.metas.contains_key(&blocks[0]));

    // A deleted block leaves the result (and the cache) without any read.
    crate::bucket::blocks::delete_block(inner.as_ref(), blocks[2])
        .await
        .unwrap();
    let fourth = fetcher.fetch().await.unwrap();
    assert!(!fourth.metas.contains_key(&blocks[2]));
    assert!(fourth.partial.is_empty());
    assert_eq!(calls(&counted), (4, 0, 8));
}

#[tokio::test]
async fn a_failing_mark_read_fails_the_fetch_and_is_retried() {
    let inner: Arc<dyn Bucket> = bucket();
    let id = id_aged(9, 1);
    put_meta(inner.as_ref(), &meta(id, 0, 10)).await;
    let fb = Arc::new(FaultBucket::new(inner.clone()));
    let fetcher = MetaFetcher::new(fb.clone()).with_filter(DeletionMarkFilter {
        delay_ms: 3_600_000,
        clock: clock(),
    });
    assert_eq!(ids(&fetcher.fetch().await.unwrap()), [id]);
    write_mark(
        inner.as_ref(),
        &DeletionMark::new(id, NOW / 1000 - 7200, ""),
    )
    .await
    .unwrap();
    // The meta is cached, so the only read is the new mark's: when it fails, the whole fetch
    // fails rather than serve a block whose mark could not be read.
    fb.fail_next("get", 1, Fault::Kind(ErrorKind::Unavailable));
    assert_eq!(
        fetcher.fetch().await.unwrap_err().kind,
        ErrorKind::Unavailable
    );
    let f = fetcher.fetch().await.unwrap();
    assert!(f.metas.is_empty());
    assert_eq!(f.excluded.get(&id), Some(&"marked-for-deletion"));
}
