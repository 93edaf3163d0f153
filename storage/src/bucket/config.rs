//! Thanos' object-store YAML (`--objstore.config-file` / `--objstore.config`).
//!
//! ```yaml
//! type: S3            # or FILESYSTEM; case-insensitive like Thanos
//! config: { bucket: metrics, endpoint: "127.0.0.1:9000", insecure: true, ... }
//! prefix: ""
//! ```
//!
//! Unknown keys are errors naming the key and its line. Thanos keys Strata does not implement
//! are accepted only while they hold their do-nothing default (`signature_version2: false`,
//! `sse_config: {type: ""}`, `trace: {enable: false}`, ...), so the full example config from
//! Thanos' documentation parses; any other value is an error naming the key, never ignored.

use super::duration::parse_go_duration;
use super::{BucketError, ErrorKind};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// S3's smallest allowed multipart part (except the last one).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest allowed part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Thanos' part size when `part_size` is 0 or absent.
pub const DEFAULT_PART_SIZE: u64 = 128 * 1024 * 1024;

/// A parsed bucket configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketConfig {
    /// Which backend and its settings.
    pub backend: BackendConfig,
    /// Path prefix for every object, without leading or trailing `/` (empty for none).
    pub prefix: String,
}

/// The backend part of the configuration.
// Built once at startup; boxing S3Config would only make matching on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BackendConfig {
    /// An S3-compatible server.
    S3(S3Config),
    /// A local directory (Thanos: tests only; Strata: also the single-node default).
    Filesystem(FilesystemConfig),
}

/// `type: FILESYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemConfig {
    /// Root directory of the bucket; created if missing.
    pub directory: PathBuf,
}

/// How the bucket name goes into request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketLookup {
    /// `https://endpoint/bucket/key` (Thanos `path`, and what `auto` means for custom endpoints).
    Path,
    /// `https://bucket.endpoint/key` (Thanos `virtual-hosted`).
    VirtualHosted,
}

/// `type: S3`.
#[derive(Clone, PartialEq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// `host[:port]`, without scheme.
    pub endpoint: String,
    /// Signing region; `us-east-1` when empty.
    pub region: String,
    /// Static access key id; `None` uses the `AWS_*` environment and instance metadata.
    pub access_key: Option<String>,
    /// Static secret key (never printed).
    pub secret_key: Option<String>,
    /// Session token for temporary credentials (never printed).
    pub session_token: Option<String>,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Path-style or virtual-hosted-style requests.
    pub bucket_lookup: BucketLookup,
    /// Transport settings.
    pub http: HttpConfig,
    /// Multipart part size in bytes.
    pub part_size: u64,
    /// Never use multipart uploads.
    pub disable_multipart: bool,
    /// Thanos' `max_retries` when non-zero: overrides the retry decorator's attempts.
    pub max_retries: Option<u32>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &redact(&self.secret_key))
            .field("session_token", &redact(&self.session_token))
            .field("insecure", &self.insecure)
            .field("bucket_lookup", &self.bucket_lookup)
            .field("http", &self.http)
            .field("part_size", &self.part_size)
            .field("disable_multipart", &self.disable_multipart)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// `http_config`, with Thanos' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// How long an idle pooled connection is kept.
    pub idle_conn_timeout: Duration,
    /// How long to wait for a response (applied as a read timeout: no byte for this long
    /// fails); zero means no limit, as in Go.
    pub response_header_timeout: Duration,
    /// Connect (TCP + TLS) timeout; zero means no limit.
    pub tls_handshake_timeout: Duration,
    /// Accepted for compatibility; the client never sends `Expect: 100-continue`.
    pub expect_continue_timeout: Duration,
    /// Accept any TLS certificate.
    pub insecure_skip_verify: bool,
    /// Idle pool size; one bucket talks to one host, so this caps the per-host pool too.
    pub max_idle_conns: usize,
    /// Idle pool size per host.
    pub max_idle_conns_per_host: usize,
    /// Concurrent requests to the endpoint; 0 means unlimited.
    pub max_conns_per_host: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            idle_conn_timeout: Duration::from_secs(90),
            response_header_timeout: Duration::from_secs(120),
            tls_handshake_timeout: Duration::from_secs(10),
            expect_continue_timeout: Duration::from_secs(1),
            insecure_skip_verify: false,
            max_idle_conns: 100,
            max_idle_conns_per_host: 100,
            max_conns_per_host: 0,
        }
    }
}

