//! Opening a configured bucket: the backend, then the standard decorator stack.
//!
//! The stack is `metrics → retry → timeout → backend`:
//! - metrics outermost count logical operations, as Thanos does (its S3 client retries inside),
//!   so a retried-then-successful get is one operation and no failure;
//! - retry over timeout makes the limit apply per attempt, so one stuck connection is cut off
//!   and retried instead of eating the whole budget; the total is bounded by
//!   `attempts × limit + backoff`;
//! - object_store's own retries are off, so attempts are counted and bounded in one place.

use super::backend::ObjectStoreBucket;
use super::config::{BackendConfig, BucketConfig, BucketLookup, FilesystemConfig, S3Config};
use super::errors::Identity;
use super::metrics::{BucketMetrics, MetricsBucket};
use super::retry::{RetryBucket, RetryOptions};
use super::timeout::{TimeoutBucket, TimeoutOptions};
use super::{Bucket, BucketError, ErrorKind};
use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use std::path::Path;
use std::sync::Arc;

/// Decorator settings for `open_bucket`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketOptions {
    /// Retry policy; an S3 config's non-zero `max_retries` overrides `attempts`.
    pub retry: RetryOptions,
    /// Per-attempt time limits.
    pub timeouts: TimeoutOptions,
}

/// Opens the configured bucket with the standard stack (metrics, retry, timeout).
pub fn open_bucket(
    config: &BucketConfig,
    opts: &BucketOptions,
    metrics: &BucketMetrics,
) -> Result<Arc<dyn Bucket>, BucketError> {
    let backend = open_backend(config)?;
    let name = backend.describe();
    let mut retry = opts.retry;
    if let BackendConfig::S3(S3Config {
        max_retries: Some(n),
        ..
    }) = &config.backend
    {
        retry.attempts = n.saturating_add(1);
    }
    let timed: Arc<dyn Bucket> = Arc::new(TimeoutBucket::new(Arc::new(backend), opts.timeouts));
    let retried: Arc<dyn Bucket> = Arc::new(RetryBucket::new(timed, retry));
    Ok(Arc::new(MetricsBucket::new(retried, metrics.clone(), name)))
}

/// Opens only the backend, without decorators.
pub fn open_backend(config: &BucketConfig) -> Result<ObjectStoreBucket, BucketError> {
    let (store, desc, bucket) = match &config.backend {
        BackendConfig::S3(s3) => {
            let (store, identity) = build_s3(s3)?;
            let b = ObjectStoreBucket::new(store, format!("s3://{}", s3.bucket))
                .with_part_size(s3.part_size, !s3.disable_multipart)
                .with_identity(identity);
            (b.store().clone(), format!("s3://{}", s3.bucket), b)
        }
        BackendConfig::Filesystem(fs) => {
            let store = build_filesystem(fs)?;
            let desc = format!("file://{}", fs.directory.display());
            (
                store.clone(),
                desc.clone(),
                ObjectStoreBucket::new(store, desc).with_local_root(fs.directory.clone()),
            )
        }
    };
    if config.prefix.is_empty() {
        return Ok(bucket);
    }
    let prefixed: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(
        store,
        config.prefix.as_str(),
    ));
    Ok(bucket.with_store(
        prefixed,
        format!("{desc}/{}", config.prefix),
        &config.prefix,
    ))
}

fn config_error(path: &str, message: String) -> BucketError {
    BucketError::new(ErrorKind::Config, "open", path, message)
}

fn build_filesystem(fs: &FilesystemConfig) -> Result<Arc<dyn ObjectStore>, BucketError> {
    let dir = &fs.directory;
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|e| {
        BucketError::new(
            ErrorKind::LocalIo,
            "open",
            &shown,
            format!("cannot create the bucket directory: {e}"),
        )
    })?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| config_error(&shown, format!("cannot use the bucket directory: {e}")))?
        // Deleting a block's last file removes its directory, as on S3.
        .with_automatic_cleanup(true);
    Ok(Arc::new(store))
}

fn build_s3(s3: &S3Config) -> Result<(Arc<dyn ObjectStore>, Identity), BucketError> {
    let (builder, identity) = s3_builder(s3);
    let store = builder
        .build()
        .map_err(|e| config_error(&s3.bucket, format!("cannot build the S3 client: {e}")))?;
    let store: Arc<dyn ObjectStore> = if s3.http.max_conns_per_host > 0 {
        Arc::new(object_store::limit::LimitStore::new(
            store,
            s3.http.max_conns_per_host,
        ))
    } else {
        Arc::new(store)
    };
    Ok((store, identity))
}

