//! Helpers of the ruler's real-process tests: processes killed on drop (their log printed when
//! the test panics), a real Alertmanager 0.25, and reading alerts from both sides.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::common::{free_port, http_get, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long any one condition may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// A child process killed on drop, its output in a log file printed when the test panics.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with its output in `<dir>/<name>.log`.
    pub fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// SIGTERM, then waits up to `deadline` for a clean exit; whether it exited in time.
    pub fn terminate(&mut self, deadline: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = std::time::Instant::now();
        while started.elapsed() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Sends `sig` (e.g. `-HUP`) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- {} log (last lines)", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Whether `bin --version` runs.
pub fn available(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A real Alertmanager on loopback, without clustering.
pub fn start_alertmanager(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let p = Proc::spawn(
        "alertmanager",
        dir,
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address="),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for(WAIT, "alertmanager ready", || {
        http_get(&addr, "/-/ready").ok()
    });
    (p, addr)
}

/// GET returning JSON.
pub fn get_json(addr: &str, path: &str) -> Option<Value> {
    http_get(addr, path)
        .ok()
        .and_then(|b| serde_json::from_str(&b).ok())
}

/// Alerts Alertmanager holds as active.
pub fn am_alerts(am: &str) -> Vec<Value> {
    get_json(am, "/api/v2/alerts")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// The ruler's `/api/v1/alerts`.
pub fn ruler_alerts(ruler: &str) -> Vec<Value> {
    get_json(ruler, "/api/v1/alerts")
        .and_then(|v| v["data"]["alerts"].as_array().cloned())
        .unwrap_or_default()
}

/// Unix ms now, on the clock the processes under test share.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Unix ms of an RFC 3339 UTC time as Alertmanager and the ruler print it.
pub fn unix_ms(s: &str) -> i64 {
    let (date, rest) = s.split_once('T').expect("RFC 3339 time");
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]) * 1000) + ms
}

/// Starts `strata rule` over `dir/rules.yml` with a 1 s evaluation interval, its data dir at
/// `dir/ruler`, and `extra` flags; returns it once ready, with its HTTP address.
pub fn start_ruler(dir: &Path, name: &str, extra: &[String]) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = Proc::spawn(
        name,
        dir,
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("rule")
            .arg(format!("--rule-file={}", dir.join("rules.yml").display()))
            .arg("--eval-interval=1s")
            .arg(format!("--http-address={addr}"))
            .arg("--grpc-address=127.0.0.1:0")
            .arg(format!("--data-dir={}", dir.join("ruler").display()))
            .args(extra),
    );
    wait_for(WAIT, "ruler ready", || http_get(&addr, "/-/ready").ok());
    (p, addr)
}
