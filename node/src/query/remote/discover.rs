//! Where the querier's StoreAPI endpoints are: `--endpoint`/`--store` specs as Thanos reads
//! them (`host:port`, `dns+name:port`, `dnssrv+_svc._tcp.name`, `dnssrvnoa+_svc._tcp.name`),
//! re-resolved every `--store.sd-dns-interval`, and `--store.sd-files` in Prometheus' file-SD
//! format, re-read whenever a file changes.
//!
//! A name that fails to resolve keeps its previous addresses (Thanos' provider does the same),
//! so one DNS hiccup does not drop every store behind the name.

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A malformed `--endpoint`/`--store` value or `--store.sd-files` file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The spec cannot be read.
    #[error("{spec:?}: {reason}")]
    Spec {
        /// The value as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
}

fn bad(spec: &str, reason: impl Into<String>) -> SpecError {
    SpecError::Spec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// One endpoint spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreSpec {
    /// `host:port`, dialled as written.
    Static(String),
    /// `dns+name:port`: every A/AAAA address of `name`.
    Dns {
        /// The name to look up.
        name: String,
        /// The port paired with each address.
        port: u16,
    },
    /// `dnssrv+name[:port]`: SRV records of `name`, each target resolved to its A/AAAA
    /// addresses (`no_a`: `dnssrvnoa+`, the target name is dialled as is). A port given in the
    /// spec overrides the records' ports, as in Thanos.
    Srv {
        /// The SRV name (`_grpc._tcp.stores.example`).
        name: String,
        /// Port override.
        port: Option<u16>,
        /// Whether targets are used without an A lookup.
        no_a: bool,
    },
}

fn split_port(spec: &str, rest: &str) -> Result<(String, Option<u16>), SpecError> {
    // An IPv6 literal without brackets has colons but no port.
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(bad(spec, "empty host name"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| bad(spec, format!("invalid port {p:?}")))?,
        ),
    };
    Ok((host.to_string(), port))
}

impl std::str::FromStr for StoreSpec {
    type Err = SpecError;

    fn from_str(raw: &str) -> Result<Self, SpecError> {
        let s = raw.trim();
        if let Some(rest) = s.strip_prefix("dnssrvnoa+") {
            let (name, port) = split_port(raw, rest)?;
            return Ok(StoreSpec::Srv {
                name,
                port,
                no_a: true,
            });
        }
        if let Some(rest) = s.strip_prefix("dnssrv+") {
            let (name, port) = split_port(raw, rest)?;
            return Ok(StoreSpec::Srv {
                name,
                port,
                no_a: false,
            });
        }
        if let Some(rest) = s.strip_prefix("dns+") {
            let (name, port) = split_port(raw, rest)?;
            let port = port.ok_or_else(|| {
                bad(
                    raw,
                    "missing port in address given for dns+ service discovery",
                )
            })?;
            return Ok(StoreSpec::Dns { name, port });
        }
        if let Some((scheme, _)) = s.split_once('+') {
            return Err(bad(
                raw,
                format!(
                    "unknown discovery scheme {scheme:?} (use host:port, dns+, dnssrv+ or dnssrvnoa+)"
                ),
            ));
        }
        match split_port(raw, s)? {
            (_, Some(_)) => Ok(StoreSpec::Static(s.to_string())),
            (_, None) => Err(bad(raw, "missing port (endpoints are host:port)")),
        }
    }
}

/// Discovery settings: specs, SD files and the DNS re-resolution interval.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryConfig {
    /// `--endpoint` and `--store` values, parsed.
    pub specs: Vec<StoreSpec>,
    /// `--store.sd-files` patterns (a `*` allowed in the last path segment).
    pub files: Vec<PathBuf>,
    /// `--store.sd-dns-interval`.
    pub dns_interval: Duration,
    /// A DNS server to ask instead of the system's (tests use a server on loopback).
    pub nameserver: Option<SocketAddr>,
}

/// A file-SD file as last read.
struct FileState {
    stamp: (Option<SystemTime>, u64),
    targets: Vec<String>,
}

#[derive(Default)]
struct State {
    dns_at: Option<Instant>,
    dns: HashMap<StoreSpec, Vec<String>>,
    files: HashMap<PathBuf, FileState>,
}

