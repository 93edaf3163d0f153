//! One test's private network: a bridge namespace (bridge `br0` and dnsmasq), a namespace per
//! node with a veth into the bridge, and a veth from the root namespace so the test process
//! reaches every node.
//!
//! Layout in the leased 10.x.y.0/24: bridge and DNS .1, node N at .(10+N), test process .254.
//! Inside a node's namespace `/etc/resolv.conf` names the test's dnsmasq and `/etc/hosts` is a
//! bare localhost file (both bind-mounted by `ip netns exec` from `/etc/netns/<ns>/`), so
//! `peers` resolves to the published nodes and nothing of the host leaks in.

mod dnsmasq;
pub mod lookup;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::cmd;
use crate::error::{Error, Result};
use crate::naming::{Subnet, TestId};
use crate::process::Process;

/// A node's number: 1-based, stable for the test, and the N in `node-N.peers`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// One node's place in the network.
#[derive(Debug, Clone)]
pub struct Host {
    /// The node.
    pub id: NodeId,
    /// Its network namespace.
    pub netns: String,
    /// Its address on the bridge.
    pub addr: Ipv4Addr,
    /// Its own DNS name, `node-N.<domain>`.
    pub dns_name: String,
}

/// How long to wait for dnsmasq to serve a change (it re-reads its hosts dir in about 1 s).
const DNS_DEADLINE: Duration = Duration::from_secs(10);

/// A test's network. Dropping it removes everything it created.
#[derive(Debug)]
pub struct Net {
    base: String,
    subnet: Subnet,
    bridge_ns: String,
    root_veth: String,
    domain: String,
    dir: PathBuf,
    hosts: BTreeMap<NodeId, Host>,
    published: BTreeMap<NodeId, bool>,
    dns: Option<Process>,
    next_id: u32,
}

impl Net {
    /// Builds the network with `nodes` hosts, all published under `domain` (e.g. `peers`).
    /// `dir` (the test's directory) receives dnsmasq's configuration and log.
    pub fn create(dir: &Path, nodes: u32, domain: &str) -> Result<Net> {
        crate::env::require()?;
        if let Err(e) = crate::cleanup::remove_leftovers() {
            tracing::warn!(error = %e, "could not remove leftovers of earlier runs");
        }
        let id = TestId::next();
        let base = id.base();
        crate::cleanup::remove_stale_names(&base)?;
        let subnet = Subnet::lease(&id)?;
        // From here on Drop undoes whatever was made, also when a later step fails.
        let mut net = Net {
            bridge_ns: format!("{base}-br"),
            root_veth: base.clone(),
            base,
            subnet,
            domain: domain.to_owned(),
            dir: dir.to_path_buf(),
            hosts: BTreeMap::new(),
            published: BTreeMap::new(),
            dns: None,
            next_id: 1,
        };
        net.build_bridge()?;
        net.dns = Some(dnsmasq::start(
            &net.bridge_ns,
            net.bridge_addr(),
            domain,
            dir,
        )?);
        for _ in 0..nodes {
            let id = net.add_host()?;
            net.write_record(id)?;
        }
        net.wait_dns(domain, nodes as usize)?;
        Ok(net)
    }

    fn build_bridge(&mut self) -> Result<()> {
        let (br, root) = (self.bridge_ns.clone(), self.root_veth.clone());
        let bridge = format!("{}/24", self.bridge_addr());
        ip(&["netns", "add", &br])?;
        // A bridge without an explicit address takes the lowest MAC of its ports, so adding a
        // node could change it and strand every neighbour's ARP entry for the DNS server.
        let (o2, o3) = self.subnet.octets;
        let mac = format!("02:00:0a:{o2:02x}:{o3:02x}:01");
        ip(&[
            "-n", &br, "link", "add", "br0", "address", &mac, "type", "bridge",
        ])?;
        ip(&["-n", &br, "addr", "add", &bridge, "dev", "br0"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        ip(&["-n", &br, "link", "set", "lo", "up"])?;
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", "root", "netns", &br,
        ])?;
        ip(&["-n", &br, "link", "set", "root", "master", "br0", "up"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", self.root_addr()),
            "dev",
            &root,
        ])?;
        ip(&["link", "set", &root, "up"])?;
        Ok(())
    }

