//! Where alerts go: `--alertmanagers.url` values as Thanos reads them
//! (`[dns+|dnssrv+|dnssrvnoa+]scheme://host[:port][/prefix]`, port 9093 by default for DNS
//! names) and `--alertmanagers.config-file` (Thanos' format: `alertmanagers:` entries with
//! `static_configs`, `file_sd_configs`, `scheme`, `path_prefix`, `timeout`, `api_version`).
//! DNS names and SD files go through the querier's discovery (`crate::query::remote::discover`):
//! names re-resolved every `--alertmanagers.sd-dns-interval`, files re-read when changed.
//!
//! Unfinished: `http_config` (TLS, basic auth, bearer tokens) is refused, not applied.

use crate::query::remote::discover::{DiscoveryConfig, StoreDiscovery, StoreSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prometheus' default Alertmanager port, used for DNS names without one.
const DEFAULT_PORT: u16 = 9093;

/// A bad `--alertmanagers.url` or `--alertmanagers.config-file`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmConfigError {
    /// A URL cannot be read.
    #[error("--alertmanagers.url {url:?}: {reason}")]
    Url {
        /// The value as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The config file cannot be read or is invalid.
    #[error("--alertmanagers.config-file {file}: {reason}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// One configured Alertmanager set: fixed base URLs or discovered addresses.
struct Target {
    scheme: String,
    prefix: String,
    timeout: Option<Duration>,
    discovery: StoreDiscovery,
}

/// An Alertmanager to send to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmUrl {
    /// Base URL (`scheme://host:port[/prefix]`).
    pub base: String,
    /// Its own request timeout, when its config entry gives one.
    pub timeout: Option<Duration>,
}

/// Every configured Alertmanager.
#[derive(Default)]
pub struct Alertmanagers {
    targets: Vec<Target>,
}

impl std::fmt::Debug for Alertmanagers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanagers")
            .field("targets", &self.targets.len())
            .finish()
    }
}

fn discovery(
    specs: Vec<StoreSpec>,
    files: Vec<PathBuf>,
    dns: Duration,
) -> Result<StoreDiscovery, String> {
    StoreDiscovery::new(DiscoveryConfig {
        specs,
        files,
        dns_interval: dns,
        nameserver: None,
    })
    .map_err(|e| e.to_string())
}

