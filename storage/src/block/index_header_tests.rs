use super::*;
use crate::block::source::LocalFile;
use crate::block::writer::{write_block, BlockWriterOptions};
use crate::labels::Labels;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts the reads that reach the index file.
#[derive(Debug)]
struct Counting {
    inner: LocalFile,
    reads: AtomicUsize,
}

#[async_trait]
impl RangeSource for Counting {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn read_range(
        &self,
        range: Range<u64>,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_range(range).await
    }
}

fn block(dir: &Path, series: usize) -> std::path::PathBuf {
    let data = (0..series)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", "m"),
                ("i", &*i.to_string()),
                ("pod", &*format!("pod-{}", i % 7)),
            ]);
            (labels, (0..10).map(|k| (k * 15_000, k as f64)).collect())
        })
        .collect();
    write_block(dir, data, None, BlockWriterOptions::default())
        .unwrap()
        .0
}

fn source(block: &Path) -> Arc<Counting> {
    Arc::new(Counting {
        inner: LocalFile::open(&block.join("index")).unwrap(),
        reads: AtomicUsize::new(0),
    })
}

async fn answers(r: &IndexReader) -> Vec<(Labels, usize)> {
    let mut out = Vec::new();
    for v in ["pod-1", "pod-3"] {
        for s in r.postings("pod", v).await.unwrap() {
            let (l, c) = r.series(s).await.unwrap();
            out.push((l, c.len()));
        }
    }
    out
}

#[tokio::test]
async fn a_block_reopens_from_its_header_without_reading_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = block(tmp.path(), 3000);
    let loc = FileLocation::new("b", "index");
    let header = tmp.path().join("headers/b");
    let plain = IndexReader::open(
        Arc::new(LocalFile::open(&dir.join("index")).unwrap()),
        loc.clone(),
    )
    .await
    .unwrap();

    let first = source(&dir);
    let built = open_with_header(first.clone(), loc.clone(), &header)
        .await
        .unwrap();
    assert!(first.reads.load(Ordering::SeqCst) > 0);
    let on_disk = std::fs::metadata(&header).unwrap().len();
    let index_size = first.size();
    assert!(
        on_disk < index_size / 2,
        "header {on_disk} bytes for an index of {index_size}"
    );

    let second = source(&dir);
    let reopened = open_with_header(second.clone(), loc.clone(), &header)
        .await
        .unwrap();
    assert_eq!(
        second.reads.load(Ordering::SeqCst),
        0,
        "opening read the index"
    );
    assert_eq!(reopened.symbols(), plain.symbols());
    assert_eq!(reopened.label_values("pod"), plain.label_values("pod"));
    // Lookups read postings and series from the index itself, with the same answers.
    let want = answers(&plain).await;
    assert!(!want.is_empty());
    assert_eq!(answers(&reopened).await, want);
    assert_eq!(answers(&built).await, want);
    assert!(second.reads.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn a_damaged_or_stale_header_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = block(tmp.path(), 50);
    let loc = FileLocation::new("b", "index");
    let header = tmp.path().join("b.header");
    open_with_header(source(&dir), loc.clone(), &header)
        .await
        .unwrap();
    let good = std::fs::read(&header).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&header, &flipped).unwrap();
    let s = source(&dir);
    let r = open_with_header(s.clone(), loc.clone(), &header)
        .await
        .unwrap();
    assert!(
        s.reads.load(Ordering::SeqCst) > 0,
        "a damaged header is not used"
    );
    assert_eq!(std::fs::read(&header).unwrap(), good, "and is rewritten");
    assert_eq!(r.label_values("pod").len(), 7);

    // A header made for another index (other size) is not used either.
    let other = block(&tmp.path().join("other"), 80);
    let s = source(&other);
    let r = open_with_header(s.clone(), loc.clone(), &header)
        .await
        .unwrap();
    assert!(s.reads.load(Ordering::SeqCst) > 0);
    assert_eq!(r.all_postings().await.unwrap().len(), 80);

    // Garbage of any length never panics.
    for n in [0usize, 3, 4, 17, 40] {
        assert!(decode(Bytes::from(vec![0xAB; n]), 100).is_err());
    }
}
