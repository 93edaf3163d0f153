use super::*;

fn parse(yaml: &str) -> Result<BucketConfig, BucketError> {
    BucketConfig::parse(yaml, "test.yaml")
}

fn s3(yaml: &str) -> S3Config {
    match parse(yaml).unwrap().backend {
        BackendConfig::S3(c) => c,
        other => panic!("not S3: {other:?}"),
    }
}

fn err(yaml: &str) -> String {
    let e = parse(yaml).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    e.to_string()
}

const MINIMAL: &str = "type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n";

#[test]
fn parses_minimal_s3_with_thanos_defaults() {
    let c = s3(MINIMAL);
    assert_eq!(c.bucket, "b");
    assert_eq!(c.endpoint, "127.0.0.1:9000");
    assert_eq!(c.region, "us-east-1");
    assert_eq!(c.part_size, DEFAULT_PART_SIZE);
    assert_eq!(c.bucket_lookup, BucketLookup::Path);
    assert_eq!(c.http, HttpConfig::default());
    assert!(!c.insecure);
    assert_eq!(c.access_key, None);
}

#[test]
fn type_is_case_insensitive_and_prefix_is_trimmed() {
    let c = parse("type: s3\nprefix: /tenant-a/\nconfig: {bucket: b, endpoint: h}\n").unwrap();
    assert!(matches!(c.backend, BackendConfig::S3(_)));
    assert_eq!(c.prefix, "tenant-a");
    let c = parse("type: FileSystem\nconfig:\n  directory: /tmp/x\n").unwrap();
    assert_eq!(
        c.backend,
        BackendConfig::Filesystem(FilesystemConfig {
            directory: "/tmp/x".into()
        })
    );
}