/// Parses one `--alertmanagers.url`: (scheme, host spec, path prefix).
fn parse_url(raw: &str) -> Result<(String, StoreSpec, String), AmConfigError> {
    let bad = |reason: &str| AmConfigError::Url {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let (sd, rest) = ["dnssrvnoa+", "dnssrv+", "dns+"]
        .iter()
        .find_map(|p| raw.strip_prefix(p).map(|r| (*p, r)))
        .unwrap_or(("", raw));
    let (scheme, rest) = rest
        .split_once("://")
        .ok_or_else(|| bad("the scheme must be given (e.g. http://)"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    let (host, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let spec = match sd {
        "" => {
            // A static URL keeps its port as written (or the scheme's default).
            StoreSpec::Static(host.to_string())
        }
        "dns+" if !host.contains(':') => format!("dns+{host}:{DEFAULT_PORT}")
            .parse()
            .map_err(|e| bad(&format!("{e}")))?,
        _ => format!("{sd}{host}")
            .parse()
            .map_err(|e| bad(&format!("{e}")))?,
    };
    Ok((scheme.to_string(), spec, prefix.to_string()))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    alertmanagers: Vec<AmEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AmEntry {
    #[serde(default)]
    http_config: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    static_configs: Vec<String>,
    #[serde(default)]
    file_sd_configs: Vec<FileSd>,
    #[serde(default = "default_scheme")]
    scheme: String,
    #[serde(default)]
    path_prefix: String,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default = "default_api")]
    api_version: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSd {
    files: Vec<PathBuf>,
    #[serde(default)]
    #[allow(dead_code)]
    refresh_interval: Option<String>,
}

fn default_scheme() -> String {
    "http".into()
}

fn default_api() -> String {
    "v2".into()
}

impl Alertmanagers {
    /// From `--alertmanagers.url` values.
    pub fn from_urls(urls: &[String], dns: Duration) -> Result<Self, AmConfigError> {
        let mut targets = Vec::new();
        for u in urls {
            let (scheme, spec, prefix) = parse_url(u)?;
            let discovery =
                discovery(vec![spec], Vec::new(), dns).map_err(|reason| AmConfigError::Url {
                    url: u.clone(),
                    reason,
                })?;
            targets.push(Target {
                scheme,
                prefix,
                timeout: None,
                discovery,
            });
        }
        Ok(Alertmanagers { targets })
    }

    /// From an `--alertmanagers.config-file`'s text.
    pub fn from_config(file: &Path, text: &str, dns: Duration) -> Result<Self, AmConfigError> {
        let bad = |reason: String| AmConfigError::File {
            file: file.display().to_string(),
            reason,
        };
        let cfg: ConfigFile = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut targets = Vec::new();
        for (i, e) in cfg.alertmanagers.into_iter().enumerate() {
            let at = |r: &str| bad(format!("alertmanagers[{i}]: {r}"));
            if e.api_version != "v2" {
                return Err(at(&format!(
                    "api_version {:?} is not supported (only v2)",
                    e.api_version
                )));
            }
            if e.http_config.is_some() {
                return Err(at("http_config is not supported yet"));
            }
            if e.scheme != "http" && e.scheme != "https" {
                return Err(at(&format!("scheme {:?}: want http or https", e.scheme)));
            }
            let timeout = match &e.timeout {
                None => None,
                Some(t) => Some(
                    crate::http::params::parse_prometheus_duration(t)
                        .and_then(|ms| u64::try_from(ms).ok())
                        .map(Duration::from_millis)
                        .ok_or_else(|| at(&format!("invalid timeout {t:?}")))?,
                ),
            };
            let mut specs = Vec::new();
            for s in &e.static_configs {
                let spec = if s.starts_with("dns+") && !s.contains(':') {
                    format!("{s}:{DEFAULT_PORT}")
                } else {
                    s.clone()
                };
                specs.push(
                    spec.parse::<StoreSpec>()
                        .map_err(|err| at(&err.to_string()))?,
                );
            }
            let files = e
                .file_sd_configs
                .into_iter()
                .flat_map(|f| f.files)
                .collect();
            let discovery = discovery(specs, files, dns).map_err(|r| at(&r))?;
            targets.push(Target {
                scheme: e.scheme,
                prefix: e.path_prefix.trim_end_matches('/').to_string(),
                timeout,
                discovery,
            });
        }
        Ok(Alertmanagers { targets })
    }

    /// Reads and parses an `--alertmanagers.config-file`.
    pub fn from_config_file(file: &Path, dns: Duration) -> Result<Self, AmConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| AmConfigError::File {
            file: file.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_config(file, &text, dns)
    }

    /// Adds `other`'s targets.
    pub fn extend(&mut self, other: Alertmanagers) {
        self.targets.extend(other.targets);
    }

    /// Whether no Alertmanager is configured at all.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Every Alertmanager now.
    pub async fn urls(&self) -> Vec<AmUrl> {
        let mut out = Vec::new();
        for t in &self.targets {
            for a in t.discovery.addresses().await {
                out.push(AmUrl {
                    base: format!("{}://{a}{}", t.scheme, t.prefix),
                    timeout: t.timeout,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(urls: Vec<AmUrl>) -> Vec<String> {
        urls.into_iter().map(|u| u.base).collect()
    }

    #[tokio::test]
    async fn urls_keep_scheme_port_and_prefix() {
        let am = Alertmanagers::from_urls(
            &[
                "http://127.0.0.1:9093/am/".into(),
                "https://am.example".into(),
                "dns+http://localhost/x".into(),
            ],
            Duration::from_secs(30),
        )
        .expect("valid");
        let got = bases(am.urls().await);
        assert_eq!(got[0], "http://127.0.0.1:9093/am");
        assert_eq!(got[1], "https://am.example");
        assert!(
            got[2..].iter().all(|u| u.ends_with(":9093/x")) && got.len() > 2,
            "localhost resolves with the default port: {got:?}"
        );
        let e = Alertmanagers::from_urls(&["127.0.0.1:9093".into()], Duration::from_secs(1))
            .expect_err("no scheme");
        assert!(e.to_string().contains("scheme must be given"), "{e}");
    }

    #[tokio::test]
    async fn config_files_read_thanos_format_and_refuse_what_is_not_supported() {
        let d = tempfile::tempdir().expect("tempdir");
        let sd = d.path().join("am.yml");
        std::fs::write(&sd, "- targets: ['127.0.0.1:9095']\n").expect("write");
        let text = format!(
            "alertmanagers:\n- static_configs: ['127.0.0.1:9094']\n  scheme: http\n  path_prefix: /p/\n  timeout: 5s\n  api_version: v2\n- file_sd_configs:\n  - files: ['{}']\n",
            sd.display()
        );
        let f = d.path().join("cfg.yml");
        let am = Alertmanagers::from_config(&f, &text, Duration::from_secs(30)).expect("valid");
        let urls = am.urls().await;
        assert_eq!(
            urls,
            vec![
                AmUrl {
                    base: "http://127.0.0.1:9094/p".into(),
                    timeout: Some(Duration::from_secs(5))
                },
                AmUrl {
                    base: "http://127.0.0.1:9095".into(),
                    timeout: None
                },
            ]
        );
        let v1 = "alertmanagers:\n- static_configs: ['a:1']\n  api_version: v1\n";
        let e = Alertmanagers::from_config(&f, v1, Duration::from_secs(1)).expect_err("v1");
        assert!(
            e.to_string()
                .contains("alertmanagers[0]: api_version \"v1\""),
            "{e}"
        );
        let typo = "alertmanagers:\n- static_config: ['a:1']\n";
        let e = Alertmanagers::from_config(&f, typo, Duration::from_secs(1)).expect_err("typo");
        assert!(e.to_string().contains("static_config"), "{e}");
    }
}
