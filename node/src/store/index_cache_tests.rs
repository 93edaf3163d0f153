//! The index cache alone: hits and misses counted under Thanos' names, LRU eviction by size,
//! items too large refused, and a departed block's items forgotten.
#![allow(clippy::unwrap_used)]

use super::*;
use storage::labels::Labels;

fn block(n: u128) -> Ulid {
    Ulid::from_parts(1_700_000_000_000, n)
}

fn counter(registry: &Registry, name: &str, item_type: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.value() == item_type))
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

fn entry(i: u32) -> Arc<SeriesEntry> {
    Arc::new((
        Labels::from_pairs([("__name__", "up"), ("i", &*i.to_string())]),
        vec![ChunkMeta {
            min_time: 0,
            max_time: 1,
            chunk_ref: u64::from(i),
        }],
    ))
}

#[test]
fn a_batch_of_series_lookups_answers_and_counts_like_single_ones() {
    let registry = Registry::new();
    let c = InMemoryIndexCache::new(1 << 20, &registry).unwrap();
    c.store_series(block(1), 3, entry(3));
    c.store_series(block(1), 9, entry(9));
    c.store_series(block(2), 5, entry(5));
    let got = c.series_batch(block(1), &[3, 5, 9, 11]);
    assert_eq!(got, vec![Some(entry(3)), None, Some(entry(9)), None]);
    let req = "thanos_store_index_cache_requests_total";
    let hits = "thanos_store_index_cache_hits_total";
    assert_eq!(counter(&registry, req, SERIES), 4.0);
    assert_eq!(counter(&registry, hits, SERIES), 2.0);
    assert_eq!(counter(&registry, req, POSTINGS), 0.0);
}

#[test]
fn hits_and_misses_are_counted_per_item_type() {
    let registry = Registry::new();
    let c = InMemoryIndexCache::new(1 << 20, &registry).unwrap();
    assert!(c.postings(block(1), "job", "a").is_none());
    c.store_postings(block(1), "job", "a", Arc::from(&[1u32, 5, 9][..]));
    assert_eq!(
        c.postings(block(1), "job", "a").as_deref(),
        Some(&[1u32, 5, 9][..])
    );
    assert!(c.postings(block(2), "job", "a").is_none(), "keyed by block");
    assert!(c.postings(block(1), "job", "b").is_none(), "keyed by value");
    assert!(c.series(block(1), 7).is_none());
    c.store_series(block(1), 7, entry(7));
    assert_eq!(c.series(block(1), 7), Some(entry(7)));

    let req = "thanos_store_index_cache_requests_total";
    let hits = "thanos_store_index_cache_hits_total";
    assert_eq!(counter(&registry, req, POSTINGS), 4.0);
    assert_eq!(counter(&registry, hits, POSTINGS), 1.0);
    assert_eq!(counter(&registry, req, SERIES), 2.0);
    assert_eq!(counter(&registry, hits, SERIES), 1.0);
    c.usage();
    assert_eq!(
        counter(&registry, "thanos_store_index_cache_items", SERIES),
        1.0
    );
    assert_eq!(
        counter(
            &registry,
            "thanos_store_index_cache_items_added_total",
            POSTINGS
        ),
        1.0
    );
    assert!(
        counter(
            &registry,
            "thanos_store_index_cache_total_size_bytes",
            SERIES
        ) > 0.0
    );
}

#[test]
fn the_least_recently_used_items_are_evicted_to_stay_within_the_size() {
    let registry = Registry::new();
    let one = Key::Postings(block(1), "job".into(), "0".into()).bytes()
        + Item::Postings(Arc::from(vec![0u32; 100].as_slice())).bytes();
    let c = InMemoryIndexCache::new(3 * one + one / 2, &registry).unwrap();
    let list: Arc<[u32]> = Arc::from(vec![0u32; 100].as_slice());
    for v in 0..3 {
        c.store_postings(block(1), "job", &v.to_string(), list.clone());
    }
    c.usage();
    // Touch "0" so that "1" is the least recently used when "3" arrives.
    assert!(c.postings(block(1), "job", "0").is_some());
    c.store_postings(block(1), "job", "3", list.clone());
    let (items, bytes) = c.usage();
    assert_eq!(items, 3);
    assert!(bytes <= 3 * one + one / 2, "{bytes} bytes");
    assert!(c.postings(block(1), "job", "1").is_none(), "evicted");
    assert!(c.postings(block(1), "job", "0").is_some());
    assert!(c.postings(block(1), "job", "3").is_some());
    assert_eq!(
        counter(
            &registry,
            "thanos_store_index_cache_items_evicted_total",
            POSTINGS
        ),
        1.0
    );
    assert_eq!(
        counter(&registry, "thanos_store_index_cache_items", POSTINGS),
        3.0
    );
}

#[test]
fn an_item_larger_than_the_cache_is_not_stored() {
    let registry = Registry::new();
    let c = InMemoryIndexCache::new(1000, &registry).unwrap();
    c.store_postings(
        block(1),
        "job",
        "big",
        Arc::from(vec![0u32; 1000].as_slice()),
    );
    assert!(c.postings(block(1), "job", "big").is_none());
    assert_eq!(
        counter(
            &registry,
            "thanos_store_index_cache_items_overflowed_total",
            POSTINGS
        ),
        1.0
    );
}

#[test]
fn items_of_blocks_that_left_are_forgotten() {
    let registry = Registry::new();
    let c = InMemoryIndexCache::new(1 << 20, &registry).unwrap();
    for b in 1..=3 {
        c.store_series(block(b), 1, entry(1));
        c.store_postings(block(b), "", "", Arc::from(&[1u32][..]));
    }
    c.forget_blocks_except(&|id| *id != block(2));
    assert_eq!(c.usage().0, 4);
    assert!(c.series(block(2), 1).is_none());
    assert!(c.postings(block(2), "", "").is_none());
    assert!(c.series(block(1), 1).is_some());
    assert!(c.series(block(3), 1).is_some());
    assert_eq!(
        counter(&registry, "thanos_store_index_cache_items", SERIES),
        2.0
    );
}
