//! Peer discovery for `--cluster.peers`: `host:port` taken as written, `dns+name:port` resolved
//! to every A/AAAA record with the system resolver configuration (hickory-resolver), re-resolved
//! whenever the join loop asks. A name resolving to nothing is logged and tried again later.

use anyhow::{bail, Context as _};
use hickory_resolver::TokioResolver;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

/// One `--cluster.peers` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSpec {
    /// A fixed address (`host:port`), dialled as written.
    Static(String),
    /// Every address a DNS name resolves to (`dns+name:port`).
    Dns {
        /// The name.
        name: String,
        /// The port to pair with each address.
        port: u16,
    },
}

impl std::str::FromStr for PeerSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("dns+") {
            let (name, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{s:?}: dns+ peers need a port (dns+name:port)"))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{s:?}: invalid port {port:?}"))?;
            if name.is_empty() {
                return Err(format!("{s:?}: empty DNS name"));
            }
            return Ok(PeerSpec::Dns {
                name: name.trim_matches(['[', ']']).to_string(),
                port,
            });
        }
        if s.contains('+') {
            return Err(format!(
                "{s:?}: unsupported discovery scheme (use host:port or dns+name:port)"
            ));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: peers are host:port or dns+name:port"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{s:?}: peers are host:port or dns+name:port"));
        }
        Ok(PeerSpec::Static(s.to_string()))
    }
}

/// Resolves peer specs to addresses.
pub struct Discovery {
    specs: Vec<PeerSpec>,
    resolver: Option<TokioResolver>,
}

impl Discovery {
    /// A resolver for `specs`, using the system's resolv.conf when a spec needs DNS.
    pub fn new(specs: Vec<PeerSpec>) -> anyhow::Result<Self> {
        let needs_dns = specs.iter().any(|s| matches!(s, PeerSpec::Dns { .. }));
        let resolver = if needs_dns {
            Some(
                TokioResolver::builder_tokio()
                    .context("reading the system DNS configuration")?
                    .build()
                    .context("building the DNS resolver")?,
            )
        } else {
            None
        };
        Ok(Discovery { specs, resolver })
    }

    /// Whether no peer was given at all (a lone node).
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Every peer address now. A DNS name that fails or resolves to nothing is logged and left
    /// out of this round (the caller retries), never an error.
    pub async fn resolve(&self) -> BTreeSet<PeerAddr> {
        let mut out = BTreeSet::new();
        for spec in &self.specs {
            match spec {
                PeerSpec::Static(a) => {
                    out.insert(PeerAddr::new(a.clone()));
                }
                PeerSpec::Dns { name, port } => {
                    let Some(resolver) = &self.resolver else {
                        continue;
                    };
                    match resolver.lookup_ip(name.as_str()).await {
                        Ok(ips) => {
                            let before = out.len();
                            for ip in ips.iter() {
                                out.insert(PeerAddr::new(SocketAddr::new(ip, *port).to_string()));
                            }
                            if out.len() == before {
                                tracing::warn!(
                                    name,
                                    "peer DNS name resolved to no address; retrying later"
                                );
                            }
                        }
                        Err(e) => {
                            tracing::warn!(name, error = %e, "cannot resolve peer DNS name; retrying later")
                        }
                    }
                }
            }
        }
        out
    }
}

/// A peer's gRPC address, ordered by socket address when it is one (so `10.0.0.9` sorts before
/// `10.0.0.10`), else by text. The order decides the agreed seed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerAddr {
    key: (Option<SocketAddr>, String),
}

impl PeerAddr {
    /// The address as written.
    pub fn new(address: String) -> Self {
        PeerAddr {
            key: (address.parse().ok(), address),
        }
    }

    /// The address to dial.
    pub fn as_str(&self) -> &str {
        &self.key.1
    }

    /// Whether `other` names the same endpoint.
    pub fn same_as(&self, other: &str) -> bool {
        match (self.key.0, other.parse::<SocketAddr>().ok()) {
            (Some(a), Some(b)) => a == b,
            _ => self.key.1 == other,
        }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key.1)
    }
}

/// The advertise address when `--cluster.advertise-address` is not given: the gRPC listen
/// address when it names a host; loopback for a lone bootstrapping node (no peer will ever
/// dial it, and a later joiner is told the address in `cluster status`); else the first
/// resolved peer address that is on this machine and has the listen port.
pub async fn derive_advertise_address(
    grpc_listen: &str,
    discovery: &Discovery,
    bootstrap: bool,
) -> anyhow::Result<String> {
    let listen: SocketAddr = grpc_listen
        .parse()
        .with_context(|| format!("--grpc-address {grpc_listen:?} is not host:port"))?;
    if !listen.ip().is_unspecified() {
        return Ok(listen.to_string());
    }
    if bootstrap && discovery.is_empty() {
        let loopback = if listen.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        return Ok(SocketAddr::new(loopback, listen.port()).to_string());
    }
    for peer in discovery.resolve().await {
        if let Ok(sa) = peer.as_str().parse::<SocketAddr>() {
            if sa.port() == listen.port() && is_local_ip(sa.ip()) {
                return Ok(sa.to_string());
            }
        }
    }
    bail!(
        "cannot tell which address peers should dial: --grpc-address {grpc_listen} listens on \
         every interface and no --cluster.peers address is on this machine with port {}; give \
         --cluster.advertise-address HOST:PORT",
        listen.port()
    )
}

/// Whether `ip` belongs to this machine (binding to it succeeds).
fn is_local_ip(ip: IpAddr) -> bool {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "dns+peers:10901".parse::<PeerSpec>(),
            Ok(PeerSpec::Dns {
                name: "peers".into(),
                port: 10901
            })
        );
        assert_eq!(
            "10.0.0.1:10901".parse::<PeerSpec>(),
            Ok(PeerSpec::Static("10.0.0.1:10901".into()))
        );
        for bad in [
            "dns+peers",
            "dns+:1",
            "peers",
            "dnssrv+_x._tcp.y",
            "h:notaport",
            ":1",
        ] {
            assert!(bad.parse::<PeerSpec>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn peer_addresses_order_numerically_not_textually() {
        let a = PeerAddr::new("10.0.0.9:10901".into());
        let b = PeerAddr::new("10.0.0.10:10901".into());
        assert!(a < b);
        assert!(a.same_as("10.0.0.9:10901"));
        assert!(!a.same_as("10.0.0.10:10901"));
    }

    #[tokio::test]
    async fn static_peers_resolve_to_themselves_and_loopback_is_local() {
        let d = Discovery::new(vec![PeerSpec::Static("127.0.0.1:4".into())]).expect("discovery");
        let got: Vec<String> = d.resolve().await.iter().map(|p| p.to_string()).collect();
        assert_eq!(got, vec!["127.0.0.1:4".to_string()]);
        assert_eq!(
            derive_advertise_address("0.0.0.0:4", &d, false)
                .await
                .expect("derived"),
            "127.0.0.1:4"
        );
        assert!(derive_advertise_address("0.0.0.0:5", &d, false)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_lone_bootstrapping_node_advertises_loopback_and_a_lone_joiner_is_refused() {
        let lone = Discovery::new(vec![]).expect("discovery");
        assert_eq!(
            derive_advertise_address("0.0.0.0:10901", &lone, true)
                .await
                .expect("derived"),
            "127.0.0.1:10901"
        );
        assert!(derive_advertise_address("0.0.0.0:10901", &lone, false)
            .await
            .is_err());
    }
}
