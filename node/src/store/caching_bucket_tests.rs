//! The caching bucket against a counting in-memory bucket: repeated reads of chunk files need
//! no request, misses are fetched in at most the configured number of requests, other objects
//! pass through, and the cache stays within its size.
#![allow(clippy::unwrap_used)]

use super::*;
use storage::bucket::fault::FaultBucket;
use storage::bucket::ObjectStoreBucket;

const CHUNKS_PATH: &str = "01HZZZZZZZZZZZZZZZZZZZZZZZ/chunks/000001";

fn content(n: usize) -> Bytes {
    Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

async fn setup(config: CachingBucketConfig) -> (Arc<FaultBucket>, CachingBucket, Bytes) {
    let mem: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let data = content(10_000);
    mem.put(CHUNKS_PATH, data.clone()).await.unwrap();
    mem.put("01HZZZZZZZZZZZZZZZZZZZZZZZ/index", data.clone())
        .await
        .unwrap();
    let counting = Arc::new(FaultBucket::new(mem));
    let cb = CachingBucket::new(counting.clone(), config, &Registry::new()).unwrap();
    (counting, cb, data)
}

fn config(piece: u64, max_requests: usize) -> CachingBucketConfig {
    CachingBucketConfig {
        chunk_subrange_size: piece,
        max_chunks_get_range_requests: max_requests,
        ..CachingBucketConfig::default()
    }
}

#[tokio::test]
async fn a_repeated_chunk_read_is_served_without_a_request() {
    let (counting, cb, data) = setup(config(1000, 3)).await;
    let got = cb.get_range(CHUNKS_PATH, 1500..4200).await.unwrap();
    assert_eq!(got, data.slice(1500..4200));
    let after_first = counting.calls("get_range");
    assert_eq!(after_first, 1, "one request for pieces 1..=4");
    // Inside the pieces already read, and a different range over them: no request.
    assert_eq!(
        cb.get_range(CHUNKS_PATH, 1500..4200).await.unwrap(),
        data.slice(1500..4200)
    );
    assert_eq!(
        cb.get_range(CHUNKS_PATH, 1000..1008).await.unwrap(),
        data.slice(1000..1008)
    );
    assert_eq!(counting.calls("get_range"), after_first);
    assert_eq!(counting.calls("head"), 1, "the file's size is asked once");
    let m = &cb.metrics;
    assert!(m.hits.with_label_values(&[OP_GET_RANGE, CHUNKS]).get() >= 5);
}

#[tokio::test]
async fn the_last_short_piece_and_the_whole_file_read_back_exactly() {
    let (_, cb, data) = setup(config(3000, 0)).await;
    assert_eq!(
        cb.get_range(CHUNKS_PATH, 9000..10_000).await.unwrap(),
        data.slice(9000..10_000)
    );
    assert_eq!(cb.get_range(CHUNKS_PATH, 0..10_000).await.unwrap(), data);
    assert!(cb.get_range(CHUNKS_PATH, 9000..10_001).await.is_err());
}

#[tokio::test]
async fn missing_pieces_are_fetched_in_at_most_the_configured_requests() {
    let (counting, cb, data) = setup(config(1000, 2)).await;
    // Cache pieces 1, 3, 5 and 7; then a read of 0..=8 misses five runs: 0, 2, 4, 6, 8.
    for p in [1u64, 3, 5, 7] {
        cb.get_range(CHUNKS_PATH, p * 1000..p * 1000 + 1)
            .await
            .unwrap();
    }
    let before = counting.calls("get_range");
    assert_eq!(
        cb.get_range(CHUNKS_PATH, 0..9000).await.unwrap(),
        data.slice(0..9000)
    );
    assert_eq!(counting.calls("get_range") - before, 2);
    assert_eq!(merge_runs(runs_of(&[0, 2, 4, 6, 8]), 0).len(), 5);
    assert_eq!(
        merge_runs(runs_of(&[0, 1, 5, 9, 10]), 2),
        vec![0..6, 9..11],
        "the smallest gap is merged first"
    );
}

#[tokio::test]
async fn other_objects_pass_through_uncached() {
    let (counting, cb, data) = setup(config(1000, 3)).await;
    let index = "01HZZZZZZZZZZZZZZZZZZZZZZZ/index";
    for _ in 0..2 {
        assert_eq!(
            cb.get_range(index, 10..20).await.unwrap(),
            data.slice(10..20)
        );
    }
    assert_eq!(counting.calls("get_range"), 2);
    assert!(is_chunk_file("a/chunks/000001"));
    assert!(!is_chunk_file("a/chunks/000001.tmp"));
    assert!(!is_chunk_file("a/index"));
}

#[tokio::test]
async fn the_cache_stays_within_its_size() {
    let mut c = config(1000, 0);
    c.max_size = 3000;
    c.max_item_size = 1000;
    let (counting, cb, data) = setup(c).await;
    assert_eq!(cb.get_range(CHUNKS_PATH, 0..10_000).await.unwrap(), data);
    cb.pieces.run_pending_tasks();
    assert!(
        cb.pieces.weighted_size() <= 3000,
        "{} bytes cached",
        cb.pieces.weighted_size()
    );
    // Most pieces were dropped: reading everything again needs requests.
    let before = counting.calls("get_range");
    assert_eq!(cb.get_range(CHUNKS_PATH, 0..10_000).await.unwrap(), data);
    assert!(counting.calls("get_range") > before);
}
