//! The test's DNS server: dnsmasq in the bridge namespace, in the foreground, serving only the
//! records in its hosts directory (one file per published node), which it re-reads on change.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::{Error, Result};
use crate::process::{CommandSpec, Process};

/// Writes the configuration and starts dnsmasq in `netns`, bound to `addr`.
pub(crate) fn start(netns: &str, addr: Ipv4Addr, domain: &str, dir: &Path) -> Result<Process> {
    let hosts_dir = dir.join("dns-hosts");
    let conf_path = dir.join("dnsmasq.conf");
    let conf = format!(
        "port=53\nlisten-address={addr}\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
         local=/{domain}/\nhostsdir={hosts}\nuser=root\npid-file={pid}\nlog-facility=-\n\
         log-queries\n",
        hosts = hosts_dir.display(),
        pid = dir.join("dnsmasq.pid").display(),
    );
    for (path, result) in [
        (&hosts_dir, std::fs::create_dir_all(&hosts_dir)),
        (&conf_path, std::fs::write(&conf_path, conf)),
    ] {
        result.map_err(|source| Error::Io {
            what: "write",
            path: path.clone(),
            source,
        })?;
    }
    let spec = CommandSpec::new(&crate::env::require()?.dnsmasq)
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf_path.display()));
    Process::spawn("dnsmasq", Some(netns), spec, &dir.join("dnsmasq.log"))
}

/// The hosts-file line that makes `node` answer for `domain` and `node-<n>.<domain>`.
pub(crate) fn record(addr: Ipv4Addr, node: u32, domain: &str) -> String {
    format!("{addr} {domain} node-{node}.{domain}\n")
}
