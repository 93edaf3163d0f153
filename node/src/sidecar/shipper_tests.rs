//! Shipper tests: Thanos' shipper file format and upload rounds over an in-memory bucket.

use super::shipper::*;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use storage::block::BlockMeta;
use storage::bucket::fault::{Fault, FaultBucket};
use storage::bucket::{Bucket, ErrorKind, ObjectStoreBucket};
use ulid::Ulid;

/// A shipper file as Thanos v0.3x writes it (tab-indented, trailing newline).
const THANOS_FILE: &str =
    "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"01HGZ3Y4V7Q5W1B0K8M9N2P3R4\"\n\t]\n}\n";

/// A fake Prometheus block: meta.json, chunks/000001, index (content is not inspected).
fn block(dir: &Path, min_time: i64, level: u32, samples: u64) -> Ulid {
    let id = Ulid::new();
    let bdir = dir.join(id.to_string());
    std::fs::create_dir_all(bdir.join("chunks")).unwrap();
    std::fs::write(bdir.join("chunks/000001"), vec![1u8; 100]).unwrap();
    std::fs::write(bdir.join("index"), vec![2u8; 50]).unwrap();
    std::fs::write(bdir.join("tombstones"), vec![0u8; 9]).unwrap();
    let mut meta = BlockMeta::new_level1(id, min_time, min_time + 30_000);
    meta.compaction.level = level;
    meta.stats.num_samples = samples;
    meta.write_to_dir(&bdir).unwrap();
    id
}

fn labels() -> BTreeMap<String, String> {
    [("region", "eu"), ("replica", "A")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shipper(bucket: Arc<dyn Bucket>, dir: &Path, compacted: bool) -> Shipper {
    let metrics = ShipperMetrics::register(&prometheus::Registry::new()).unwrap();
    Shipper::new(bucket, dir.to_path_buf(), compacted, metrics)
}

#[test]
fn reads_thanos_shipper_file_and_writes_it_back_identically() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(SHIPPER_FILE), THANOS_FILE).unwrap();
    let f = read_shipper_file(tmp.path()).unwrap().unwrap();
    assert_eq!(f.version, 1);
    assert_eq!(f.uploaded.len(), 1);
    assert_eq!(f.uploaded[0].to_string(), "01HGZ3Y4V7Q5W1B0K8M9N2P3R4");
    write_shipper_file(tmp.path(), &f).unwrap();
    let written = std::fs::read_to_string(tmp.path().join(SHIPPER_FILE)).unwrap();
    assert_eq!(written, THANOS_FILE);
}

#[test]
fn shipper_file_null_list_missing_file_and_bad_versions() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(read_shipper_file(tmp.path()).unwrap(), None);
    // Go writes a nil slice as null.
    std::fs::write(
        tmp.path().join(SHIPPER_FILE),
        "{\"version\":1,\"uploaded\":null}",
    )
    .unwrap();
    assert!(read_shipper_file(tmp.path())
        .unwrap()
        .unwrap()
        .uploaded
        .is_empty());
    std::fs::write(
        tmp.path().join(SHIPPER_FILE),
        "{\"version\":2,\"uploaded\":[]}",
    )
    .unwrap();
    let err = read_shipper_file(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("version 2"), "{err}");
    std::fs::write(tmp.path().join(SHIPPER_FILE), "{\"uploaded\":[\"nope\"]").unwrap();
    assert!(read_shipper_file(tmp.path()).is_err());
}

#[test]
fn decisions_skip_shipped_empty_and_compacted_blocks() {
    let id = Ulid::new();
    let mut m = BlockMeta::new_level1(id, 0, 1);
    m.stats.num_samples = 10;
    let none = HashSet::new();
    assert_eq!(decide(&m, &none, false), Decision::Ship);
    assert_eq!(
        decide(&m, &HashSet::from([id]), false),
        Decision::AlreadyShipped
    );
    m.compaction.level = 2;
    assert_eq!(decide(&m, &none, false), Decision::SkipCompacted);
    assert_eq!(decide(&m, &none, true), Decision::Ship);
    m.stats.num_samples = 0;
    assert_eq!(decide(&m, &none, true), Decision::SkipEmpty);
}

