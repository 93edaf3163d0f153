#![allow(clippy::unwrap_used)]

use super::*;
use crate::block::source::InMemory;
use crate::chunkenc::XorAppender;
use async_trait::async_trait;
use std::ops::Range;
use std::sync::Mutex;

fn xor_chunk(n: usize, seed: u64) -> Chunk {
    let mut a = XorAppender::new();
    for i in 0..n {
        let v = (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 1000) as f64 * 0.5;
        a.append(1_700_000_000_000 + i as i64 * 15_000, v).unwrap();
    }
    a.finish()
}

fn one_sample_chunk() -> Chunk {
    let mut a = XorAppender::new();
    a.append(1_700_000_000_000, 5.0).unwrap();
    a.finish()
}

fn write_block(dir: &Path, chunks: &[Chunk], max: u64) -> (Vec<ChunkRef>, Vec<SegmentFile>) {
    let mut w = SegmentWriter::with_max_segment_size(dir, max).unwrap();
    let refs = chunks.iter().map(|c| w.write_chunk(c).unwrap()).collect();
    (refs, w.finish().unwrap())
}

fn corrupt_parts(e: &BlockError) -> (String, String, Option<u64>, String) {
    match e {
        BlockError::Corrupt {
            block,
            file,
            offset,
            reason,
        } => (block.clone(), file.clone(), *offset, reason.clone()),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn chunk_ref_splits_segment_and_offset() {
    let r = ChunkRef::new(2, 0xed);
    assert_eq!(r.0, 0x0000_0002_0000_00ed);
    assert_eq!((r.segment(), r.offset()), (2, 0xed));
    assert_eq!(segment_file_name(0), "000001");
    assert_eq!(segment_file_name(41), "000042");
}

#[test]
fn segment_names_keep_integers_sorted_numerically() {
    let names = vec![
        "000010",
        "000002",
        "index",
        "000001.tmp",
        "01H/chunks/000003",
        "1",
    ];
    assert_eq!(
        sort_segment_names(names),
        vec!["1", "000002", "01H/chunks/000003", "000010"]
    );
}

#[tokio::test]
async fn one_sample_record_is_byte_identical_to_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("01BLOCK");
    let (refs, files) = write_block(&dir, &[one_sample_chunk()], DEFAULT_MAX_SEGMENT_SIZE);
    assert_eq!(refs, vec![ChunkRef(8)]);
    let bytes = std::fs::read(dir.join("chunks/000001")).unwrap();
    let mut want = vec![0x85, 0xbd, 0x40, 0xdd, 1, 0, 0, 0, 0x11, 0x01];
    want.extend_from_slice(&[0, 1, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62]);
    want.extend_from_slice(&5.0f64.to_bits().to_be_bytes());
    want.extend_from_slice(&[0, 0xce, 0xa9, 0xfb, 0x97]);
    assert_eq!(bytes, want);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].name, "chunks/000001");
    assert_eq!(files[0].size, want.len() as u64);
}

#[tokio::test]
async fn chunks_written_are_read_back_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("01BLOCK");
    let chunks: Vec<_> = (0..40).map(|i| xor_chunk(1 + i % 30, i as u64)).collect();
    let max = 400;
    let (refs, files) = write_block(&dir, &chunks, max);
    assert!(files.len() > 3, "{files:?}");
    assert_eq!(refs[0], ChunkRef(8));
    for f in &files {
        assert_eq!(std::fs::metadata(&f.path).unwrap().len(), f.size);
        assert!(f.size <= max, "{f:?}");
    }
    // Refs increase and every new segment starts right after its header.
    for w in refs.windows(2) {
        assert!(w[0] < w[1]);
        if w[0].segment() != w[1].segment() {
            assert_eq!(w[1].segment(), w[0].segment() + 1);
            assert_eq!(w[1].offset(), 8);
        }
    }
    let r = SegmentReader::open_local(&dir).await.unwrap();
    assert_eq!(r.num_segments(), files.len());
    for (c, rf) in chunks.iter().zip(&refs) {
        assert_eq!(&r.chunk(rf.0).await.unwrap(), c);
    }
}

#[tokio::test]
async fn a_chunk_larger_than_the_segment_size_gets_its_own_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let chunks = vec![xor_chunk(2, 1), xor_chunk(2000, 2), xor_chunk(2, 3)];
    let (refs, files) = write_block(&dir, &chunks, 200);
    assert_eq!(files.len(), 3);
    assert_eq!(
        refs,
        vec![
            ChunkRef::new(0, 8),
            ChunkRef::new(1, 8),
            ChunkRef::new(2, 8)
        ]
    );
    let r = SegmentReader::open_local(&dir).await.unwrap();
    assert_eq!(r.chunk(refs[1].0).await.unwrap(), chunks[1]);
}

