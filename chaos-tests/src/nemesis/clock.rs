//! Clock faults through libfaketime (Debian's `libfaketime` 0.9.10), Jepsen's clock nemesis:
//! a node started with [`faked_env`] reads its wall clock offset by whatever its control file
//! says (`+120`, `-1.5`: seconds), re-read on every call (`FAKETIME_NO_CACHE=1`), so the nemesis
//! changes a running node's clock by rewriting the file.
//!
//! Only the wall clock is faked (`FAKETIME_DONT_FAKE_MONOTONIC=1`). Raft's election and
//! heartbeat timers, tokio's timers and every timeout run on the monotonic clock, which a real
//! NTP step never moves either; faking it would test libfaketime's jumps of `Instant` (which
//! real kernels never make) rather than Strata. What the skew must hit is every use of wall
//! time: the leader's timestamps on registry heartbeats, job leases and member records, store
//! liveness judged from them, and log lines. It also keeps faking cheap: a monotonic read does
//! not touch the control file (0.1 us instead of 6 us a call, measured here).
//!
//! A strobe (the clock flipping between an offset and true time) is a thread rewriting the
//! file every period; [`reset`] stops it and puts every clock back.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::net::NodeId;

/// Where Debian's `libfaketime` package puts the library.
pub const DEBIAN_LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The libfaketime library: `STRATA_LIBFAKETIME`, else Debian's path; it must exist.
pub fn libfaketime() -> Result<PathBuf> {
    let path = std::env::var_os("STRATA_LIBFAKETIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_LIBFAKETIME));
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NotReady(format!(
            "{} not found (Debian package libfaketime; STRATA_LIBFAKETIME overrides the path)",
            path.display()
        )))
    }
}

/// The control file of node `id` in a cluster directory.
pub fn control_file(cluster_dir: &Path, id: NodeId) -> PathBuf {
    cluster_dir.join(format!("node-{}.faketime", id.0))
}

/// The environment that puts a process' wall clock under `control` (missing file: true time).
pub fn faked_env(library: &Path, control: &Path) -> Vec<(OsString, OsString)> {
    [
        ("LD_PRELOAD", library.as_os_str()),
        ("FAKETIME_TIMESTAMP_FILE", control.as_os_str()),
        ("FAKETIME_NO_CACHE", "1".as_ref()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".as_ref()),
    ]
    .into_iter()
    .map(|(k, v)| (OsString::from(k), v.to_os_string()))
    .collect()
}

/// libfaketime's relative offset syntax for `offset_ms` (seconds with a sign, ms precision).
pub fn offset_spec(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// Sets the clock behind `control` to true time plus `offset_ms`. Written to a temporary file
/// and renamed, so the node never reads a half-written offset.
pub fn set_offset(control: &Path, offset_ms: i64) -> Result<()> {
    let tmp = control.with_extension("faketime.tmp");
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    std::fs::write(&tmp, format!("{}\n", offset_spec(offset_ms))).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, control).map_err(io("rename to", control))
}

struct Strobe {
    control: PathBuf,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Running strobes, by control file (files are unique per test cluster).
fn strobes() -> std::sync::MutexGuard<'static, Vec<Strobe>> {
    static STROBES: Mutex<Vec<Strobe>> = Mutex::new(Vec::new());
    STROBES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Flips the clock behind `control` between `+delta_ms` and true time every `period` until
/// `duration` ends or [`reset`] stops it; it ends at true time.
pub fn start_strobe(control: &Path, delta_ms: i64, period: Duration, duration: Duration) {
    stop_strobes(&[control.to_path_buf()]);
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, path) = (stop.clone(), control.to_path_buf());
    let period = period.max(Duration::from_millis(10));
    let thread = std::thread::spawn(move || {
        let end = Instant::now() + duration;
        let mut skewed = false;
        while !flag.load(Ordering::Relaxed) && Instant::now() < end {
            skewed = !skewed;
            let offset = if skewed { delta_ms } else { 0 };
            if let Err(e) = set_offset(&path, offset) {
                tracing::warn!(error = %e, "clock strobe stopped");
                return;
            }
            std::thread::sleep(period);
        }
        let _ = set_offset(&path, 0);
    });
    strobes().push(Strobe {
        control: control.to_path_buf(),
        stop,
        thread,
    });
}

fn stop_strobes(controls: &[PathBuf]) {
    let stopped: Vec<Strobe> = {
        let mut all = strobes();
        let (stop, keep) = all.drain(..).partition(|s| controls.contains(&s.control));
        *all = keep;
        stop
    };
    for s in stopped {
        s.stop.store(true, Ordering::Relaxed);
        let _ = s.thread.join();
    }
}

/// Stops the strobes of `nodes` and sets their clocks back to true time (only where a control
/// file exists: a node never skewed needs nothing).
pub fn reset(cluster_dir: &Path, nodes: &[NodeId]) -> Result<()> {
    let controls: Vec<PathBuf> = nodes
        .iter()
        .map(|n| control_file(cluster_dir, *n))
        .collect();
    stop_strobes(&controls);
    for c in controls.iter().filter(|c| c.exists()) {
        set_offset(c, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_use_libfaketime_seconds_syntax() {
        assert_eq!(offset_spec(0), "+0.000");
        assert_eq!(offset_spec(120_000), "+120.000");
        assert_eq!(offset_spec(-1_500), "-1.500");
        assert_eq!(offset_spec(-7), "-0.007");
    }

    #[test]
    fn strobe_flips_the_control_file_and_reset_restores_true_time() {
        let dir = std::env::temp_dir().join(format!("stc-clock-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let control = control_file(&dir, NodeId(1));
        start_strobe(
            &control,
            5_000,
            Duration::from_millis(10),
            Duration::from_secs(30),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < 2 && Instant::now() < deadline {
            if let Ok(s) = std::fs::read_to_string(&control) {
                seen.insert(s);
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        let reset_result = reset(&dir, &[NodeId(1)]);
        let after = std::fs::read_to_string(&control).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(reset_result.is_ok(), "{reset_result:?}");
        assert!(
            seen.contains("+5.000\n") && seen.contains("+0.000\n"),
            "{seen:?}"
        );
        assert_eq!(after, "+0.000\n");
    }
}