#[tokio::test]
async fn uploads_new_blocks_once_with_thanos_meta_and_meta_json_last() {
    let tmp = tempfile::tempdir().unwrap();
    let older = block(tmp.path(), 1_000, 1, 100);
    let newer = block(tmp.path(), 31_000, 1, 100);
    let compacted = block(tmp.path(), 61_000, 2, 100);
    let empty = block(tmp.path(), 91_000, 1, 0);
    let inner: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let bucket = Arc::new(FaultBucket::new(inner.clone()));
    let s = shipper(bucket.clone(), tmp.path(), false);

    let r = s.sync(&labels()).await.unwrap();
    assert_eq!(
        r.uploaded,
        vec![older, newer],
        "oldest first, no compacted/empty"
    );
    let meta = storage::bucket::blocks::read_meta(inner.as_ref(), older)
        .await
        .unwrap();
    let thanos = meta.thanos.as_ref().unwrap();
    assert_eq!(thanos.labels, labels());
    assert_eq!(thanos.source, "sidecar");
    assert_eq!(thanos.downsample.resolution, 0);
    let files: Vec<(&str, Option<u64>)> = thanos
        .files
        .iter()
        .map(|f| (f.rel_path.as_str(), f.size_bytes))
        .collect();
    assert_eq!(
        files,
        [
            ("chunks/000001", Some(100)),
            ("index", Some(50)),
            ("meta.json", None)
        ]
    );
    for skipped in [compacted, empty] {
        assert!(!inner.exists(&format!("{skipped}/meta.json")).await.unwrap());
    }
    let file = read_shipper_file(tmp.path()).unwrap().unwrap();
    assert_eq!(file.uploaded, vec![older, newer]);

    // A second round (a restarted sidecar) uploads nothing and asks the bucket nothing.
    let uploads = bucket.calls("upload") + bucket.calls("put");
    let exists = bucket.calls("exists");
    let r = shipper(bucket.clone(), tmp.path(), false)
        .sync(&labels())
        .await
        .unwrap();
    assert!(r.uploaded.is_empty() && r.found.is_empty(), "{r:?}");
    assert_eq!(bucket.calls("upload") + bucket.calls("put"), uploads);
    assert_eq!(bucket.calls("exists"), exists);

    // With --shipper.upload-compacted the compacted block goes too; the empty one never does.
    let r = shipper(bucket.clone(), tmp.path(), true)
        .sync(&labels())
        .await
        .unwrap();
    assert_eq!(r.uploaded, vec![compacted]);
}

#[tokio::test]
async fn blocks_in_the_thanos_file_or_the_bucket_are_not_uploaded_again() {
    let tmp = tempfile::tempdir().unwrap();
    let by_thanos = block(tmp.path(), 1_000, 1, 100);
    let in_bucket = block(tmp.path(), 31_000, 1, 100);
    write_shipper_file(
        tmp.path(),
        &ShipperFile {
            version: 1,
            // A block Prometheus has deleted since: dropped from the file.
            uploaded: vec![by_thanos, Ulid::new()],
        },
    )
    .unwrap();
    let bucket: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    bucket
        .put(
            &format!("{in_bucket}/meta.json"),
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    let r = shipper(bucket.clone(), tmp.path(), false)
        .sync(&labels())
        .await
        .unwrap();
    assert!(r.uploaded.is_empty());
    assert_eq!(r.found, vec![in_bucket]);
    assert!(!bucket.exists(&format!("{by_thanos}/index")).await.unwrap());
    let file = read_shipper_file(tmp.path()).unwrap().unwrap();
    assert_eq!(file.uploaded, vec![by_thanos, in_bucket]);
    // Prometheus' own files are untouched.
    assert!(tmp
        .path()
        .join(by_thanos.to_string())
        .join("index")
        .exists());
}

#[tokio::test]
async fn a_failed_upload_stops_the_round_and_the_next_round_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let first = block(tmp.path(), 1_000, 1, 100);
    let second = block(tmp.path(), 31_000, 1, 100);
    let inner: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let bucket = Arc::new(FaultBucket::new(inner.clone()));
    bucket.fail_next("upload", 1, Fault::Kind(ErrorKind::Unavailable));
    let s = shipper(bucket.clone(), tmp.path(), false);
    let err = s.sync(&labels()).await.unwrap_err().to_string();
    assert!(err.contains(&first.to_string()), "{err}");
    assert!(!inner.exists(&format!("{first}/meta.json")).await.unwrap());
    assert!(!inner.exists(&format!("{second}/meta.json")).await.unwrap());
    let file = read_shipper_file(tmp.path()).unwrap().unwrap();
    assert!(file.uploaded.is_empty());
    let r = s.sync(&labels()).await.unwrap();
    assert_eq!(r.uploaded, vec![first, second]);
}
