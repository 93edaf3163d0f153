use super::*;
use crate::bucket::fault::{Fault, FaultBucket};
use crate::bucket::marks::{read_mark, write_mark, DeletionMark};
use crate::bucket::{ErrorKind, ObjectStoreBucket};
use std::sync::{Arc, Mutex};

fn write_block(root: &Path, id: Ulid) -> PathBuf {
    let dir = root.join(id.to_string());
    std::fs::create_dir_all(dir.join("chunks")).unwrap();
    std::fs::write(dir.join("chunks/000002"), vec![2u8; 300]).unwrap();
    std::fs::write(dir.join("chunks/000001"), vec![1u8; 200]).unwrap();
    std::fs::write(dir.join("index"), vec![9u8; 50]).unwrap();
    BlockMeta::new_level1(id, 1000, 2000)
        .write_to_dir(&dir)
        .unwrap();
    dir
}

#[tokio::test]
async fn upload_writes_data_files_then_meta_with_file_list() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Ulid::new();
    let dir = write_block(tmp.path(), id);
    let meta = BlockMeta::read_from_dir(&dir).unwrap();
    let b = ObjectStoreBucket::in_memory();
    let seen = Mutex::new(Vec::new());
    let cb = |p: &UploadProgress| seen.lock().unwrap().push(p.clone());
    let uploaded = upload_block(&b, &dir, &meta, Some(&cb)).await.unwrap();

    let seen = seen.into_inner().unwrap();
    let order: Vec<&str> = seen.iter().map(|p| p.file.as_str()).collect();
    // Data files go up two at a time, so they finish in any order; meta.json only after all.
    assert_eq!(order.first(), Some(&""));
    assert_eq!(order.last(), Some(&"meta.json"));
    let mut data: Vec<&str> = order[1..order.len() - 1].to_vec();
    data.sort();
    assert_eq!(data, ["chunks/000001", "chunks/000002", "index"]);
    let last = seen.last().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    assert!(
        seen.windows(2).all(|w| w[0].bytes_done < w[1].bytes_done),
        "{seen:?}"
    );
    assert!([200, 300, 50].contains(&seen[1].bytes_done), "{seen:?}");

    let files = &uploaded.thanos.as_ref().unwrap().files;
    let got: Vec<(&str, Option<u64>)> = files
        .iter()
        .map(|f| (f.rel_path.as_str(), f.size_bytes))
        .collect();
    assert_eq!(
        got,
        [
            ("chunks/000001", Some(200)),
            ("chunks/000002", Some(300)),
            ("index", Some(50)),
            ("meta.json", None)
        ]
    );
    let remote = read_meta(&b, id).await.unwrap();
    assert_eq!(remote, uploaded);
    assert_eq!(
        b.get(&format!("{id}/chunks/000002")).await.unwrap().len(),
        300
    );
}

#[tokio::test]
async fn upload_refuses_a_directory_not_named_after_the_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_block(tmp.path(), Ulid::new());
    let other = BlockMeta::new_level1(Ulid::new(), 0, 1);
    let err = upload_block(&ObjectStoreBucket::in_memory(), &dir, &other, None)
        .await
        .unwrap_err();
    assert!(matches!(err, BlockError::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn upload_without_index_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Ulid::new();
    let dir = write_block(tmp.path(), id);
    std::fs::remove_file(dir.join("index")).unwrap();
    let meta = BlockMeta::read_from_dir(&dir).unwrap();
    let b = ObjectStoreBucket::in_memory();
    let err = upload_block(&b, &dir, &meta, None).await.unwrap_err();
    assert!(
        matches!(&err, BlockError::Missing { file, .. } if file == "index"),
        "{err}"
    );
    assert!(list_block_ids(&b).await.unwrap().is_empty());
}

#[tokio::test]
async fn failed_upload_leaves_block_invisible() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Ulid::new();
    let dir = write_block(tmp.path(), id);
    let meta = BlockMeta::read_from_dir(&dir).unwrap();
    let fb = FaultBucket::new(Arc::new(ObjectStoreBucket::in_memory()));
    // meta.json is the only `put`: every data file went up, the completeness marker did not.
    fb.fail_next("put", 1, Fault::Kind(ErrorKind::Unavailable));
    let err = upload_block(&fb, &dir, &meta, None).await.unwrap_err();
    assert_eq!(
        crate::bucket::marks::bucket_error(&err).map(|e| e.kind),
        Some(ErrorKind::Unavailable)
    );
    let fetched = fetch_metas(&fb).await.unwrap();
    assert!(fetched.metas.is_empty());
    assert_eq!(fetched.partial, [id]);
}

#[tokio::test]
async fn fetch_metas_sorts_blocks_into_good_partial_and_corrupt() {
    let b = ObjectStoreBucket::in_memory();
    let (good, partial, corrupt, wrong_id) = (
        Ulid::from_parts(1, 1),
        Ulid::from_parts(2, 2),
        Ulid::from_parts(3, 3),
        Ulid::from_parts(4, 4),
    );
    let put = |p: String, d: Vec<u8>| {
        let b = &b;
        async move { b.put(&p, Bytes::from(d)).await.unwrap() }
    };
    put(
        format!("{good}/meta.json"),
        BlockMeta::new_level1(good, 0, 10).to_json(),
    )
    .await;
    put(format!("{partial}/index"), vec![1]).await;
    put(format!("{corrupt}/meta.json"), b"{\"ulid\": ".to_vec()).await;
    put(
        format!("{wrong_id}/meta.json"),
        BlockMeta::new_level1(good, 0, 10).to_json(),
    )
    .await;
    put("debug/metas/x.json".into(), vec![]).await;
    put("not-a-block/meta.json".into(), vec![]).await;

    assert_eq!(
        list_block_ids(&b).await.unwrap(),
        [good, partial, corrupt, wrong_id]
    );
    let f = fetch_metas(&b).await.unwrap();
    assert_eq!(f.metas.keys().copied().collect::<Vec<_>>(), [good]);
    assert_eq!(f.partial, [partial]);
    assert_eq!(f.corrupt.len(), 2);
    let msg = f.corrupt[0].1.to_string();
    assert!(
        msg.contains(&corrupt.to_string()) && msg.contains("meta.json"),
        "{msg}"
    );
    assert!(
        f.corrupt[1].1.to_string().contains("names block"),
        "{}",
        f.corrupt[1].1
    );
}

#[tokio::test]
async fn fetch_metas_fails_whole_when_bucket_fails() {
    let fb = FaultBucket::new(Arc::new(ObjectStoreBucket::in_memory()));
    let id = Ulid::new();
    fb.put(
        &format!("{id}/meta.json"),
        Bytes::from(BlockMeta::new_level1(id, 0, 1).to_json()),
    )
    .await
    .unwrap();
    fb.fail_next("get", 1, Fault::Kind(ErrorKind::Unavailable));
    let err = fetch_metas(&fb).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
}

#[tokio::test]
async fn delete_block_removes_everything_including_the_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Ulid::new();
    let dir = write_block(tmp.path(), id);
    let meta = BlockMeta::read_from_dir(&dir).unwrap();
    let b = ObjectStoreBucket::in_memory();
    upload_block(&b, &dir, &meta, None).await.unwrap();
    write_mark(&b, &DeletionMark::new(id, 1, "")).await.unwrap();
    delete_block(&b, id).await.unwrap();
    assert!(b.list_recursive("").await.unwrap().is_empty());
    assert!(read_mark::<DeletionMark>(&b, id).await.unwrap().is_none());
}
