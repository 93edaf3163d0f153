//! Names and subnets that are unique per test, so nextest can run tests in parallel processes.
//!
//! Every namespace, root-namespace interface and lock file starts with [`PREFIX`] followed by
//! the owning process' pid, so leftovers of a killed run can be recognised and removed
//! ([`crate::cleanup`]) without touching a live test's.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// Prefix of everything the harness creates outside its temp directory.
pub const PREFIX: &str = "stc";

/// Where subnet leases live: tmpfs, so a reboot frees them all.
pub const LEASE_DIR: &str = "/run/strata-chaos";

/// Second octets of the 10.x.y.0/24 test subnets.
const FIRST_OCTET: u8 = 200;
const LAST_OCTET: u8 = 239;

/// One test's identity: `stc<pid>-<n>`, at most 15 characters so it can name an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestId {
    /// The owning process.
    pub pid: u32,
    /// A per-process counter.
    pub seq: u32,
}

impl TestId {
    /// The next id of this process.
    pub fn next() -> TestId {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        TestId {
            pid: std::process::id(),
            seq: SEQ.fetch_add(1, Ordering::Relaxed) % 10_000,
        }
    }

    /// `stc<pid>-<seq>`: the root-namespace veth name and the prefix of the namespaces.
    pub fn base(&self) -> String {
        format!("{PREFIX}{}-{}", self.pid, self.seq)
    }
}

/// The pid that owns a harness name (`stc<pid>-...`), if the name is the harness'.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !rest[digits.len()..].starts_with('-') {
        return None;
    }
    digits.parse().ok()
}

/// True when a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A leased 10.x.y.0/24: bridge .1, nodes .11 upwards, the test process .254.
#[derive(Debug)]
pub struct Subnet {
    /// Second and third octets.
    pub octets: (u8, u8),
    lease: PathBuf,
}

impl Subnet {
    /// Leases a subnet no live test holds and the root namespace does not route.
    pub fn lease(id: &TestId) -> Result<Subnet> {
        let dir = Path::new(LEASE_DIR);
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: "create",
            path: dir.into(),
            source,
        })?;
        let ip = &crate::env::require()?.ip;
        let routes = crate::cmd::run(ip.as_os_str(), &["-4", "route", "show"])?;
        let count = u32::from(LAST_OCTET - FIRST_OCTET + 1) * 256;
        let start = (id.pid.wrapping_mul(2_654_435_761) ^ id.seq.wrapping_mul(40_503)) % count;
        for i in 0..count {
            let k = (start + i) % count;
            let octets = (FIRST_OCTET + (k / 256) as u8, (k % 256) as u8);
            if routes.contains(&format!("10.{}.{}.", octets.0, octets.1)) {
                continue;
            }
            if let Some(lease) = try_claim(dir, octets, id)? {
                return Ok(Subnet { octets, lease });
            }
        }
        Err(Error::NoSubnet {
            first: FIRST_OCTET,
            last: LAST_OCTET,
        })
    }

    /// The address with this last octet.
    pub fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octets.0, self.octets.1, last)
    }
}

impl Drop for Subnet {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lease);
    }
}

/// Claims `LEASE_DIR/10.x.y`, whose content names the holder (`stc<pid>-<seq>`). The file is
/// written under a private name and hard-linked into place, so it never exists half-written,
/// and a holder that died is recognised by its pid and replaced.
fn try_claim(dir: &Path, octets: (u8, u8), id: &TestId) -> Result<Option<PathBuf>> {
    let lease = dir.join(format!("10.{}.{}", octets.0, octets.1));
    let tmp = dir.join(format!("{}.claim", id.base()));
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    std::fs::write(&tmp, id.base()).map_err(io("write", &tmp))?;
    let mut claimed = None;
    for _ in 0..2 {
        match std::fs::hard_link(&tmp, &lease) {
            Ok(()) => {
                claimed = Some(lease.clone());
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&lease).unwrap_or_default();
                match owner_pid(holder.trim()) {
                    Some(pid) if !pid_alive(pid) => {
                        let _ = std::fs::remove_file(&lease);
                    }
                    _ => break,
                }
            }
            Err(source) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io("link", &lease)(source));
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_harness_names() {
        assert_eq!(owner_pid("stc1234-0-br"), Some(1234));
        assert_eq!(owner_pid("stc99-12"), Some(99));
        assert_eq!(owner_pid("stcx-1"), None);
        assert_eq!(owner_pid("stc123"), None);
        assert_eq!(owner_pid("probe-a"), None);
    }

    #[test]
    fn base_name_fits_an_interface_name() {
        let id = TestId {
            pid: 4_194_304,
            seq: 9_999,
        };
        assert!(id.base().len() <= 15, "{}", id.base());
    }
}
