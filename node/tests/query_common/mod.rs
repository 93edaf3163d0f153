//! Shared by the `query_*` tests: a promtool-made data set, a `strata query` process, a tiny
//! HTTP client, and JSON comparison with float tolerance.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use storage::labels::Labels;
use storage::testing::prometheus::{create_blocks_from_openmetrics, free_port};
use storage::testing::write_openmetrics;

/// First sample of the data set: 2023-11-14T20:00:00Z, on a 2 h block boundary.
pub const START: i64 = 1_699_992_000;
/// Length of the data set: 6 h, so promtool cuts three blocks.
pub const HOURS: i64 = 6;
/// Scrape interval of the data set, seconds.
pub const STEP: i64 = 15;

/// A deterministic pseudo-random stream (an LCG), so the data has no ties by accident.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn times() -> impl Iterator<Item = i64> {
    (0..HOURS * 3600 / STEP).map(|k| (START + k * STEP) * 1000)
}

/// The test series: counters (one with a reset), gauges, a classic histogram, an info metric,
/// a gappy series and values that need exponent formatting.
pub fn dataset() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut out = Vec::new();
    let mut rng = Rng(42);
    for job in ["api", "web"] {
        for instance in ["a:80", "b:80", "c:80"] {
            for method in ["get", "post"] {
                for code in ["200", "500"] {
                    let weight = if code == "500" { 0.05 } else { 1.0 };
                    let mut v = (rng.next() * 1000.0).floor();
                    let reset =
                        job == "api" && instance == "a:80" && method == "get" && code == "200";
                    let samples = times()
                        .map(|t| {
                            if reset && t == (START + 3 * 3600) * 1000 {
                                v = 3.0;
                            }
                            v += (rng.next() * 20.0 * weight).floor();
                            (t, v)
                        })
                        .collect();
                    out.push((
                        labels(&[
                            ("__name__", "http_requests_total"),
                            ("job", job),
                            ("instance", instance),
                            ("method", method),
                            ("code", code),
                        ]),
                        samples,
                    ));
                }
            }
        }
    }
    for (i, instance) in ["a:80", "b:80", "c:80"].iter().enumerate() {
        let base = 1e9 * (i + 1) as f64;
        let samples = times()
            .map(|t| {
                let x = (t / 1000 - START) as f64 / 3600.0;
                (
                    t,
                    (base + 2.5e8 * (x + i as f64).sin() + rng.next() * 1e6).round(),
                )
            })
            .collect();
        out.push((
            labels(&[
                ("__name__", "node_memory_free_bytes"),
                ("job", "node"),
                ("instance", instance),
            ]),
            samples,
        ));
    }
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    for job in ["api", "web"] {
        let mut counts = [0.0f64; 6];
        let mut sum = 0.0;
        let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 8];
        for t in times() {
            for _ in 0..5 {
                let d = rng.next() * rng.next() * 1.5;
                sum += d;
                for (b, c) in bounds.iter().zip(counts.iter_mut()) {
                    let le: f64 = if *b == "+Inf" {
                        f64::INFINITY
                    } else {
                        b.parse().unwrap_or(f64::INFINITY)
                    };
                    if d <= le {
                        *c += 1.0;
                    }
                }
            }
            for (i, c) in counts.iter().enumerate() {
                series[i].push((t, *c));
            }
            series[6].push((t, (sum * 1000.0).round() / 1000.0));
            series[7].push((t, counts[5]));
        }
        for (i, b) in bounds.iter().enumerate() {
            out.push((
                labels(&[
                    ("__name__", "request_duration_seconds_bucket"),
                    ("job", job),
                    ("le", b),
                ]),
                series[i].clone(),
            ));
        }
        out.push((
            labels(&[("__name__", "request_duration_seconds_sum"), ("job", job)]),
            series[6].clone(),
        ));
        out.push((
            labels(&[("__name__", "request_duration_seconds_count"), ("job", job)]),
            series[7].clone(),
        ));
    }
    for (room, base) in [("kitchen", 21.0), ("cellar", 4.0), ("attic", -8.0)] {
        let samples = times()
            .map(|t| {
                (
                    t,
                    base + ((rng.next() - 0.5) * 40.0 * 100.0).round() / 100.0,
                )
            })
            .collect();
        out.push((
            labels(&[("__name__", "temperature_celsius"), ("room", room)]),
            samples,
        ));
    }
    for (job, version) in [("api", "1.2.3"), ("web", "2.0.0")] {
        out.push((
            labels(&[
                ("__name__", "build_info"),
                ("job", job),
                ("version", version),
            ]),
            times().map(|t| (t, 1.0)).collect(),
        ));
    }
    // Every minute, with nothing between 2h and 3h after the start.
    let gappy = times()
        .filter(|t| t % 60_000 == 0)
        .filter(|t| !(((START + 7200) * 1000)..((START + 10_800) * 1000)).contains(t))
        .map(|t| (t, ((t / 60_000) % 17) as f64))
        .collect();
    out.push((
        labels(&[("__name__", "sparse_metric"), ("kind", "gappy")]),
        gappy,
    ));
    out.push((
        labels(&[("__name__", "extreme_values"), ("size", "tiny")]),
        times()
            .map(|t| (t, 1.5e-9 * ((t / 1000) % 7) as f64))
            .collect(),
    ));
    out.push((
        labels(&[("__name__", "extreme_values"), ("size", "huge")]),
        times()
            .map(|t| (t, 2.5e22 * ((t / 1000) % 5) as f64))
            .collect(),
    ));
    out
}