#[tokio::test]
async fn writer_without_chunks_writes_no_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let (_, files) = write_block(&dir, &[], 1000);
    assert!(files.is_empty());
    assert!(dir.join("chunks").is_dir());
}

async fn one_segment(bytes: Vec<u8>) -> Result<SegmentReader, BlockError> {
    let src = SegmentSource {
        loc: FileLocation::new("01BLOCK", "chunks/000001"),
        source: Arc::new(InMemory(Bytes::from(bytes))),
    };
    SegmentReader::open("01BLOCK", vec![src]).await
}

fn segment_bytes(chunks: &[Chunk]) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    write_block(&dir, chunks, DEFAULT_MAX_SEGMENT_SIZE);
    std::fs::read(dir.join("chunks/000001")).unwrap()
}

#[tokio::test]
async fn corrupt_crc_names_block_file_and_offset() {
    let chunks = [xor_chunk(5, 1), xor_chunk(5, 2)];
    let mut bytes = segment_bytes(&chunks);
    let second = 8 + 1 + 1 + chunks[0].data.len() + 4;
    bytes[second + 5] ^= 0x40;
    let r = one_segment(bytes).await.unwrap();
    assert!(r.chunk(8).await.is_ok());
    let e = r.chunk(second as u64).await.unwrap_err();
    let (block, file, offset, reason) = corrupt_parts(&e);
    assert_eq!(
        (block.as_str(), file.as_str()),
        ("01BLOCK", "chunks/000001")
    );
    assert_eq!(offset, Some((second + 2 + chunks[1].data.len()) as u64));
    assert!(
        reason.contains("CRC") && reason.contains(&second.to_string()),
        "{reason}"
    );
    assert!(e
        .to_string()
        .starts_with("block 01BLOCK: chunks/000001: corrupt at offset"));
}

#[tokio::test]
async fn truncated_segment_is_a_clear_error() {
    let chunks = [xor_chunk(5, 1), xor_chunk(5, 2)];
    let bytes = segment_bytes(&chunks);
    let second = 8 + 1 + 1 + chunks[0].data.len() + 4;
    for cut in [second + 1, second + 3, bytes.len() - 1] {
        let r = one_segment(bytes[..cut].to_vec()).await.unwrap();
        let e = r.chunk(second as u64).await.unwrap_err();
        let (_, file, offset, reason) = corrupt_parts(&e);
        assert_eq!(file, "chunks/000001");
        assert_eq!(offset, Some(second as u64));
        assert!(reason.contains("past the end"), "{reason}");
    }
    let e = one_segment(bytes[..5].to_vec()).await.unwrap_err();
    assert!(corrupt_parts(&e)
        .3
        .contains("shorter than its 8-byte header"));
}

