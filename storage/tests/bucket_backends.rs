//! The bucket against a real S3 server (s3s-fs embedded on loopback, SigV4 enforced) and a
//! FILESYSTEM bucket, both configured through the objstore YAML exactly as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::StreamExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::block::meta::BlockMeta;
use storage::block::source::RangeSource;
use storage::bucket::blocks::{fetch_metas, list_block_ids, read_meta, upload_block};
use storage::bucket::marks::{self, DeletionMark, NoCompactMark};
use storage::bucket::retry::RetryOptions;
use storage::bucket::timeout::TimeoutOptions;
use storage::bucket::{
    open_backend, open_bucket, Bucket, BucketConfig, BucketMetrics, BucketObject, BucketOptions,
    ErrorKind,
};
use storage::testing::s3::{S3Server, ACCESS_KEY, BUCKET, SECRET_KEY};
use ulid::Ulid;

const MIB: usize = 1024 * 1024;

async fn start_s3() -> S3Server {
    S3Server::start().await.unwrap()
}

fn s3_yaml(port: u16, secret: &str, extra: &str) -> String {
    format!(
        "type: S3\nconfig:\n  bucket: {BUCKET}\n  endpoint: 127.0.0.1:{port}\n  \
         access_key: {ACCESS_KEY}\n  secret_key: {secret}\n  insecure: true\n{extra}"
    )
}

fn fast_options() -> BucketOptions {
    BucketOptions {
        retry: RetryOptions {
            attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        },
        timeouts: TimeoutOptions::default(),
    }
}

fn open_yaml(yaml: &str) -> Arc<dyn Bucket> {
    let config = BucketConfig::parse(yaml, "test").unwrap();
    let metrics = BucketMetrics::register(&prometheus::Registry::new()).unwrap();
    open_bucket(&config, &fast_options(), &metrics).unwrap()
}

fn fs_bucket(dir: &Path) -> Arc<dyn Bucket> {
    open_yaml(&format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    ))
}

// ---- behaviour shared by both backends ----

