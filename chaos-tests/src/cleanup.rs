//! Removing what a killed earlier run left behind: namespaces, root-namespace veths,
//! `/etc/netns/<ns>` directories and subnet leases whose owning pid no longer exists.
//!
//! Names carry the owner's pid ([`crate::naming`]), so a live test's resources (in this or a
//! parallel process) are never touched. A reused pid hides its dead predecessor's leftovers
//! until that pid exits; [`remove_all`] removes everything with the prefix regardless.

use std::path::Path;

use crate::cmd;
use crate::error::Result;
use crate::naming::{owner_pid, pid_alive, LEASE_DIR, PREFIX};

/// What a cleanup removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Root-namespace interfaces deleted.
    pub links: Vec<String>,
    /// Lease and `/etc/netns` files deleted.
    pub files: Vec<String>,
}

/// Removes leftovers whose owning process is gone.
pub fn remove_leftovers() -> Result<Removed> {
    remove_where(|name| owner_pid(name).is_some_and(|pid| !pid_alive(pid)))
}

/// Removes every harness resource on the machine, live or not (for a manual reset; running
/// tests lose their networks).
pub fn remove_all() -> Result<Removed> {
    remove_where(|name| owner_pid(name).is_some())
}

/// Removes anything named after test `base` (`stc<pid>-<seq>`) before that test is built. Only
/// the live owner of the pid calls this, for a seq it has not used yet, so whatever exists is
/// a leftover of a dead process that had the same pid.
pub fn remove_stale_names(base: &str) -> Result<Removed> {
    let dashed = format!("{base}-");
    remove_where(|name| name == base || name.starts_with(&dashed))
}

fn remove_where(doomed: impl Fn(&str) -> bool) -> Result<Removed> {
    let ip = &crate::env::require()?.ip;
    let mut removed = Removed::default();
    // `ip netns list` prints "name" or "name (id: N)".
    let list = cmd::run(ip.as_os_str(), &["netns", "list"])?;
    for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if doomed(ns) && crate::net::delete_netns(ns).is_ok() {
            removed.namespaces.push(ns.to_owned());
        }
    }
    let links = cmd::run(ip.as_os_str(), &["-o", "link", "show"])?;
    for link in links.lines().filter_map(link_name) {
        if doomed(link) && cmd::run(ip.as_os_str(), &["link", "del", link]).is_ok() {
            removed.links.push(link.to_owned());
        }
    }
    for dir in [Path::new("/etc/netns"), Path::new(LEASE_DIR)] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Leases are named by subnet; their content names the owner.
            let owner = if name.starts_with(PREFIX) {
                name.clone()
            } else {
                std::fs::read_to_string(entry.path())
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            if doomed(&owner) {
                let path = entry.path();
                let gone = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if gone.is_ok() {
                    removed.files.push(path.display().to_string());
                }
            }
        }
    }
    Ok(removed)
}

/// The interface name in a line of `ip -o link show` ("3: name@peer: <...>").
fn link_name(line: &str) -> Option<&str> {
    let name = line.split(": ").nth(1)?;
    Some(name.split('@').next().unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_drop_the_peer_suffix() {
        assert_eq!(
            link_name("7: stc12-0@if2: <BROADCAST> mtu 1500"),
            Some("stc12-0")
        );
        assert_eq!(link_name("1: lo: <LOOPBACK,UP> mtu 65536"), Some("lo"));
        assert_eq!(link_name("garbage"), None);
    }
}