/// The S3 client's settings from Thanos' S3 config.
fn s3_builder(s3: &S3Config) -> (AmazonS3Builder, Identity) {
    let scheme = if s3.insecure { "http" } else { "https" };
    let endpoint = match s3.bucket_lookup {
        BucketLookup::Path => format!("{scheme}://{}", s3.endpoint),
        // object_store expects the bucket already in a virtual-hosted endpoint.
        BucketLookup::VirtualHosted => format!("{scheme}://{}.{}", s3.bucket, s3.endpoint),
    };
    let (mut builder, identity) = match (&s3.access_key, &s3.secret_key) {
        (Some(id), Some(secret)) => {
            let mut b = AmazonS3Builder::new()
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = &s3.session_token {
                b = b.with_token(token);
            }
            (b, Identity::AccessKey(id.clone()))
        }
        _ => (AmazonS3Builder::from_env(), Identity::Ambient),
    };
    builder = builder
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_endpoint(endpoint)
        .with_allow_http(s3.insecure)
        .with_virtual_hosted_style_request(s3.bucket_lookup == BucketLookup::VirtualHosted)
        .with_retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
        .with_client_options(client_options(s3))
        // As Thanos' client (minio-go) does: over TLS the payload is not hashed into the
        // signature, TLS already protecting it; over plain HTTP it is signed.
        .with_unsigned_payload(!s3.insecure);
    (builder, identity)
}

/// Thanos' `http_config` as object_store client options. There is no whole-request limit:
/// a 64 MiB part on a slow link must not be cut off; the response wait (which, in reqwest,
/// runs from the start of sending until the headers arrive) and our per-operation timeout
/// bound silence instead.
fn client_options(s3: &S3Config) -> ClientOptions {
    let h = &s3.http;
    let mut o = ClientOptions::new()
        .with_allow_http(s3.insecure)
        .with_allow_invalid_certificates(h.insecure_skip_verify)
        .with_timeout_disabled()
        .with_pool_idle_timeout(h.idle_conn_timeout)
        .with_pool_max_idle_per_host(h.max_idle_conns.min(h.max_idle_conns_per_host));
    o = if h.response_header_timeout.is_zero() {
        o.with_read_timeout_disabled()
    } else {
        o.with_read_timeout(h.response_header_timeout)
    };
    if h.tls_handshake_timeout.is_zero() {
        o.with_connect_timeout_disabled()
    } else {
        o.with_connect_timeout(h.tls_handshake_timeout)
    }
}