/// Resolves the configured specs and files to store addresses.
pub struct StoreDiscovery {
    config: DiscoveryConfig,
    resolver: Option<TokioResolver>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for StoreDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDiscovery")
            .field("specs", &self.config.specs)
            .field("files", &self.config.files)
            .finish()
    }
}

/// The DNS resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("setting up the DNS resolver: {0}")]
pub struct ResolverError(String);

impl StoreDiscovery {
    /// Discovery over `config`; the resolver reads the system configuration only when a spec
    /// needs DNS.
    pub fn new(config: DiscoveryConfig) -> Result<Self, ResolverError> {
        let needs_dns = config
            .specs
            .iter()
            .any(|s| !matches!(s, StoreSpec::Static(_)));
        let resolver = match (needs_dns, config.nameserver) {
            (false, _) => None,
            (true, Some(ns)) => {
                let mut server = NameServerConfig::udp_and_tcp(ns.ip());
                for c in &mut server.connections {
                    c.port = ns.port();
                }
                let mut builder = TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                );
                // A given server is a local one: fail fast rather than retry for seconds.
                builder.options_mut().timeout = Duration::from_secs(1);
                builder.options_mut().attempts = 1;
                Some(builder.build().map_err(|e| ResolverError(e.to_string()))?)
            }
            (true, None) => Some(
                TokioResolver::builder_tokio()
                    .map_err(|e| ResolverError(e.to_string()))?
                    .build()
                    .map_err(|e| ResolverError(e.to_string()))?,
            ),
        };
        Ok(StoreDiscovery {
            config,
            resolver,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    /// Every store address now: DNS answers younger than the interval are reused; SD files are
    /// re-read when their modification time or size changed.
    pub async fn addresses(&self) -> Vec<String> {
        let mut state = self.state.lock().await;
        let mut out = BTreeSet::new();
        let stale = state
            .dns_at
            .is_none_or(|at| at.elapsed() >= self.config.dns_interval);
        if stale {
            for spec in &self.config.specs {
                if let Some(addrs) = self.resolve(spec).await {
                    state.dns.insert(spec.clone(), addrs);
                }
            }
            state.dns_at = Some(Instant::now());
        }
        for spec in &self.config.specs {
            match spec {
                StoreSpec::Static(a) => {
                    out.insert(a.clone());
                }
                _ => out.extend(state.dns.get(spec).into_iter().flatten().cloned()),
            }
        }
        for path in self.sd_files() {
            out.extend(read_sd_file(&mut state.files, &path));
        }
        out.into_iter().collect()
    }

    /// Files matching `--store.sd-files` now.
    fn sd_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pattern in &self.config.files {
            match expand_pattern(pattern) {
                Ok(paths) => out.extend(paths),
                Err(e) => {
                    tracing::warn!(pattern = %pattern.display(), error = %e, "cannot list --store.sd-files")
                }
            }
        }
        out
    }

    /// Every A/AAAA address of `name` from DNS; `None` when the lookup failed.
    async fn lookup(&self, resolver: &TokioResolver, name: &str, port: u16) -> Option<Vec<String>> {
        match resolver.lookup_ip(name).await {
            Ok(ips) => Some(
                ips.iter()
                    .map(|ip| SocketAddr::new(ip, port).to_string())
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(name, error = %e, "cannot resolve dns+ endpoint; keeping its previous addresses");
                None
            }
        }
    }

    /// The addresses behind one DNS spec; `None` when the lookup failed (keep the old ones).
    async fn resolve(&self, spec: &StoreSpec) -> Option<Vec<String>> {
        let resolver = self.resolver.as_ref()?;
        match spec {
            StoreSpec::Static(a) => Some(vec![a.clone()]),
            StoreSpec::Dns { name, port } if self.config.nameserver.is_none() => {
                let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
                let listed = hosts_file_addrs(&hosts, name);
                if listed.is_empty() {
                    self.lookup(resolver, name, *port).await
                } else {
                    Some(
                        listed
                            .iter()
                            .map(|ip| SocketAddr::new(*ip, *port).to_string())
                            .collect(),
                    )
                }
            }
            StoreSpec::Dns { name, port } => self.lookup(resolver, name, *port).await,
            StoreSpec::Srv { name, port, no_a } => {
                let records = match resolver.srv_lookup(name.as_str()).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(name, error = %e, "cannot resolve SRV endpoint; keeping its previous addresses");
                        return None;
                    }
                };
                let mut out = Vec::new();
                for r in records.answers() {
                    let RData::SRV(srv) = &r.data else { continue };
                    let p = port.unwrap_or(srv.port);
                    let target = srv.target.to_utf8();
                    let target = target.trim_end_matches('.');
                    if *no_a {
                        out.push(format!("{target}:{p}"));
                        continue;
                    }
                    match resolver.lookup_ip(target).await {
                        Ok(ips) => {
                            out.extend(ips.iter().map(|ip| SocketAddr::new(ip, p).to_string()))
                        }
                        Err(e) => {
                            tracing::warn!(name, target, error = %e, "cannot resolve an SRV target; keeping the previous addresses");
                            return None;
                        }
                    }
                }
                Some(out)
            }
        }
    }
}

