//! Damaged blocks give errors that name the block, the file and, where it applies, the offset:
//! never a panic and never silently wrong samples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use storage::block::{write_block, Block, BlockError, BlockWriterOptions};
use storage::labels::Labels;

fn fixture(root: &Path) -> (PathBuf, String) {
    let series = (0..30)
        .map(|i| {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:03}"))]);
            let samples = (0..500)
                .map(|k| (k * 15_000, (k * i) as f64 / 7.0))
                .collect();
            (labels, samples)
        })
        .collect();
    let (dir, meta) = write_block(root, series, None, BlockWriterOptions::default()).unwrap();
    (dir, meta.ulid.to_string())
}

/// Opens the block and reads every sample; returns the first error.
async fn open_and_read(dir: &Path) -> Result<usize, BlockError> {
    let block = Block::open_dir(dir).await?;
    let series = block.all_series().await?;
    Ok(series.iter().map(|s| s.samples.len()).sum())
}

fn truncate(path: &Path, keep: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(keep).unwrap();
}

fn flip(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[offset as usize] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn assert_names(err: &BlockError, block: &str, file: &str, with_offset: bool) {
    let msg = err.to_string();
    assert!(msg.contains(block), "error must name block {block}: {msg}");
    assert!(msg.contains(file), "error must name file {file}: {msg}");
    if with_offset {
        assert!(msg.contains("offset"), "error must give an offset: {msg}");
    }
}

#[tokio::test]
async fn intact_fixture_reads_every_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = fixture(tmp.path());
    assert_eq!(open_and_read(&dir).await.unwrap(), 30 * 500);
}

#[tokio::test]
async fn damaged_index_is_reported_with_block_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = fixture(tmp.path());
    let index = dir.join("index");
    let len = std::fs::metadata(&index).unwrap().len();
    let original = std::fs::read(&index).unwrap();
    // Every 97th byte: symbols, series, postings, offset tables and the TOC all get hit.
    for offset in (5..len).step_by(97) {
        flip(&index, offset);
        match open_and_read(&dir).await {
            Err(e) => assert_names(&e, &id, "index", true),
            // Readers skip alignment padding and the unused label index tables, as Prometheus
            // does; a flip there changes no answer and `verify` must still report it.
            Ok(n) => {
                assert_eq!(
                    n,
                    30 * 500,
                    "flipped index byte {offset} changed the answer"
                );
                let block = Block::open_dir(&dir).await.unwrap();
                let issues = block.index().verify().await.unwrap();
                assert!(
                    !issues.is_empty(),
                    "flipped index byte {offset} went unnoticed by verify"
                );
            }
        }
        std::fs::write(&index, &original).unwrap();
    }
    for keep in [0, 4, 60, len / 2, len - 1] {
        truncate(&index, keep);
        let e = open_and_read(&dir).await.unwrap_err();
        assert_names(&e, &id, "index", keep > 0);
        std::fs::write(&index, &original).unwrap();
    }
    std::fs::remove_file(&index).unwrap();
    let e = open_and_read(&dir).await.unwrap_err();
    assert!(matches!(e, BlockError::Missing { .. }), "{e}");
    assert_names(&e, &id, "index", false);
}

#[tokio::test]
async fn damaged_chunk_segment_is_reported_with_block_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = fixture(tmp.path());
    let seg = dir.join("chunks/000001");
    let len = std::fs::metadata(&seg).unwrap().len();
    let original = std::fs::read(&seg).unwrap();
    for offset in (0..len).step_by(211) {
        flip(&seg, offset);
        match open_and_read(&dir).await {
            Err(e) => assert_names(&e, &id, "chunks/000001", offset >= 8),
            Ok(n) => panic!("flipped chunk byte {offset} went unnoticed ({n} samples read)"),
        }
        std::fs::write(&seg, &original).unwrap();
    }
    truncate(&seg, len / 2);
    let e = open_and_read(&dir).await.unwrap_err();
    assert_names(&e, &id, "chunks/000001", true);
    std::fs::remove_file(&seg).unwrap();
    let e = open_and_read(&dir).await.unwrap_err();
    assert_names(&e, &id, "chunks", false);
}

#[tokio::test]
async fn damaged_or_missing_meta_json_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = fixture(tmp.path());
    let meta = dir.join("meta.json");
    let original = std::fs::read(&meta).unwrap();
    truncate(&meta, original.len() as u64 / 2);
    let e = open_and_read(&dir).await.unwrap_err();
    assert_names(&e, &id, "meta.json", false);
    assert!(
        e.to_string().contains("line"),
        "JSON errors give the position: {e}"
    );
    let mut bad = original.clone();
    bad[0] = b'[';
    std::fs::write(&meta, &bad).unwrap();
    let e = open_and_read(&dir).await.unwrap_err();
    assert_names(&e, &id, "meta.json", false);
    std::fs::remove_file(&meta).unwrap();
    let e = open_and_read(&dir).await.unwrap_err();
    assert!(matches!(e, BlockError::Missing { .. }), "{e}");
    assert_names(&e, &id, "meta.json", false);
}

#[tokio::test]
async fn damaged_tombstones_are_reported_and_deletions_are_honoured() {
    use storage::block::tombstones::{Interval, Tombstones};
    use storage::block::FileLocation;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = fixture(tmp.path());
    let block = Block::open_dir(&dir).await.unwrap();
    let first = block.index().all_postings().await.unwrap()[0];
    drop(block);
    let mut ts = Tombstones::new();
    ts.add(u64::from(first), Interval::new(0, 150_000));
    let loc = FileLocation::new(&id, "tombstones");
    ts.write(&dir.join("tombstones"), &loc).unwrap();
    // Samples 0..=10 of the first series (t = 0 .. 150 s) are deleted.
    assert_eq!(open_and_read(&dir).await.unwrap(), 30 * 500 - 11);

    flip(&dir.join("tombstones"), 6);
    let e = open_and_read(&dir).await.unwrap_err();
    assert_names(&e, &id, "tombstones", false);
}

#[tokio::test]
async fn native_histogram_chunks_are_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = fixture(tmp.path());
    // Rewrite the first chunk record's encoding byte to 2 (histogram) with a valid CRC, as a
    // Prometheus with native histograms enabled would have written it.
    let seg = dir.join("chunks/000001");
    let mut b = std::fs::read(&seg).unwrap();
    let (len, varint_len) = (b[8] as usize, 1); // the fixture's first chunk is < 128 bytes
    assert!(len < 128);
    let enc_at = 8 + varint_len;
    b[enc_at] = 2;
    let crc = storage::encoding::crc32c(&b[enc_at..enc_at + 1 + len]);
    b[enc_at + 1 + len..enc_at + 5 + len].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&seg, b).unwrap();
    let e = open_and_read(&dir).await.unwrap_err();
    assert!(matches!(e, BlockError::Unsupported { .. }), "{e}");
    assert_names(&e, &id, "chunks/000001", false);
    assert!(e.to_string().contains("native histograms"), "{e}");
}