#[tokio::test]
async fn bad_magic_and_version_are_refused_on_open() {
    let mut bytes = segment_bytes(&[xor_chunk(3, 1)]);
    bytes[0] = 0x12;
    let e = one_segment(bytes.clone()).await.unwrap_err();
    let (_, file, offset, reason) = corrupt_parts(&e);
    assert_eq!((file.as_str(), offset), ("chunks/000001", Some(0)));
    assert!(reason.contains("magic"), "{reason}");
    bytes[0] = 0x85;
    bytes[4] = 2;
    let e = one_segment(bytes).await.unwrap_err();
    assert!(matches!(e, BlockError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("version 2"), "{e}");
}

#[tokio::test]
async fn refs_outside_the_segments_are_clear_errors() {
    let bytes = segment_bytes(&[xor_chunk(3, 1)]);
    let size = bytes.len() as u64;
    let r = one_segment(bytes).await.unwrap();

    let e = r.chunk(ChunkRef::new(2, 8).0).await.unwrap_err();
    let (block, file, offset, reason) = corrupt_parts(&e);
    assert_eq!(
        (block.as_str(), file.as_str()),
        ("01BLOCK", "chunks/000003")
    );
    assert_eq!(offset, Some(8));
    assert!(
        reason.contains("segment index 2") && reason.contains("1 segment"),
        "{reason}"
    );

    for off in [size, size + 100, 0, 4] {
        let e = r.chunk(off).await.unwrap_err();
        let (_, file, offset, reason) = corrupt_parts(&e);
        assert_eq!((file.as_str(), offset), ("chunks/000001", Some(off)));
        assert!(reason.contains("outside"), "{reason}");
    }
}

#[tokio::test]
async fn unknown_encoding_byte_is_named() {
    let mut rec = vec![0x85, 0xbd, 0x40, 0xdd, 1, 0, 0, 0, 2, 0x07, 0, 0];
    let crc = crc32c(&rec[9..]);
    rec.extend_from_slice(&crc.to_be_bytes());
    let r = one_segment(rec).await.unwrap();
    let e = r.chunk(8).await.unwrap_err();
    assert!(matches!(e, BlockError::Unsupported { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("0x07") && msg.contains("offset 8") && msg.contains("chunks/000001"));
}

/// Records every range read, to prove chunks are fetched without reading whole files.
#[derive(Debug)]
struct Counting {
    inner: InMemory,
    reads: Mutex<Vec<Range<u64>>>,
    remote: bool,
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
        self.reads.lock().unwrap().push(range.clone());
        self.inner.read_range(range).await
    }
    fn is_remote(&self) -> bool {
        self.remote
    }
}

#[tokio::test]
async fn chunks_are_fetched_by_small_range_reads() {
    let chunks: Vec<_> = (0..200).map(|i| xor_chunk(120, i)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let (refs, _) = write_block(&dir, &chunks, DEFAULT_MAX_SEGMENT_SIZE);
    let bytes = std::fs::read(dir.join("chunks/000001")).unwrap();
    let total = bytes.len() as u64;
    let src = Arc::new(Counting {
        inner: InMemory(Bytes::from(bytes)),
        reads: Mutex::new(Vec::new()),
        remote: false,
    });
    let seg = SegmentSource {
        loc: FileLocation::new("b", "chunks/000001"),
        source: src.clone(),
    };
    let r = SegmentReader::open("b", vec![seg]).await.unwrap();
    assert_eq!(r.chunk(refs[100].0).await.unwrap(), chunks[100]);
    let reads = src.reads.lock().unwrap().clone();
    let read: u64 = reads.iter().map(|r| r.end - r.start).sum();
    assert!(
        read <= 8 + 2 * FIRST_READ && read < total / 10,
        "{reads:?} of {total}"
    );
}

#[tokio::test]
async fn a_run_of_adjacent_chunks_costs_one_range_read() {
    let chunks: Vec<_> = (0..50).map(|i| xor_chunk(120, i)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let (refs, _) = write_block(&dir, &chunks, DEFAULT_MAX_SEGMENT_SIZE);
    let bytes = std::fs::read(dir.join("chunks/000001")).unwrap();
    let src = Arc::new(Counting {
        inner: InMemory(Bytes::from(bytes)),
        reads: Mutex::new(Vec::new()),
        remote: false,
    });
    let seg = SegmentSource {
        loc: FileLocation::new("b", "chunks/000001"),
        source: src.clone(),
    };
    let r = SegmentReader::open("b", vec![seg]).await.unwrap();
    let header_reads = src.reads.lock().unwrap().len();
    let want: Vec<u64> = refs[10..14].iter().map(|r| r.0).collect();
    let got = r.chunks(&want).await.unwrap();
    assert_eq!(got, chunks[10..14].to_vec());
    let reads = src.reads.lock().unwrap().len() - header_reads;
    // One read for the run; at most one more if the last record outgrew the first window.
    assert!(reads <= 2, "{reads} reads for 4 adjacent chunks");
    // A bad ref inside a run still gets the precise error.
    let e = r.chunks(&[want[0], 1 << 40]).await.unwrap_err();
    assert!(e.to_string().contains("segment"), "{e}");
}

#[tokio::test]
async fn scattered_chunks_of_a_bucket_object_are_read_in_few_requests() {
    // Chunks farther apart than a local run's gap, within a remote one's.
    let chunks: Vec<_> = (0..3000).map(|i| xor_chunk(120, i)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("b");
    let (refs, _) = write_block(&dir, &chunks, DEFAULT_MAX_SEGMENT_SIZE);
    let bytes = Bytes::from(std::fs::read(dir.join("chunks/000001")).unwrap());
    let step = 1 + refs
        .iter()
        .position(|r| r.0 - refs[0].0 > MAX_RUN_GAP)
        .expect("chunks span more than the local gap");
    let want: Vec<u64> = refs.iter().step_by(step).map(|r| r.0).collect();
    let expected: Vec<Chunk> = chunks.iter().step_by(step).cloned().collect();
    assert!(want.len() >= 5, "{} chunks", want.len());
    let mut reads_of = Vec::new();
    for remote in [false, true] {
        let src = Arc::new(Counting {
            inner: InMemory(bytes.clone()),
            reads: Mutex::new(Vec::new()),
            remote,
        });
        let seg = SegmentSource {
            loc: FileLocation::new("b", "chunks/000001"),
            source: src.clone(),
        };
        let r = SegmentReader::open("b", vec![seg]).await.unwrap();
        let before = src.reads.lock().unwrap().len();
        assert_eq!(r.chunks(&want).await.unwrap(), expected, "remote: {remote}");
        reads_of.push(src.reads.lock().unwrap().len() - before);
    }
    assert!(
        reads_of[0] >= want.len(),
        "local: {} reads for {} chunks",
        reads_of[0],
        want.len()
    );
    assert!(
        reads_of[1] <= 2,
        "remote: {} reads for {} chunks",
        reads_of[1],
        want.len()
    );
}
