//! What the harness needs from the machine: root and a few Debian tools.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Absolute paths of the tools the harness runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `ip` from iproute2.
    pub ip: PathBuf,
    /// `iptables` (nf_tables or legacy backend).
    pub iptables: PathBuf,
    /// `dnsmasq` from dnsmasq-base.
    pub dnsmasq: PathBuf,
    /// `getent` from libc-bin.
    pub getent: PathBuf,
}

/// Finds a program on PATH or in the sbin directories that a non-login PATH may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn probe() -> Result<Tools, String> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root (network namespaces, iptables)".into());
    }
    let need = |name: &str, package: &str| {
        find_program(name).ok_or_else(|| format!("`{name}` not found (Debian package {package})"))
    };
    Ok(Tools {
        ip: need("ip", "iproute2")?,
        iptables: need("iptables", "iptables")?,
        dnsmasq: need("dnsmasq", "dnsmasq-base")?,
        getent: need("getent", "libc-bin")?,
    })
}

fn cached() -> &'static Result<Tools, String> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS.get_or_init(probe)
}

/// The tools, or why the harness cannot run here.
pub fn tools() -> Result<&'static Tools, &'static str> {
    cached().as_ref().map_err(String::as_str)
}

/// The tools, or [`crate::Error::NotReady`].
pub(crate) fn require() -> crate::Result<&'static Tools> {
    tools().map_err(|reason| crate::Error::NotReady(reason.to_owned()))
}

/// True when the harness can run; otherwise prints `SKIPPED <test>: <reason>` and returns false.
///
/// Tests start with `if !chaos_tests::env::ready_or_skip("name") { return; }`.
pub fn ready_or_skip(test: &str) -> bool {
    match tools() {
        Ok(_) => true,
        Err(reason) => {
            println!("SKIPPED {test}: {reason}");
            eprintln!("SKIPPED {test}: {reason}");
            false
        }
    }
}