impl BucketConfig {
    /// Parses YAML; `origin` (a file path or `--objstore.config`) names the source in errors.
    pub fn parse(yaml: &str, origin: &str) -> Result<Self, BucketError> {
        let err = |msg: String| config_error(origin, msg);
        let head: RawTop<serde_yaml_ng::Value> =
            serde_yaml_ng::from_str(yaml).map_err(|e| err(e.to_string()))?;
        let prefix = head.prefix.trim_matches('/').to_string();
        // A second pass with the backend's own struct keeps line numbers in its errors.
        let backend = match head.kind.to_ascii_uppercase().as_str() {
            "S3" => {
                let top: RawTop<RawS3> =
                    serde_yaml_ng::from_str(yaml).map_err(|e| err(e.to_string()))?;
                BackendConfig::S3(top.config.unwrap_or_default().validate().map_err(err)?)
            }
            "FILESYSTEM" => {
                let top: RawTop<RawFilesystem> =
                    serde_yaml_ng::from_str(yaml).map_err(|e| err(e.to_string()))?;
                let dir = top.config.unwrap_or_default().directory;
                if dir.is_empty() {
                    return Err(err("config.directory: missing: FILESYSTEM needs a directory".into()));
                }
                BackendConfig::Filesystem(FilesystemConfig {
                    directory: PathBuf::from(dir),
                })
            }
            "GCS" | "AZURE" | "SWIFT" | "COS" | "ALIYUNOSS" | "BOS" | "OCI" | "OBS" => {
                return Err(err(format!(
                    "type: {} is a Thanos bucket type Strata does not support (supported: S3, FILESYSTEM)",
                    head.kind
                )))
            }
            "" => return Err(err("type: missing (S3 or FILESYSTEM)".into())),
            _ => {
                return Err(err(format!(
                    "type: unknown bucket type {:?} (supported: S3, FILESYSTEM)",
                    head.kind
                )))
            }
        };
        Ok(BucketConfig { backend, prefix })
    }

    /// Reads and parses a YAML file (`--objstore.config-file`).
    pub fn from_file(path: &Path) -> Result<Self, BucketError> {
        let origin = path.display().to_string();
        let yaml = std::fs::read_to_string(path)
            .map_err(|e| config_error(&origin, format!("cannot read the config file: {e}")))?;
        Self::parse(&yaml, &origin)
    }

    /// The embedded default: a FILESYSTEM bucket at `<data_dir>/bucket`.
    pub fn default_for_data_dir(data_dir: &Path) -> Self {
        BucketConfig {
            backend: BackendConfig::Filesystem(FilesystemConfig {
                directory: data_dir.join("bucket"),
            }),
            prefix: String::new(),
        }
    }