    /// Adds a node's namespace and veth (not yet in DNS: see [`Net::publish`]).
    pub fn add_host(&mut self) -> Result<NodeId> {
        let id = NodeId(self.next_id);
        let last = u8::try_from(10 + self.next_id)
            .ok()
            .filter(|l| *l < 254)
            .ok_or_else(|| Error::InvalidFault(format!("too many nodes ({})", self.next_id)))?;
        self.next_id += 1;
        let host = Host {
            id,
            netns: format!("{}-{}", self.base, id.0),
            addr: self.subnet.addr(last),
            dns_name: format!("node-{}.{}", id.0, self.domain),
        };
        let (ns, br, veth) = (
            host.netns.clone(),
            self.bridge_ns.clone(),
            format!("h{}", id.0),
        );
        ip(&["netns", "add", &ns])?;
        self.hosts.insert(id, host.clone());
        self.write_etc(&ns)?;
        ip(&[
            "-n", &br, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ])?;
        ip(&["-n", &br, "link", "set", &veth, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", host.addr),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(id)
    }

    fn write_etc(&self, ns: &str) -> Result<()> {
        let dir = etc_dir(ns);
        let files = [
            (
                "resolv.conf",
                format!(
                    "nameserver {}\noptions timeout:1 attempts:2\n",
                    self.bridge_addr()
                ),
            ),
            (
                "hosts",
                "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n".to_owned(),
            ),
        ];
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| Error::Io {
                what: "write",
                path,
                source,
            })?;
        }
        Ok(())
    }

    /// Removes a node's namespace (its processes die with it) and its DNS record.
    pub fn remove_host(&mut self, id: NodeId) -> Result<()> {
        if self.published.get(&id).copied().unwrap_or(false) {
            self.unpublish(id)?;
        }
        let host = self.hosts.remove(&id).ok_or(Error::UnknownNode(id))?;
        delete_netns(&host.netns)
    }

    /// Publishes a node's A records (`<domain>` and `node-N.<domain>`) and waits until served.
    pub fn publish(&mut self, id: NodeId) -> Result<()> {
        self.write_record(id)?;
        let want = self.published.values().filter(|p| **p).count();
        self.wait_dns(&self.domain.clone(), want)
    }

    /// Withdraws a node's A records and waits until they are no longer served.
    pub fn unpublish(&mut self, id: NodeId) -> Result<()> {
        let path = self.dir.join("dns-hosts").join(format!("node-{}", id.0));
        std::fs::remove_file(&path).map_err(|source| Error::Io {
            what: "remove",
            path,
            source,
        })?;
        self.published.insert(id, false);
        let name = self.host(id)?.dns_name.clone();
        self.wait_dns(&name, 0)?;
        let want = self.published.values().filter(|p| **p).count();
        self.wait_dns(&self.domain.clone(), want)
    }

