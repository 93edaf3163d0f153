//! Discovery through the bucket index: one GET per fetch when it is fresh, every filter still
//! applied, and a listing when it is missing, stale or corrupt.

use super::*;
use crate::bucket::fault::{Fault, FaultBucket};
use crate::bucket::marks::{write_mark, DeletionMark, NoCompactMark};
use crate::bucket::{ErrorKind, ObjectStoreBucket};
use crate::compact::index::{write_index, BucketIndex, BUCKET_INDEX_FILENAME};
use crate::matcher::Matcher;
use bytes::Bytes;

/// 2026-01-01T00:00:00Z, the tests' "now".
const NOW: i64 = 1_767_225_600_000;
const HOUR: i64 = 3_600_000;

fn clock() -> Clock {
    Arc::new(|| NOW)
}

fn id_aged(age_ms: i64, n: u8) -> Ulid {
    Ulid::from_parts((NOW - age_ms) as u64, u128::from(n))
}

fn meta(id: Ulid, min: i64, max: i64, region: &str) -> BlockMeta {
    let mut m = BlockMeta::new_level1(id, min, max);
    m.thanos_mut().labels.insert("region".into(), region.into());
    m
}

async fn put_meta(b: &dyn Bucket, meta: &BlockMeta) {
    b.put(
        &format!("{}/{META_FILENAME}", meta.ulid),
        Bytes::from(meta.to_json()),
    )
    .await
    .unwrap();
}

fn index_fetcher(bucket: Arc<dyn Bucket>) -> MetaFetcher {
    MetaFetcher::new(bucket).with_discovery(Discovery::Index {
        max_stale_ms: HOUR,
        clock: clock(),
    })
}

fn ids(f: &Fetched) -> Vec<Ulid> {
    f.metas.keys().copied().collect()
}

#[tokio::test]
async fn a_fresh_index_costs_one_get_per_fetch_and_every_filter_still_applies() {
    let inner: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    // Many blocks, so that a listing would cost a GET per block on the first fetch.
    let mut metas: Vec<BlockMeta> = (1..=40)
        .map(|n| meta(id_aged(10 * HOUR, n), 0, 100, "eu"))
        .collect();
    let (marked_old, marked_new, other_region, young, late) = (
        id_aged(10 * HOUR, 41),
        id_aged(10 * HOUR, 42),
        id_aged(10 * HOUR, 43),
        id_aged(60_000, 44),
        id_aged(10 * HOUR, 45),
    );
    metas.push(meta(marked_old, 0, 100, "eu"));
    metas.push(meta(marked_new, 0, 100, "eu"));
    metas.push(meta(other_region, 0, 100, "us"));
    metas.push(meta(young, 0, 100, "eu"));
    metas.push(meta(late, 5_000, 6_000, "eu"));
    for m in &metas {
        put_meta(inner.as_ref(), m).await;
    }
    let now_s = NOW / 1000;
    let marks: BTreeMap<Ulid, DeletionMark> = [
        (marked_old, DeletionMark::new(marked_old, now_s - 7200, "")),
        (marked_new, DeletionMark::new(marked_new, now_s - 60, "")),
    ]
    .into();
    for m in marks.values() {
        write_mark(inner.as_ref(), m).await.unwrap();
    }
    let no_compact = BTreeMap::<Ulid, NoCompactMark>::new();
    let index = BucketIndex::build(metas.iter(), &marks, &no_compact, now_s - 600);
    write_index(inner.as_ref(), &index).await.unwrap();

    let fb = Arc::new(FaultBucket::new(inner.clone()));
    let fetcher = index_fetcher(fb.clone())
        .with_filter(TimeRangeFilter {
            min_ms: 0,
            max_ms: 1_000,
        })
        .with_filter(ExternalLabelsFilter {
            matchers: vec![Matcher::equal("region", "eu")],
        })
        .with_filter(ConsistencyDelayFilter {
            delay_ms: 30 * 60_000,
            clock: clock(),
        })
        .with_filter(DeletionMarkFilter {
            delay_ms: HOUR,
            clock: clock(),
        });
    for sync in 1..=3u64 {
        let f = fetcher.fetch().await.unwrap();
        assert_eq!(f.discovered, Discovered::Index);
        let calls: u64 = ["get", "get_range", "list", "list_dir", "head", "exists"]
            .iter()
            .map(|op| fb.calls(op))
            .sum();
        assert_eq!(calls, sync, "bucket requests after {sync} syncs");
        assert!(calls <= 3 * sync);
        assert_eq!(f.metas.len(), 41, "{:?}", f.excluded);
        assert!(f.metas.contains_key(&marked_new));
        assert_eq!(f.excluded[&marked_old], "marked-for-deletion");
        assert_eq!(f.excluded[&other_region], "label-excluded");
        assert_eq!(f.excluded[&young], "too-fresh");
        assert_eq!(f.excluded[&late], "time-excluded");
        assert_eq!(f.deletion_marks.len(), 2);
        // Stand-in metas carry what readers filter and plan on.
        let m = &f.metas[&marked_new];
        assert_eq!((m.min_time, m.max_time), (0, 100));
        assert_eq!(m.external_labels()["region"], "eu");
    }
}

