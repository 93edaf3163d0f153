//! Shared by `self_metrics`, `mixin` and `readme`: strata processes on loopback ports killed
//! when dropped, demo data, plain HTTP and a small parser of the text exposition format.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Families every long-running process exposes with a positive value.
pub const PROCESS_FAMILIES: [&str; 6] = [
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// Families every process exposes about its build.
pub const BUILD_FAMILIES: [&str; 1] = ["strata_build_info"];

/// A port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `strata tools bucket generate` of `hours` of demo data into `work/data`; the data dir.
pub fn generate(work: &Path, hours: u32) -> PathBuf {
    let data = work.join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tools", "bucket", "generate", "--instances", "2", "--hours"])
        .arg(hours.to_string())
        .arg(format!("--data-dir={}", data.display()))
        .output()
        .expect("run strata tools bucket generate");
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// A strata process on loopback ports, killed when dropped.
pub struct Proc {
    child: Child,
    /// `--http-address`.
    pub http: String,
    /// `--grpc-address`.
    pub grpc: String,
    log: PathBuf,
}

impl Proc {
    /// Starts `strata ARGS --http-address ... --grpc-address ...`, logging to `work/NAME.log`.
    pub fn start(work: &Path, name: &str, args: &[&str]) -> Proc {
        let http = format!("127.0.0.1:{}", free_port());
        let grpc = format!("127.0.0.1:{}", free_port());
        let log = work.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .arg(format!("--http-address={http}"))
            .arg(format!("--grpc-address={grpc}"))
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata");
        Proc {
            child,
            http,
            grpc,
            log,
        }
    }

    /// The process' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (60 s at most) for `/-/ready` to answer 200; panics with the log otherwise.
    pub fn wait_ready(&self) {
        let started = Instant::now();
        while get(&self.http, "/-/ready").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} not ready within 60 s:\n{}",
                self.http,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `deadline` naming `what`.
pub fn wait_for<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The body of a 200 answer to `GET path` on `address`; the status line and body otherwise.
pub fn get(address: &str, path: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = address.parse().map_err(|e| format!("{e}"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("{status}: {body}"));
    }
    Ok(body.to_string())
}

/// Percent-encodes a query parameter.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query's first sample value, if the query succeeded with a non-empty vector.
pub fn query_ok(address: &str, q: &str) -> Option<f64> {
    let body = get(address, &format!("/api/v1/query?query={}", enc(q))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`.
pub struct Scrape {
    /// The exposition text.
    pub text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Scrapes `p`'s `/metrics`.
    pub fn of(p: &Proc) -> Scrape {
        Scrape::parse(
            get(&p.http, "/metrics").unwrap_or_else(|e| panic!("scraping {}: {e}", p.http)),
        )
    }

    /// Parses the text format (the subset Prometheus' Go and Rust clients write).
    pub fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Scrape { text, samples }
    }

    /// Names of every family with a sample (histogram suffixes kept).
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self.samples.iter().map(|(n, _, _)| n.as_str()).collect();
        n.sort_unstable();
        n.dedup();
        n
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |(n, ls, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The value of the first sample of `name` carrying `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).map(|(_, _, v)| *v).next()
    }

    /// The sum over the samples of `name` carrying `labels`; `None` when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut it = self.matching(name, labels).peekable();
        it.peek()?;
        Some(it.map(|(_, _, v)| *v).sum())
    }

    /// Label `label` of the first sample of `name`.
    pub fn label(&self, name: &str, label: &str) -> Option<String> {
        self.matching(name, &[])
            .find_map(|(_, ls, _)| ls.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()))
    }

    /// Panics naming the process and the missing family, with the scrape.
    pub fn fail(&self, process: &str, family: &str) -> ! {
        panic!("{process}: no {family} in /metrics:\n{}", self.text)
    }
}

/// `name{a="b",...} value` (label values without escaped quotes or commas, which is all
/// Strata writes).
fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_string(), Vec::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}')?;
            let labels = body
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k.to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            (name.to_string(), labels)
        }
    };
    Some((name, labels, value))
}