    fn write_record(&mut self, id: NodeId) -> Result<()> {
        let host = self.host(id)?;
        let dir = self.dir.join("dns-hosts");
        let (tmp, path) = (
            dir.join(format!(".node-{}", id.0)),
            dir.join(format!("node-{}", id.0)),
        );
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { what, path, source }
        };
        // Written aside and renamed in, so dnsmasq never reads half a file.
        std::fs::write(&tmp, dnsmasq::record(host.addr, id.0, &self.domain))
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        self.published.insert(id, true);
        Ok(())
    }

    fn wait_dns(&self, name: &str, want: usize) -> Result<()> {
        let deadline = Instant::now() + DNS_DEADLINE;
        let mut last = Ok(Vec::new());
        while Instant::now() < deadline {
            last = self.lookup(name);
            if matches!(&last, Ok(addrs) if addrs.len() == want) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Timeout {
            what: format!("dnsmasq to serve {want} address(es) for {name} (last answer: {last:?})"),
            after: DNS_DEADLINE,
        })
    }

    /// Asks the test's dnsmasq for `name`'s A records, from the root namespace.
    pub fn lookup(&self, name: &str) -> Result<Vec<Ipv4Addr>> {
        let server = SocketAddr::from((self.bridge_addr(), 53));
        lookup::lookup_a(server, name, Duration::from_millis(500))
    }

    /// Resolves `name` inside a node's namespace with the system resolver (`getent ahosts`),
    /// exactly as a node process would; unique addresses, sorted.
    pub fn resolve_in(&self, id: NodeId, name: &str) -> Result<Vec<Ipv4Addr>> {
        let getent = crate::env::require()?.getent.clone();
        let out = self.exec(id, getent.as_os_str(), &["ahosts", name])?;
        let mut addrs: Vec<Ipv4Addr> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        addrs.sort();
        addrs.dedup();
        Ok(addrs)
    }

    /// Runs a command to completion inside a node's namespace.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        id: NodeId,
        program: &std::ffi::OsStr,
        args: &[S],
    ) -> Result<Output> {
        let ip = &crate::env::require()?.ip;
        let mut full: Vec<&std::ffi::OsStr> = vec![
            "netns".as_ref(),
            "exec".as_ref(),
            self.host(id)?.netns.as_ref(),
            program,
        ];
        full.extend(args.iter().map(AsRef::as_ref));
        cmd::output(ip.as_os_str(), &full)
    }

    /// Runs `iptables ARGS` inside a node's namespace.
    pub fn iptables(&self, id: NodeId, args: &[&str]) -> Result<()> {
        let tools = crate::env::require()?;
        let mut full = vec!["netns", "exec", self.host(id)?.netns.as_str()];
        let iptables = tools.iptables.to_string_lossy();
        full.push(&iptables);
        full.push("-w");
        full.extend_from_slice(args);
        cmd::run(tools.ip.as_os_str(), &full).map(drop)
    }

    /// A node's place in the network.
    pub fn host(&self, id: NodeId) -> Result<&Host> {
        self.hosts.get(&id).ok_or(Error::UnknownNode(id))
    }

    /// Every node, by id.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// Every node's id, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.hosts.keys().copied().collect()
    }

    /// The DNS domain every node is published under.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The bridge's (and dnsmasq's) address.
    pub fn bridge_addr(&self) -> Ipv4Addr {
        self.subnet.addr(1)
    }

    /// The test process' address on the bridge.
    pub fn root_addr(&self) -> Ipv4Addr {
        self.subnet.addr(254)
    }

    /// Every namespace name this network uses (bridge first).
    pub fn namespaces(&self) -> Vec<String> {
        let mut v = vec![self.bridge_ns.clone()];
        v.extend(self.hosts.values().map(|h| h.netns.clone()));
        v
    }

    /// The root-namespace interface name.
    pub fn root_veth(&self) -> &str {
        &self.root_veth
    }

    /// dnsmasq's process (for its log).
    pub fn dns_process(&self) -> Option<&Process> {
        self.dns.as_ref()
    }

    /// Removes everything: dnsmasq, namespaces (and any process left in them), veths,
    /// `/etc/netns/<ns>`. Errors are logged, and the rest is still removed.
    pub fn teardown(&mut self) {
        self.dns = None;
        let _ = ip(&["link", "del", &self.root_veth.clone()]);
        for ns in self.namespaces() {
            if let Err(e) = delete_netns(&ns) {
                tracing::warn!(netns = %ns, error = %e, "teardown");
            }
        }
        self.hosts.clear();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let ip = &crate::env::require()?.ip;
    cmd::run(ip.as_os_str(), args).map(drop)
}

/// `/etc/netns/<ns>`: files there replace `/etc/<file>` under `ip netns exec`.
pub fn etc_dir(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// Kills whatever still runs in `ns`, deletes it and its `/etc/netns` directory.
pub(crate) fn delete_netns(ns: &str) -> Result<()> {
    let ip_path = &crate::env::require()?.ip;
    if let Ok(pids) = cmd::run(ip_path.as_os_str(), &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    let result = match cmd::output(ip_path.as_os_str(), &["netns", "del", ns]) {
        Ok(out)
            if !out.status.success()
                && !String::from_utf8_lossy(&out.stderr).contains("No such file") =>
        {
            Err(Error::Command {
                cmd: format!("ip netns del {ns}"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    let dir = etc_dir(ns);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| Error::Io {
            what: "remove",
            path: dir,
            source,
        })?;
    }
    result
}
