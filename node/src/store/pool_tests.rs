use super::*;
use futures::StreamExt;
use std::time::Duration;

const SEG: u64 = 1 << 32;

#[test]
fn chunks_count_up_to_the_next_selected_chunk_of_their_segment() {
    // Back to back in one segment: 100 and 300 bytes, the last one a speculative read.
    assert_eq!(
        estimate_refs(vec![(1, 8), (1, 108), (1, 408)]),
        100 + 300 + 512
    );
    // Far apart, in another segment or another block: each is a run of its own.
    assert_eq!(estimate_refs(vec![(1, 8), (1, 8 + 100_000)]), 2 * 512);
    assert_eq!(estimate_refs(vec![(1, 8), (1, SEG + 20)]), 2 * 512);
    assert_eq!(estimate_refs(vec![(1, 8), (2, 20)]), 2 * 512);
    // Unsorted and repeated references count once, in order.
    assert_eq!(estimate_refs(vec![(1, 408), (1, 8), (1, 108), (1, 8)]), 912);
    assert_eq!(estimate_refs(Vec::new()), 0);
}

#[test]
fn more_than_the_whole_pool_is_refused_naming_the_flag() {
    let pool = ChunkPool::new(4096);
    assert!(pool.check_bytes(4096).is_ok());
    let e = pool.check_bytes(5000).unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message().contains("--chunk-pool-size (4096 bytes)"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("5000 bytes"), "{}", e.message());
}

#[tokio::test]
async fn a_request_waits_for_bytes_held_by_others_and_gets_them_when_given_back() {
    let pool = ChunkPool::new(8 * 1024);
    let first = pool.take_bytes(6 * 1024).await.unwrap();
    assert_eq!(pool.available_bytes(), 2 * 1024);
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.take_bytes(4 * 1024).await.map(|_| ()) })
    };
    // Still waiting while the first holds its bytes (a deadline, not a timing assertion).
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    drop(first);
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the second request gets the bytes back")
        .unwrap()
        .unwrap();
    assert_eq!(pool.available_bytes(), 8 * 1024);
}

#[tokio::test]
async fn a_holding_stream_gives_its_bytes_back_when_dropped() {
    let pool = ChunkPool::new(4 * 1024);
    let bytes = pool.take_bytes(3 * 1024).await.unwrap();
    let mut s = Holding::new(futures::stream::iter([1, 2]), bytes);
    assert_eq!(s.next().await, Some(1));
    assert_eq!(pool.available_bytes(), 1024);
    drop(s);
    assert_eq!(pool.available_bytes(), 4 * 1024);
}