/// Files matching `pattern`: a plain path, or one `*` in the last segment (Prometheus' file SD
/// rule). A plain path that does not exist yet matches nothing.
fn expand_pattern(pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return Ok(if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    };
    let dir = match pattern.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// One target group of Prometheus' file-SD format (labels are accepted and unused).
#[derive(Debug, serde::Deserialize)]
struct TargetGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    labels: std::collections::BTreeMap<String, String>,
}

/// Parses a file-SD file (JSON for `.json`, else YAML) into validated `host:port` targets.
pub fn parse_sd_file(path: &Path, text: &str) -> Result<Vec<String>, SpecError> {
    let shown = path.display().to_string();
    let groups: Vec<TargetGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| bad(&shown, e.to_string()))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| bad(&shown, e.to_string()))?
    };
    let mut out = Vec::new();
    for t in groups.into_iter().flat_map(|g| g.targets) {
        match t.parse::<StoreSpec>() {
            Ok(StoreSpec::Static(a)) => out.push(a),
            Ok(_) => {
                return Err(bad(
                    &shown,
                    format!("target {t:?}: file SD targets are host:port"),
                ))
            }
            Err(e) => return Err(bad(&shown, e.to_string())),
        }
    }
    Ok(out)
}

/// The targets of `path`, re-read only when its modification time or size changed; a file
/// that fails to read or parse keeps its previous targets (as Prometheus' file SD does).
fn read_sd_file(cache: &mut HashMap<PathBuf, FileState>, path: &Path) -> Vec<String> {
    let stamp = match std::fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read --store.sd-files file");
            return cache
                .get(path)
                .map(|f| f.targets.clone())
                .unwrap_or_default();
        }
    };
    if let Some(f) = cache.get(path) {
        if f.stamp == stamp {
            return f.targets.clone();
        }
    }
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| bad(&path.display().to_string(), e.to_string()))
        .and_then(|text| parse_sd_file(path, &text));
    match parsed {
        Ok(targets) => {
            tracing::info!(file = %path.display(), targets = targets.len(), "read --store.sd-files file");
            cache.insert(
                path.to_path_buf(),
                FileState {
                    stamp,
                    targets: targets.clone(),
                },
            );
            targets
        }
        Err(e) => {
            tracing::warn!(error = %e, "invalid --store.sd-files file; keeping its previous targets");
            cache
                .get(path)
                .map(|f| f.targets.clone())
                .unwrap_or_default()
        }
    }
}

/// The addresses a hosts file gives `name`. Go's resolver (so Thanos' `dns+`) answers from
/// /etc/hosts alone when it lists the name; hickory would add RFC 6761's `::1` to `localhost`
/// even when the file maps it to 127.0.0.1 only, and every query would warn about `[::1]`.
pub(crate) fn hosts_file_addrs(hosts: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    hosts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('#').next()?.split_whitespace();
            let ip: IpAddr = fields.next()?.parse().ok()?;
            fields.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
        })
        .collect()
}

#[cfg(test)]
#[path = "discover_tests.rs"]
mod tests;