#[tokio::test]
async fn a_missing_stale_or_corrupt_index_falls_back_to_listing() {
    let b: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let listed = meta(id_aged(10 * HOUR, 1), 0, 10, "eu");
    put_meta(b.as_ref(), &listed).await;
    let fetcher = index_fetcher(b.clone());
    let f = fetcher.fetch().await.unwrap();
    assert_eq!(f.discovered, Discovered::Fallback(FallbackReason::Missing));
    assert_eq!(ids(&f), [listed.ulid]);

    // Only in the index: visible while the index is fresh, not once it is stale.
    let indexed = meta(id_aged(10 * HOUR, 2), 0, 10, "eu");
    let none = BTreeMap::new();
    let stale = BucketIndex::build([&indexed], &BTreeMap::new(), &none, NOW / 1000 - 2 * 3600);
    write_index(b.as_ref(), &stale).await.unwrap();
    let f = fetcher.fetch().await.unwrap();
    assert_eq!(f.discovered, Discovered::Fallback(FallbackReason::Stale));
    assert_eq!(ids(&f), [listed.ulid]);

    let fresh = BucketIndex::build([&indexed], &BTreeMap::new(), &none, NOW / 1000 - 60);
    write_index(b.as_ref(), &fresh).await.unwrap();
    let f = fetcher.fetch().await.unwrap();
    assert_eq!(f.discovered, Discovered::Index);
    assert_eq!(ids(&f), [indexed.ulid]);

    b.put(BUCKET_INDEX_FILENAME, Bytes::from_static(b"not gzip"))
        .await
        .unwrap();
    let f = fetcher.fetch().await.unwrap();
    assert_eq!(f.discovered, Discovered::Fallback(FallbackReason::Corrupt));
    assert_eq!(ids(&f), [listed.ulid]);
}

#[tokio::test]
async fn a_refused_index_read_fails_the_fetch_instead_of_listing() {
    let inner: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    put_meta(inner.as_ref(), &meta(id_aged(10 * HOUR, 1), 0, 10, "eu")).await;
    let fb = Arc::new(FaultBucket::new(inner));
    fb.fail_next("get", 1, Fault::Kind(ErrorKind::Unauthorized));
    let e = index_fetcher(fb.clone()).fetch().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert_eq!(fb.calls("list"), 0);
}

#[tokio::test]
async fn compacted_blocks_hide_their_sources_whether_listed_or_read_from_the_index() {
    let b: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let (a, c, merged) = (
        id_aged(10 * HOUR, 1),
        id_aged(10 * HOUR, 2),
        id_aged(9 * HOUR, 3),
    );
    let mut m = meta(merged, 0, 20, "eu");
    m.compaction.level = 2;
    m.compaction.sources = vec![a, c];
    let metas = [meta(a, 0, 10, "eu"), meta(c, 10, 20, "eu"), m];
    for m in &metas {
        put_meta(b.as_ref(), m).await;
    }
    let fetcher = index_fetcher(b.clone()).with_filter(DeduplicateFilter);
    let f = fetcher.fetch().await.unwrap();
    assert_eq!(f.discovered, Discovered::Fallback(FallbackReason::Missing));
    assert_eq!(ids(&f), [merged]);
    assert_eq!(f.excluded[&a], "duplicate");

    let none = BTreeMap::new();
    let index = BucketIndex::build(metas.iter(), &BTreeMap::new(), &none, NOW / 1000 - 60);
    // Level-1 blocks are their own source: the index spells out only the merged block's.
    assert!(index
        .blocks
        .iter()
        .all(|x| x.sources.is_empty() == (x.block_id != merged)));
    write_index(b.as_ref(), &index).await.unwrap();
    let f = fetcher.fetch().await.unwrap();
    assert_eq!(f.discovered, Discovered::Index);
    assert_eq!(ids(&f), [merged]);
    assert_eq!(f.excluded[&c], "duplicate");
    assert_eq!(f.metas[&merged].compaction.sources, [a, c]);
}
