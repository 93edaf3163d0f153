//! Running Debian's Prometheus 2.42 and promtool from tests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Result type of these helpers: errors are plain messages for test output.
pub type Result<T> = std::result::Result<T, String>;

/// Whether `promtool` and `prometheus` are on PATH.
pub fn promtool_available() -> bool {
    ["promtool", "prometheus"].iter().all(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `promtool tsdb create-blocks-from openmetrics FILE OUT`; returns the block directories made.
pub fn create_blocks_from_openmetrics(file: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    run(Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(file)
        .arg(out))?;
    block_dirs(out)
}

/// Block directories (names that parse as ULIDs) under `dir`, sorted.
pub fn block_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.join("meta.json").exists()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| ulid::Ulid::from_string(n).is_ok())
        })
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Every sample `promtool tsdb dump` prints for the blocks in `dir`, keyed by the series'
/// label string (`{__name__="a", b="c"}`). Adds the empty `wal/` promtool insists on.
pub fn promtool_dump(dir: &Path) -> Result<BTreeMap<String, Vec<(i64, f64)>>> {
    std::fs::create_dir_all(dir.join("wal")).map_err(|e| e.to_string())?;
    let text = run(Command::new("promtool")
        .args(["tsdb", "dump", "--min-time=-9223372036854775808"])
        .arg("--max-time=9223372036854775807")
        .arg(dir))?;
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.rsplitn(3, ' ');
        let (Some(ts), Some(v), Some(labels)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("unexpected dump line {line:?}"));
        };
        let t: i64 = ts
            .parse()
            .map_err(|_| format!("bad timestamp in {line:?}"))?;
        let v: f64 = parse_go_float(v).ok_or_else(|| format!("bad value in {line:?}"))?;
        out.entry(labels.to_string()).or_default().push((t, v));
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    Ok(out)
}

/// Parses Go's `%g` and `FormatFloat` output, including `NaN`, `+Inf`, `-Inf`.
pub fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `promtool tsdb analyze DIR ULID`; returns its output or its error text.
pub fn promtool_analyze(dir: &Path, ulid: &str) -> Result<String> {
    run(Command::new("promtool")
        .args(["tsdb", "analyze"])
        .arg(dir)
        .arg(ulid))
}

/// A port on loopback that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// A plain HTTP/1.0 GET on loopback; returns status and body.
pub fn http_get(port: u16, path_and_query: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {resp:?}"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A Prometheus 2.42 server on loopback, killed when dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    child: Child,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    /// Its `--storage.tsdb.path`.
    pub data_dir: PathBuf,
}

impl PrometheusServer {
    /// Starts Prometheus on `data_dir` with `extra` flags and a config that scrapes itself
    /// every second; waits until `/-/ready` answers 200.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Result<Self> {
        let port = free_port()?;
        let config = data_dir.with_extension("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log = std::fs::File::create(data_dir.with_extension("prometheus.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting prometheus: {e}"))?;
        let mut server = PrometheusServer {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
        };
        server.wait_until("ready", Duration::from_secs(60), |s| {
            Ok(http_get(s.port, "/-/ready")
                .map(|r| r.0 == 200)
                .unwrap_or(false))
        })?;
        Ok(server)
    }

    /// Polls `cond` every 200 ms until it holds or `deadline` passes; fails if the server died.
    pub fn wait_until(
        &mut self,
        what: &str,
        deadline: Duration,
        mut cond: impl FnMut(&Self) -> Result<bool>,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "prometheus exited with {status} while waiting for {what}"
                ));
            }
            if cond(self)? {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "prometheus: {what} not reached within {deadline:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET /api/v1/query_range`, returning the parsed JSON body (any status).
    pub fn query_range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<serde_json::Value> {
        let q = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            url_encode(query)
        );
        let (_, body) = http_get(self.port, &q)?;
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