    /// What the flags select: the file, else the inline YAML, else the data-dir default.
    /// Giving both is an error, as in Thanos.
    pub fn from_flags(
        config_file: Option<&Path>,
        inline: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, BucketError> {
        match (config_file, inline) {
            (Some(_), Some(_)) => Err(config_error(
                "flags",
                "both --objstore.config-file and --objstore.config are set; use one".into(),
            )),
            (Some(path), None) => Self::from_file(path),
            (None, Some(yaml)) => Self::parse(yaml, "--objstore.config"),
            (None, None) => Ok(Self::default_for_data_dir(data_dir)),
        }
    }
}

fn config_error(origin: &str, message: String) -> BucketError {
    BucketError::new(ErrorKind::Config, "config", origin, message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop<C> {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default = "none")]
    config: Option<C>,
    #[serde(default)]
    prefix: String,
}

fn none<C>() -> Option<C> {
    None
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    #[serde(default)]
    directory: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawS3 {
    bucket: String,
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
    session_token: String,
    insecure: bool,
    signature_version2: bool,
    http_config: RawHttp,
    part_size: u64,
    list_objects_version: String,
    bucket_lookup_type: String,
    disable_dualstack: bool,
    aws_sdk_auth: bool,
    put_user_metadata: BTreeMap<String, String>,
    trace: RawTrace,
    send_content_md5: Option<bool>,
    disable_multipart: bool,
    sse_config: RawSse,
    sts_endpoint: String,
    max_retries: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTrace {
    enable: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawSse {
    #[serde(rename = "type")]
    kind: String,
    kms_key_id: String,
    kms_encryption_context: BTreeMap<String, String>,
    encryption_key: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    #[serde(deserialize_with = "idle_conn_timeout")]
    idle_conn_timeout: Option<Duration>,
    #[serde(deserialize_with = "response_header_timeout")]
    response_header_timeout: Option<Duration>,
    #[serde(deserialize_with = "tls_handshake_timeout")]
    tls_handshake_timeout: Option<Duration>,
    #[serde(deserialize_with = "expect_continue_timeout")]
    expect_continue_timeout: Option<Duration>,
    insecure_skip_verify: bool,
    max_idle_conns: Option<usize>,
    max_idle_conns_per_host: Option<usize>,
    max_conns_per_host: usize,
    tls_config: RawTls,
    disable_compression: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTls {
    ca_file: String,
    cert_file: String,
    key_file: String,
    server_name: String,
    insecure_skip_verify: bool,
}

/// Deserialises a Go duration string; `field` goes into the message because serde's path
/// stops at the enclosing map for errors raised by a field's own deserializer.
fn go_duration<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_go_duration(&s)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{field}: {e}")))
}

macro_rules! duration_fields {
    ($($name:ident),*) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            go_duration(d, stringify!($name))
        }
    )*};
}
duration_fields!(
    idle_conn_timeout,
    response_header_timeout,
    tls_handshake_timeout,
    expect_continue_timeout
);

fn unsupported(field: &str, why: &str) -> String {
    format!("config.{field}: not supported by Strata: {why}")
}

impl RawS3 {
    fn validate(self) -> Result<S3Config, String> {
        self.reject_unsupported()?;
        if self.bucket.is_empty() {
            return Err("config.bucket: missing: the S3 bucket name is required".into());
        }
        if self.endpoint.is_empty() {
            return Err("config.endpoint: missing: the S3 endpoint (host:port) is required".into());
        }
        if self.endpoint.contains("://") {
            return Err(format!(
                "config.endpoint: {:?} must be host[:port] without a scheme; use `insecure: true` for http",
                self.endpoint
            ));
        }
        let opt = |s: String| (!s.is_empty()).then_some(s);
        let (access_key, secret_key) = (opt(self.access_key), opt(self.secret_key));
        match (&access_key, &secret_key) {
            (Some(_), None) => {
                return Err("config.secret_key: missing while access_key is set".into())
            }
            (None, Some(_)) => {
                return Err("config.access_key: missing while secret_key is set".into())
            }
            _ => {}
        }
        let session_token = opt(self.session_token);
        if session_token.is_some() && access_key.is_none() {
            return Err(
                "config.session_token: set without access_key and secret_key to go with it".into(),
            );
        }
        let bucket_lookup = match self.bucket_lookup_type.as_str() {
            "" | "auto" | "path" => BucketLookup::Path,
            "virtual-hosted" => BucketLookup::VirtualHosted,
            other => {
                return Err(format!(
                "config.bucket_lookup_type: unknown value {other:?} (auto, virtual-hosted or path)"
            ))
            }
        };
        let part_size = match self.part_size {
            0 => DEFAULT_PART_SIZE,
            p if p < MIN_PART_SIZE => {
                return Err(format!(
                    "config.part_size: {p} is below S3's minimum part size of {MIN_PART_SIZE} bytes (5 MiB)"
                ))
            }
            p if p > MAX_PART_SIZE => {
                return Err(format!(
                    "config.part_size: {p} is above S3's maximum part size of {MAX_PART_SIZE} bytes (5 GiB)"
                ))
            }
            p => p,
        };
        Ok(S3Config {
            bucket: self.bucket,
            endpoint: self.endpoint,
            region: opt(self.region).unwrap_or_else(|| "us-east-1".into()),
            access_key,
            secret_key,
            session_token,
            insecure: self.insecure,
            bucket_lookup,
            http: self.http_config.validate()?,
            part_size,
            disable_multipart: self.disable_multipart,
            max_retries: (self.max_retries > 0).then_some(self.max_retries),
        })
    }