#[test]
fn parses_every_supported_s3_field() {
    let c = s3(r#"
type: S3
config:
  bucket: metrics
  endpoint: s3.example.com:443
  region: eu-west-1
  access_key: AKIAX
  secret_key: sekrit
  session_token: tok
  insecure: true
  signature_version2: false
  part_size: 10485760
  list_objects_version: v2
  bucket_lookup_type: virtual-hosted
  disable_multipart: true
  max_retries: 4
  http_config:
    idle_conn_timeout: 1m30s
    response_header_timeout: 1.5s
    tls_handshake_timeout: 500ms
    expect_continue_timeout: 2s
    insecure_skip_verify: true
    max_idle_conns: 7
    max_idle_conns_per_host: 5
    max_conns_per_host: 3
"#);
    assert_eq!(c.region, "eu-west-1");
    assert_eq!(c.access_key.as_deref(), Some("AKIAX"));
    assert_eq!(c.secret_key.as_deref(), Some("sekrit"));
    assert_eq!(c.session_token.as_deref(), Some("tok"));
    assert!(c.insecure && c.disable_multipart);
    assert_eq!(c.part_size, 10 * 1024 * 1024);
    assert_eq!(c.bucket_lookup, BucketLookup::VirtualHosted);
    assert_eq!(c.max_retries, Some(4));
    assert_eq!(
        c.http,
        HttpConfig {
            idle_conn_timeout: Duration::from_secs(90),
            response_header_timeout: Duration::from_millis(1500),
            tls_handshake_timeout: Duration::from_millis(500),
            expect_continue_timeout: Duration::from_secs(2),
            insecure_skip_verify: true,
            max_idle_conns: 7,
            max_idle_conns_per_host: 5,
            max_conns_per_host: 3,
        }
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = s3("type: S3\nconfig: {bucket: b, endpoint: h, access_key: AKIAX, secret_key: hunter2, session_token: tok123}\n");
    let dbg = format!("{c:?}");
    assert!(dbg.contains("AKIAX"), "{dbg}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("tok123"), "{dbg}");
}

/// The full S3 example from Thanos' documentation, every key at its default value.
const THANOS_DOC_EXAMPLE: &str = r#"
type: S3
config:
  bucket: "b"
  endpoint: "h:9000"
  region: ""
  disable_dualstack: false
  aws_sdk_auth: false
  access_key: ""
  insecure: false
  signature_version2: false
  secret_key: ""
  session_token: ""
  put_user_metadata: {}
  http_config:
    idle_conn_timeout: 1m30s
    response_header_timeout: 2m
    insecure_skip_verify: false
    tls_handshake_timeout: 10s
    expect_continue_timeout: 1s
    max_idle_conns: 100
    max_idle_conns_per_host: 100
    max_conns_per_host: 0
    tls_config:
      ca_file: ""
      cert_file: ""
      key_file: ""
      server_name: ""
      insecure_skip_verify: false
    disable_compression: false
  trace:
    enable: false
  list_objects_version: ""
  bucket_lookup_type: auto
  send_content_md5: true
  disable_multipart: false
  part_size: 67108864
  sse_config:
    type: ""
    kms_key_id: ""
    kms_encryption_context: {}
    encryption_key: ""
  sts_endpoint: ""
  max_retries: 0
prefix: ""
"#;

#[test]
fn accepts_thanos_documented_example_with_defaults() {
    let c = s3(THANOS_DOC_EXAMPLE);
    assert_eq!(c.part_size, 64 * 1024 * 1024);
    assert_eq!(c.http, HttpConfig::default());
    assert_eq!(c.max_retries, None);
}

#[test]
fn each_unsupported_field_is_an_error_naming_it() {
    let cases = [
        (
            "signature_version2: true",
            "config.signature_version2: not supported",
        ),
        (
            "list_objects_version: v1",
            "config.list_objects_version: not supported",
        ),
        (
            "list_objects_version: v3",
            "config.list_objects_version: unknown value",
        ),
        ("aws_sdk_auth: true", "config.aws_sdk_auth: not supported"),
        (
            "put_user_metadata: {X-Amz-Storage-Class: GLACIER}",
            "config.put_user_metadata: not supported",
        ),
        (
            "trace: {enable: true}",
            "config.trace.enable: not supported",
        ),
        (
            "sse_config: {type: SSE-S3}",
            "config.sse_config: not supported",
        ),
        (
            "sse_config: {kms_key_id: k}",
            "config.sse_config: not supported",
        ),
        (
            "sts_endpoint: https://sts",
            "config.sts_endpoint: not supported",
        ),
        (
            "http_config: {tls_config: {ca_file: /ca.pem}}",
            "config.http_config.tls_config: not supported",
        ),
        (
            "http_config: {disable_compression: true}",
            "config.http_config.disable_compression: not supported",
        ),
        (
            "bucket_lookup_type: dns",
            "config.bucket_lookup_type: unknown value",
        ),
    ];
    for (line, want) in cases {
        let yaml = format!("type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  {line}\n");
        let msg = err(&yaml);
        assert!(msg.contains(want), "{line}: {msg}");
        assert!(msg.contains("test.yaml"), "{msg}");
    }
}

#[test]
fn unknown_fields_are_errors_naming_field_and_line() {
    let msg = err("type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  bukket: x\n");
    assert!(msg.contains("unknown field `bukket`"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");

    let msg = err("type: S3\nconfig:\n  bucket: b\n  http_config:\n    idle_timeout: 1s\n");
    assert!(msg.contains("unknown field `idle_timeout`"), "{msg}");
    assert!(msg.contains("line 5"), "{msg}");

    let msg = err("type: S3\nconfig: {bucket: b}\nprefixx: a\n");
    assert!(msg.contains("unknown field `prefixx`"), "{msg}");

    let msg = err("type: FILESYSTEM\nconfig:\n  directory: /x\n  dir: /y\n");
    assert!(msg.contains("unknown field `dir`"), "{msg}");
}

#[test]
fn bad_duration_names_field_and_line() {
    let msg = err("type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  http_config:\n    idle_conn_timeout: 90\n");
    assert!(msg.contains("idle_conn_timeout"), "{msg}");
    assert!(msg.contains("missing unit"), "{msg}");
    assert!(msg.contains("line 6"), "{msg}");
}

#[test]
fn missing_or_inconsistent_required_fields_are_errors() {
    let cases = [
        (
            "type: S3\nconfig: {endpoint: h}\n",
            "config.bucket: missing",
        ),
        (
            "type: S3\nconfig: {bucket: b}\n",
            "config.endpoint: missing",
        ),
        (
            "type: S3\nconfig: {bucket: b, endpoint: 'http://h'}\n",
            "without a scheme",
        ),
        (
            "type: S3\nconfig: {bucket: b, endpoint: h, access_key: a}\n",
            "config.secret_key: missing",
        ),
        (
            "type: S3\nconfig: {bucket: b, endpoint: h, secret_key: s}\n",
            "config.access_key: missing",
        ),
        (
            "type: S3\nconfig: {bucket: b, endpoint: h, session_token: t}\n",
            "config.session_token",
        ),
        (
            "type: S3\nconfig: {bucket: b, endpoint: h, part_size: 1024}\n",
            "below S3's minimum",
        ),
        (
            "type: FILESYSTEM\nconfig: {}\n",
            "config.directory: missing",
        ),
        ("type: FILESYSTEM\n", "config.directory: missing"),
        (
            "type: GCS\nconfig: {bucket: b}\n",
            "Strata does not support",
        ),
        ("type: FTP\n", "unknown bucket type"),
        ("config: {bucket: b}\n", "type: missing"),
        ("type: [S3\n", "test.yaml"),
    ];
    for (yaml, want) in cases {
        let msg = err(yaml);
        assert!(msg.contains(want), "{yaml:?}: {msg}");
    }
}

#[test]
fn error_for_secret_never_contains_the_secret() {
    let msg = err("type: S3\nconfig: {bucket: b, endpoint: h, secret_key: hunter2, signature_version2: true}\n");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn flags_select_file_inline_or_data_dir_default() {
    let dir = tempfile::tempdir().unwrap();
    let def = BucketConfig::from_flags(None, None, dir.path()).unwrap();
    assert_eq!(def, BucketConfig::default_for_data_dir(dir.path()));
    assert_eq!(
        def.backend,
        BackendConfig::Filesystem(FilesystemConfig {
            directory: dir.path().join("bucket")
        })
    );

    let inline = BucketConfig::from_flags(None, Some(MINIMAL), dir.path()).unwrap();
    assert!(matches!(inline.backend, BackendConfig::S3(_)));

    let file = dir.path().join("objstore.yaml");
    std::fs::write(
        &file,
        "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  nope: 1\n",
    )
    .unwrap();
    let msg = BucketConfig::from_flags(Some(&file), None, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("objstore.yaml") && msg.contains("nope"),
        "{msg}"
    );

    let both = BucketConfig::from_flags(Some(&file), Some(MINIMAL), dir.path()).unwrap_err();
    assert_eq!(both.kind, ErrorKind::Config);

    let missing = BucketConfig::from_file(&dir.path().join("absent.yaml")).unwrap_err();
    assert!(missing.to_string().contains("cannot read"), "{missing}");
}