async fn put_get_range_head_delete(b: Arc<dyn Bucket>) {
    let data = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    b.put("dir/obj", data.clone()).await.unwrap();
    assert_eq!(b.get("dir/obj").await.unwrap(), data);
    assert_eq!(
        b.get_range("dir/obj", 6..11).await.unwrap(),
        data.slice(6..11)
    );
    assert_eq!(
        b.get_range("dir/obj", 150_000..200_000).await.unwrap(),
        data.slice(150_000..)
    );
    let info = b.head("dir/obj").await.unwrap();
    assert_eq!((info.path.as_str(), info.size), ("dir/obj", 200_000));
    assert!(info.last_modified_ms > 1_600_000_000_000);
    assert!(b.exists("dir/obj").await.unwrap());

    let obj = BucketObject::open(b.clone(), "dir/obj").await.unwrap();
    assert_eq!(obj.size(), 200_000);
    assert_eq!(
        obj.read_range(100..104).await.unwrap(),
        data.slice(100..104)
    );

    b.delete("dir/obj").await.unwrap();
    assert!(!b.exists("dir/obj").await.unwrap());
    assert_eq!(
        b.get("dir/obj").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        b.head("dir/obj").await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    b.delete("dir/obj").await.unwrap(); // deleting a missing object is fine
}

async fn lists_past_one_page(b: Arc<dyn Bucket>) {
    // More than S3's 1000 keys per ListObjectsV2 page, so continuation tokens are followed.
    let n = 1100;
    futures::stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            async move {
                b.put(&format!("many/k{i:05}"), Bytes::from_static(b"x"))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    b.put("many/sub/a", Bytes::from_static(b"y")).await.unwrap();
    b.put("top", Bytes::from_static(b"z")).await.unwrap();

    let all = b.list_recursive("many").await.unwrap();
    assert_eq!(all.len(), n + 1);
    assert_eq!(all[0].path, "many/k00000");
    assert_eq!(all[n - 1].path, format!("many/k{:05}", n - 1));
    assert_eq!(all[n].path, "many/sub/a");
    assert!(all.windows(2).all(|w| w[0].path < w[1].path));

    let dir = b.list_dir("many").await.unwrap();
    assert_eq!(dir.len(), n + 1);
    assert_eq!(dir.last().unwrap(), "many/sub/");
    assert_eq!(b.list_dir("").await.unwrap(), ["many/", "top"]);
    assert!(b.list_dir("nothing").await.unwrap().is_empty());
}

async fn uploads_large_file_and_reads_it_back(b: Arc<dyn Bucket>) {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("big");
    let data: Vec<u8> = (0..12 * MIB).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    assert_eq!(
        b.upload_file("big/file", &local).await.unwrap(),
        data.len() as u64
    );
    assert_eq!(b.head("big/file").await.unwrap().size, data.len() as u64);
    let back = b.get("big/file").await.unwrap();
    assert!(back == data, "content differs after upload");
    let mid = 5 * MIB as u64 - 10..5 * MIB as u64 + 10;
    assert_eq!(
        b.get_range("big/file", mid.clone()).await.unwrap(),
        &data[mid.start as usize..mid.end as usize]
    );
}

fn write_local_block(root: &Path) -> (std::path::PathBuf, BlockMeta) {
    let id = Ulid::new();
    let dir = root.join(id.to_string());
    std::fs::create_dir_all(dir.join("chunks")).unwrap();
    std::fs::write(dir.join("chunks/000001"), vec![1u8; 1000]).unwrap();
    std::fs::write(dir.join("index"), vec![2u8; 100]).unwrap();
    let mut meta = BlockMeta::new_level1(id, 0, 7_200_000);
    meta.thanos_mut().source = "test".into();
    meta.write_to_dir(&dir).unwrap();
    (dir, meta)
}

async fn blocks_marks_and_partial_uploads(b: Arc<dyn Bucket>) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, meta) = write_local_block(tmp.path());
    let id = meta.ulid;
    let uploaded = upload_block(b.as_ref(), &dir, &meta, None).await.unwrap();
    assert_eq!(read_meta(b.as_ref(), id).await.unwrap(), uploaded);
    let index = BucketObject::open(b.clone(), &format!("{id}/index"))
        .await
        .unwrap();
    assert_eq!(index.read_range(0..3).await.unwrap(), vec![2u8; 3]);

    // A partial upload: data files but no meta.json.
    let partial = Ulid::new();
    b.put(
        &format!("{partial}/chunks/000001"),
        Bytes::from_static(b"c"),
    )
    .await
    .unwrap();
    b.put(&format!("{partial}/index"), Bytes::from_static(b"i"))
        .await
        .unwrap();
    let mut want_ids = vec![id, partial];
    want_ids.sort();
    assert_eq!(list_block_ids(b.as_ref()).await.unwrap(), want_ids);
    let f = fetch_metas(b.as_ref()).await.unwrap();
    assert_eq!(f.metas.keys().copied().collect::<Vec<_>>(), [id]);
    assert_eq!(f.partial, [partial]);
    assert!(f.corrupt.is_empty());

    // Marks round trip with Thanos' field names.
    assert!(marks::mark_for_deletion(b.as_ref(), id, "test")
        .await
        .unwrap());
    assert!(
        marks::mark_no_compact(b.as_ref(), id, marks::REASON_MANUAL, "")
            .await
            .unwrap()
    );
    let d = marks::read_mark::<DeletionMark>(b.as_ref(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.id, d.version, d.details.as_str()), (id, 1, "test"));
    let raw = b.get(&format!("{id}/deletion-mark.json")).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert!(json["deletion_time"].as_i64().unwrap() > 1_600_000_000);
    let n = marks::read_mark::<NoCompactMark>(b.as_ref(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.reason, "manual");

    storage::bucket::blocks::delete_block(b.as_ref(), id)
        .await
        .unwrap();
    assert!(b.list_recursive(&id.to_string()).await.unwrap().is_empty());
    assert_eq!(list_block_ids(b.as_ref()).await.unwrap(), [partial]);
}

// ---- S3 ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_put_get_range_head_delete() {
    let s = start_s3().await;
    put_get_range_head_delete(open_yaml(&s3_yaml(s.port, SECRET_KEY, ""))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_lists_past_one_page() {
    let s = start_s3().await;
    lists_past_one_page(open_yaml(&s3_yaml(s.port, SECRET_KEY, ""))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multipart_upload_of_file_larger_than_part_size() {
    let s = start_s3().await;
    let yaml = s3_yaml(s.port, SECRET_KEY, "  part_size: 5242880\n");
    uploads_large_file_and_reads_it_back(open_yaml(&yaml)).await;
    // S3 gives multipart objects an ETag ending in -<parts>: 12 MiB in 5 MiB parts is 3.
    let backend = open_backend(&BucketConfig::parse(&yaml, "test").unwrap()).unwrap();
    let head = object_store::ObjectStoreExt::head(backend.store().as_ref(), &"big/file".into())
        .await
        .unwrap();
    let etag = head.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "etag {etag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blocks_marks_and_partial_uploads() {
    let s = start_s3().await;
    blocks_marks_and_partial_uploads(open_yaml(&s3_yaml(s.port, SECRET_KEY, ""))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_prefix_keeps_objects_under_it() {
    let s = start_s3().await;
    let prefixed = open_yaml(&format!(
        "{}prefix: tenant-a\n",
        s3_yaml(s.port, SECRET_KEY, "")
    ));
    prefixed.put("x/y", Bytes::from_static(b"1")).await.unwrap();
    assert_eq!(prefixed.list_dir("").await.unwrap(), ["x/"]);
    let plain = open_yaml(&s3_yaml(s.port, SECRET_KEY, ""));
    assert_eq!(plain.list_dir("").await.unwrap(), ["tenant-a/"]);
    assert_eq!(
        plain.get("tenant-a/x/y").await.unwrap(),
        Bytes::from_static(b"1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_secret_is_unauthorized_and_says_credentials_were_refused() {
    let s = start_s3().await;
    let b = open_yaml(&s3_yaml(s.port, "not-the-secret", ""));
    let err = b.put("a", Bytes::from_static(b"x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("refused the credentials"), "{msg}");
    assert!(msg.contains(ACCESS_KEY), "{msg}");
    assert!(!msg.contains("not-the-secret"), "{msg}");
    let err = b.get("a").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_silent_endpoint_times_out_instead_of_hanging() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let extra = "  http_config:\n    response_header_timeout: 1s\n";
    let b = open_yaml(&s3_yaml(port, SECRET_KEY, extra));
    let start = Instant::now();
    let err = b.get("a").await.unwrap_err();
    let took = start.elapsed();
    hold.abort();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("no response in time"), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refused_connection_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let b = open_yaml(&s3_yaml(port, SECRET_KEY, ""));
    let err = b.head("a").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(
        err.to_string().contains("gave up after 3 attempts"),
        "{err}"
    );
}

// ---- FILESYSTEM ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_put_get_range_head_delete() {
    let tmp = tempfile::tempdir().unwrap();
    put_get_range_head_delete(fs_bucket(&tmp.path().join("bucket"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_lists_past_one_page() {
    let tmp = tempfile::tempdir().unwrap();
    lists_past_one_page(fs_bucket(tmp.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_upload_of_large_file() {
    let tmp = tempfile::tempdir().unwrap();
    uploads_large_file_and_reads_it_back(fs_bucket(tmp.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_blocks_marks_and_partial_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    blocks_marks_and_partial_uploads(fs_bucket(tmp.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_default_bucket_lives_in_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let config = BucketConfig::from_flags(None, None, tmp.path()).unwrap();
    let metrics = BucketMetrics::register(&prometheus::Registry::new()).unwrap();
    let b = open_bucket(&config, &fast_options(), &metrics).unwrap();
    b.put("01X/meta.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(tmp.path().join("bucket/01X/meta.json").is_file());
}