/// Fails, naming the directory, when a FILESYSTEM bucket's directory does not exist. Readers
/// call it before opening: opening creates the directory (as writers need), and a bucket made
/// empty that way would read as "no blocks" instead of as the typo it is. Other backends pass
/// (a missing S3 bucket fails at its first listing).
pub fn require_existing(config: &BucketConfig) -> Result<(), BucketError> {
    let BackendConfig::Filesystem(fs) = &config.backend else {
        return Ok(());
    };
    let dir = &fs.directory;
    match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(config_error(
            &dir.display().to_string(),
            "the bucket directory is not a directory".into(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BucketError::new(
            ErrorKind::NotFound,
            "open",
            dir.display().to_string(),
            "the bucket directory does not exist",
        )),
        Err(e) => Err(BucketError::new(
            ErrorKind::LocalIo,
            "open",
            dir.display().to_string(),
            format!("cannot read the bucket directory: {e}"),
        )),
    }
}

/// Like [`open_from_flags`] for readers: a FILESYSTEM bucket's directory must already exist.
pub fn open_existing_from_flags(
    config_file: Option<&Path>,
    inline: Option<&str>,
    data_dir: &Path,
    opts: &BucketOptions,
    metrics: &BucketMetrics,
) -> Result<Arc<dyn Bucket>, BucketError> {
    let config = BucketConfig::from_flags(config_file, inline, data_dir)?;
    require_existing(&config)?;
    open_bucket(&config, opts, metrics)
}

/// Opens the bucket the flags select (file, inline YAML, or `<data_dir>/bucket`) with the
/// standard stack, creating a FILESYSTEM bucket's directory (for writers).
pub fn open_from_flags(
    config_file: Option<&Path>,
    inline: Option<&str>,
    data_dir: &Path,
    opts: &BucketOptions,
    metrics: &BucketMetrics,
) -> Result<Arc<dyn Bucket>, BucketError> {
    let config = BucketConfig::from_flags(config_file, inline, data_dir)?;
    open_bucket(&config, opts, metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use object_store::aws::AmazonS3ConfigKey;

    #[test]
    fn payloads_are_signed_over_http_and_not_hashed_over_tls_as_in_thanos() {
        for (insecure, unsigned) in [(true, "false"), (false, "true")] {
            let yaml = format!(
                "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  access_key: k\n  secret_key: s\n  insecure: {insecure}\n"
            );
            let BackendConfig::S3(s3) = BucketConfig::parse(&yaml, "test").unwrap().backend else {
                panic!("not S3");
            };
            let (builder, _) = s3_builder(&s3);
            assert_eq!(
                builder
                    .get_config_value(&AmazonS3ConfigKey::UnsignedPayload)
                    .as_deref(),
                Some(unsigned),
                "insecure: {insecure}"
            );
        }
    }

    fn open(yaml: &str) -> Arc<dyn Bucket> {
        let config = BucketConfig::parse(yaml, "test").unwrap();
        let metrics = BucketMetrics::register(&prometheus::Registry::new()).unwrap();
        open_bucket(&config, &BucketOptions::default(), &metrics).unwrap()
    }

    #[tokio::test]
    async fn filesystem_stack_exposes_objects_as_local_files() {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            tmp.path().display()
        );
        let b = open(&yaml);
        b.put("blk/chunks/000001", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let local = b.local_path("blk/chunks/000001").unwrap();
        assert_eq!(std::fs::read(&local).unwrap(), b"abc");
        assert!(local.starts_with(tmp.path()));
        // Paths the bucket would reject never escape its directory.
        assert_eq!(b.local_path("../etc/passwd"), None);
        assert_eq!(b.local_path("a//b"), None);
    }

    #[tokio::test]
    async fn filesystem_upload_copies_the_file_and_leaves_no_temporary_object() {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            tmp.path().join("bkt").display()
        );
        let b = open(&yaml);
        let src = tmp.path().join("segment");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        assert_eq!(
            b.upload_file("blk/chunks/000001", &src).await.unwrap(),
            100_000
        );
        assert_eq!(b.get("blk/chunks/000001").await.unwrap(), Bytes::from(data));
        let listed: Vec<String> = b
            .list_recursive("blk/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(listed, vec!["blk/chunks/000001".to_string()]);
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("bkt/blk/chunks"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("000001")]);
        let err = b
            .upload_file("blk/index", &tmp.path().join("missing"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::bucket::ErrorKind::LocalIo, "{err}");
    }

    #[tokio::test]
    async fn prefixed_filesystem_bucket_maps_into_the_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: tenant/a\n",
            tmp.path().display()
        );
        let b = open(&yaml);
        b.put("blk/index", Bytes::from_static(b"xyz"))
            .await
            .unwrap();
        let local = b.local_path("blk/index").unwrap();
        assert_eq!(
            local,
            tmp.path()
                .join("tenant")
                .join("a")
                .join("blk")
                .join("index")
        );
        assert_eq!(std::fs::read(&local).unwrap(), b"xyz");
    }

    #[test]
    fn readers_refuse_a_missing_filesystem_directory_writers_create_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("no-such-bucket");
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            dir.display()
        );
        let config = BucketConfig::parse(&yaml, "test").expect("config");
        let err = require_existing(&config).expect_err("missing directory");
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&dir.display().to_string()),
            "names the directory: {err}"
        );
        assert!(!dir.exists(), "a reader's check creates nothing");
        let metrics = BucketMetrics::register(&prometheus::Registry::new()).expect("metrics");
        open_bucket(&config, &BucketOptions::default(), &metrics).expect("writers open");
        assert!(dir.is_dir(), "a writer's open creates the directory");
        require_existing(&config).expect("now it exists");
        let file = tmp.path().join("a-file");
        std::fs::write(&file, b"x").expect("write");
        let yaml = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            file.display()
        );
        let config = BucketConfig::parse(&yaml, "test").expect("config");
        assert_eq!(
            require_existing(&config).expect_err("a file").kind,
            ErrorKind::Config
        );
    }

    #[test]
    fn remote_and_in_memory_buckets_have_no_local_files() {
        let mem = ObjectStoreBucket::in_memory();
        assert_eq!(mem.local_path("blk/index"), None);
        let s3 = open(
            "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:1\n  access_key: k\n  \
             secret_key: s\n  insecure: true\n",
        );
        assert_eq!(s3.local_path("blk/index"), None);
    }
}