/// Writes the data set as OpenMetrics and makes blocks with promtool under `dir/blocks`.
pub fn make_blocks(dir: &Path) -> Vec<PathBuf> {
    let om = dir.join("data.om");
    write_openmetrics(&om, &dataset()).expect("write openmetrics");
    create_blocks_from_openmetrics(&om, &dir.join("blocks")).expect("promtool makes blocks")
}

/// Copies block directories into `dest` (a Prometheus data dir or a FILESYSTEM bucket).
pub fn copy_blocks(blocks: &[PathBuf], dest: &Path) {
    for b in blocks {
        let name = b.file_name().expect("block dir name");
        copy_dir(b, &dest.join(name));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy file");
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One HTTP/1.0 request on loopback.
pub fn request(port: u16, method: &str, path: &str, form: Option<&str>) -> Result<Reply, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(body) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let content_type = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-type")
            .then(|| v.trim().to_string())
    });
    Ok(Reply {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// `GET path`, panicking on connection errors.
pub fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, None).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `POST path` with a form body.
pub fn post(port: u16, path: &str, form: &str) -> Reply {
    request(port, "POST", path, Some(form)).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// A running `strata query`, stopped when dropped.
pub struct StrataQuery {
    child: Option<Child>,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
}

impl StrataQuery {
    /// Starts `strata query` on a free port with `args`; does not wait for readiness.
    pub fn spawn(work: &Path, args: &[&str]) -> StrataQuery {
        let port = free_port().expect("free port");
        let log = work.join(format!("strata-query-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("query")
            .arg(format!("--http-address=127.0.0.1:{port}"))
            .args(own_grpc_port(args.iter().map(|a| &**a)))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata query");
        StrataQuery {
            child: Some(child),
            port,
            log,
        }
    }

    /// Starts `strata query` over the FILESYSTEM bucket under `data_dir` and waits until
    /// `/-/ready` answers 200.
    pub fn start_ready(work: &Path, data_dir: &Path) -> StrataQuery {
        let data = format!("--data-dir={}", data_dir.display());
        let mut q = StrataQuery::spawn(work, &[&data]);
        q.wait_until("ready", Duration::from_secs(60), |q| {
            request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
        });
        q
    }

    /// The process id while it runs.
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` until it holds; panics with the log if `deadline` passes or the process
    /// exits.
    pub fn wait_until(&mut self, what: &str, deadline: Duration, cond: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "strata query exited with {status} before {what}:\n{}",
                    self.log()
                );
            }
            if cond(self) {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "strata query: {what} not reached within {deadline:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits up to `deadline` for the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -TERM {pid}");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "strata query did not stop within {deadline:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for StrataQuery {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Percent-encodes a parameter value.
pub fn enc(s: &str) -> String {
    storage::testing::prometheus::url_encode(s)
}

/// An HTTP answer with its headers (names lower-cased) and undecoded body bytes.
#[derive(Debug)]
pub struct RawReply {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes as sent (still compressed if the server compressed them).
    pub body: Vec<u8>,
}

impl RawReply {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request with extra request headers; the answer is returned undecoded.
pub fn request_raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> RawReply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    RawReply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// `--grpc-address` on a free loopback port unless `args` give one, so parallel queriers do
/// not all try Thanos' default 0.0.0.0:10901.
pub fn own_grpc_port<'a>(mut args: impl Iterator<Item = &'a str>) -> Vec<String> {
    if args.any(|a| a.starts_with("--grpc-address")) {
        return Vec::new();
    }
    vec![format!(
        "--grpc-address=127.0.0.1:{}",
        free_port().expect("free port")
    )]
}