    fn reject_unsupported(&self) -> Result<(), String> {
        if self.signature_version2 {
            return Err(unsupported(
                "signature_version2",
                "only AWS Signature Version 4 is implemented; remove the key or set it to false",
            ));
        }
        match self.list_objects_version.as_str() {
            "" | "v2" => {}
            "v1" => {
                return Err(unsupported(
                    "list_objects_version",
                    "v1 listing is not implemented; only ListObjectsV2 (\"\" or v2)",
                ))
            }
            other => {
                return Err(format!(
                    "config.list_objects_version: unknown value {other:?} (\"\" or v2)"
                ))
            }
        }
        if self.aws_sdk_auth {
            return Err(unsupported(
                "aws_sdk_auth",
                "the AWS SDK credential chain is not available; give access_key/secret_key or use AWS_* environment variables",
            ));
        }
        if !self.put_user_metadata.is_empty() {
            return Err(unsupported(
                "put_user_metadata",
                "custom object metadata is not sent",
            ));
        }
        if self.trace.enable {
            return Err(unsupported(
                "trace.enable",
                "S3 request tracing is not implemented",
            ));
        }
        if !self.sse_config.kind.is_empty()
            || !self.sse_config.kms_key_id.is_empty()
            || !self.sse_config.kms_encryption_context.is_empty()
            || !self.sse_config.encryption_key.is_empty()
        {
            return Err(unsupported(
                "sse_config",
                "server-side encryption settings are not implemented; configure default encryption on the bucket instead",
            ));
        }
        if !self.sts_endpoint.is_empty() {
            return Err(unsupported(
                "sts_endpoint",
                "STS credentials are not implemented",
            ));
        }
        // `disable_dualstack` and `send_content_md5` need no action: Strata never uses dual-stack
        // endpoints, and SigV4 already signs a SHA-256 of each payload.
        let _ = (self.disable_dualstack, self.send_content_md5);
        Ok(())
    }
}

impl RawHttp {
    fn validate(self) -> Result<HttpConfig, String> {
        let tls = &self.tls_config;
        if !tls.ca_file.is_empty()
            || !tls.cert_file.is_empty()
            || !tls.key_file.is_empty()
            || !tls.server_name.is_empty()
        {
            return Err(unsupported(
                "http_config.tls_config",
                "custom CA, client certificates and server_name are not implemented",
            ));
        }
        if self.disable_compression {
            return Err(unsupported(
                "http_config.disable_compression",
                "the client never asks for compressed responses, so there is nothing to disable; remove the key",
            ));
        }
        let d = HttpConfig::default();
        let pick = |v: Option<Duration>, default| v.unwrap_or(default);
        let http = HttpConfig {
            idle_conn_timeout: pick(self.idle_conn_timeout, d.idle_conn_timeout),
            response_header_timeout: pick(self.response_header_timeout, d.response_header_timeout),
            tls_handshake_timeout: pick(self.tls_handshake_timeout, d.tls_handshake_timeout),
            expect_continue_timeout: pick(self.expect_continue_timeout, d.expect_continue_timeout),
            insecure_skip_verify: self.insecure_skip_verify || tls.insecure_skip_verify,
            max_idle_conns: self.max_idle_conns.unwrap_or(d.max_idle_conns),
            max_idle_conns_per_host: self
                .max_idle_conns_per_host
                .unwrap_or(d.max_idle_conns_per_host),
            max_conns_per_host: self.max_conns_per_host,
        };
        Ok(http)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
