//! Shared by the hostile-input suite: demo data from `strata tools bucket generate`, a
//! `strata query` process watched for liveness, RSS and CPU, raw-socket requests, and a case
//! runner that records every failing case instead of stopping at the first.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage::testing::prometheus::free_port;

/// The RSS bound every case is checked against, in kB: 2 GiB. An idle querier over the demo
/// data holds about 200 MB; Prometheus 2.42 peaks at 2.4 GB on the heaviest query of the issue
/// (count_values over 24 h at 15 s, default limits). The watchdog kills the process above it.
pub const RSS_BOUND_KB: u64 = 2 * 1024 * 1024;

/// Prometheus' message for `ErrTooManySamples`.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// Demo data: a FILESYSTEM bucket under `data_dir` written by `strata tools bucket generate`.
pub struct Demo {
    /// Holds every file of the test.
    pub tmp: tempfile::TempDir,
    /// `--data-dir` of the querier; the bucket is `data_dir/bucket`.
    pub data_dir: PathBuf,
    /// Unix seconds just after generation: the data ends here, so queries ask at this time.
    pub end: i64,
    /// Simulated hosts (each has one `up` and eight `node_cpu_seconds_total` series).
    pub instances: usize,
}

impl Demo {
    /// The bucket directory.
    pub fn bucket(&self) -> PathBuf {
        self.data_dir.join("bucket")
    }
}

/// Runs `strata` with `args` and returns its output.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("run strata")
}

/// Writes `hours` of demo data for `instances` hosts.
pub fn generate_demo(hours: i64, instances: usize) -> Demo {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("data");
    let out = strata(&[
        "tools",
        "bucket",
        "generate",
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
        "--hours",
        &hours.to_string(),
        "--instances",
        &instances.to_string(),
    ]);
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Demo {
        tmp,
        data_dir,
        end: unix_now(),
        instances,
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A running `strata query` with an RSS watchdog; killed when dropped.
pub struct Querier {
    child: Child,
    /// HTTP port on 127.0.0.1.
    pub port: u16,
    work: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    peak_kb: Arc<AtomicU64>,
    stop_watch: Arc<AtomicBool>,
}

impl Querier {
    /// Starts `strata query` with `args` and waits until `/-/ready` answers 200.
    pub fn start(work: &Path, args: &[&str]) -> Querier {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut q = Querier::spawn(work, args);
        q.wait_ready();
        q
    }

    fn spawn(work: &Path, args: Vec<String>) -> Querier {
        let port = free_port().expect("free port");
        let log = work.join(format!("strata-query-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("query")
            .arg(format!("--http-address=127.0.0.1:{port}"))
            .args(own_grpc_port(args.iter().map(|a| &**a)))
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata query");
        let peak_kb = Arc::new(AtomicU64::new(0));
        let stop_watch = Arc::new(AtomicBool::new(false));
        watch_rss(child.id(), peak_kb.clone(), stop_watch.clone());
        Querier {
            child,
            port,
            work: work.to_path_buf(),
            args,
            log,
            peak_kb,
            stop_watch,
        }
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "strata query exited with {status} before ready:\n{}",
                    self.log()
                );
            }
            let ready = http(self.port, "GET", "/-/ready", &[], b"").is_ok_and(|r| r.status == 200);
            if ready {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "strata query not ready within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Replaces a dead (or live) process by a fresh one with the same flags.
    pub fn restart(&mut self) {
        self.stop();
        let mut fresh = Querier::spawn(&self.work, self.args.clone());
        fresh.wait_ready();
        std::mem::swap(self, &mut fresh);
    }

    fn stop(&mut self) {
        self.stop_watch.store(true, Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process' log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Current RSS in kB.
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb(self.pid())
    }

    /// Highest RSS the watchdog saw since the process started, in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        self.peak_kb.load(Ordering::Relaxed)
    }

    /// User plus system CPU time so far, in clock ticks (1/100 s on Linux).
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }

    /// Alive, `/-/healthy` answers 200 and RSS is under [`RSS_BOUND_KB`].
    pub fn check_healthy(&mut self) -> Result<(), String> {
        if !self.alive() {
            return Err(format!(
                "process died (peak RSS {} kB); log tail:\n{}",
                self.peak_rss_kb(),
                self.log_tail()
            ));
        }
        match health(self.port) {
            Ok(r) if r.status == 200 => {}
            Ok(r) => return Err(format!("/-/healthy answered {}", r.status)),
            Err(e) => return Err(format!("/-/healthy failed: {e}")),
        }
        let peak = self.peak_rss_kb();
        if peak > RSS_BOUND_KB {
            return Err(format!("RSS peaked at {peak} kB, bound {RSS_BOUND_KB} kB"));
        }
        Ok(())
    }

    /// Waits until the process spends less than 0.2 s of CPU in a 1 s window, within
    /// `deadline`; the error says how busy it stayed.
    pub fn wait_cpu_idle(&self, deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut last = self.cpu_ticks().ok_or("no /proc stat")?;
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = self.cpu_ticks().ok_or("no /proc stat")?;
            let used = now.saturating_sub(last);
            if used < 20 {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(format!(
                    "still busy {deadline:?} after the answer: {used} ticks of CPU in the last second"
                ));
            }
            last = now;
        }
    }

    /// Waits until CPU time has grown by `ticks` since `from` (work is under way).
    pub fn wait_cpu_growth(&self, from: u64, ticks: u64, deadline: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let now = self.cpu_ticks().ok_or("no /proc stat")?;
            if now >= from + ticks {
                return Ok(());
            }
            if start.elapsed() > deadline {
                return Err(format!("CPU grew by {} ticks only", now - from));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Querier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Current RSS of `pid` in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples the RSS of `pid` every 50 ms, keeps the peak, and SIGKILLs the process above the
/// bound so that a memory regression fails the test instead of taking the shared machine.
fn watch_rss(pid: u32, peak: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(kb) = rss_kb(pid) else { return };
            peak.fetch_max(kb, Ordering::Relaxed);
            if kb > RSS_BOUND_KB {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body shortened for messages.
    pub fn short(&self) -> String {
        let t = self.text();
        if t.chars().count() > 300 {
            format!("{}...", t.chars().take(300).collect::<String>())
        } else {
            t
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "status {}, body not JSON ({e}): {}",
                self.status,
                self.short()
            )
        })
    }
}

/// Parses a raw HTTP/1.x response (body read to the end of the connection).
pub fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Ok(Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// One HTTP/1.0 request (connection closed after it) with a 120 s read timeout. A body the
/// server stops reading (it answered early) is not an error: the answer is read anyway.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, String> {
    http_within(Duration::from_secs(120), port, method, path, headers, body)
}

/// `GET /-/healthy`, waiting at most 10 s for the answer.
pub fn health(port: u16) -> Result<Answer, String> {
    http_within(Duration::from_secs(10), port, "GET", "/-/healthy", &[], b"")
}

/// Like [`http`], with a read timeout of `wait`.
pub fn http_within(
    wait: Duration,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // A server may answer and close before reading a huge body; the answer still counts.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(format!("read: {e}"));
        }
    }
    parse_answer(&raw)
}

/// `GET path`.
pub fn get(port: u16, path: &str) -> Result<Answer, String> {
    http(port, "GET", path, &[], b"")
}

/// `POST path` with a form body.
pub fn post_form(port: u16, path: &str, form: &str) -> Result<Answer, String> {
    post_bytes(port, path, form.as_bytes())
}

/// `POST path` with form-typed raw bytes.
pub fn post_bytes(port: u16, path: &str, body: &[u8]) -> Result<Answer, String> {
    http(
        port,
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body,
    )
}

/// Percent-encodes a parameter value.
pub fn enc(s: &str) -> String {
    storage::testing::prometheus::url_encode(s)
}

/// The answer is Prometheus' error envelope with `status` and `error_type`; returns the
/// error message.
pub fn expect_error(a: &Answer, status: u16, error_type: &str) -> Result<String, String> {
    if a.status != status {
        return Err(format!(
            "status {} (want {status}): {}",
            a.status,
            a.short()
        ));
    }
    let j = a.json()?;
    if j["status"] != "error" || j["errorType"] != error_type {
        return Err(format!("want errorType {error_type}, got {}", a.short()));
    }
    j["error"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("no error message: {}", a.short()))
}

/// Prometheus' error envelope with `status` and any error type; returns the error type.
pub fn expect_error_envelope(a: &Answer, status: u16) -> Result<String, String> {
    if a.status != status {
        return Err(format!(
            "status {} (want {status}): {}",
            a.status,
            a.short()
        ));
    }
    let j = a.json()?;
    match (
        j["status"].as_str(),
        j["errorType"].as_str(),
        j["error"].as_str(),
    ) {
        (Some("error"), Some(t), Some(m)) if !t.is_empty() && !m.is_empty() => Ok(t.to_string()),
        _ => Err(format!("not an error envelope: {}", a.short())),
    }
}

/// Like [`expect_error`], and the message contains `part`.
pub fn expect_error_with(
    a: &Answer,
    status: u16,
    error_type: &str,
    part: &str,
) -> Result<(), String> {
    let msg = expect_error(a, status, error_type)?;
    if msg.contains(part) {
        Ok(())
    } else {
        Err(format!("error {msg:?} lacks {part:?}"))
    }
}

/// A 200 success envelope; returns its `data`.
pub fn expect_success(a: &Answer) -> Result<serde_json::Value, String> {
    if a.status != 200 {
        return Err(format!("status {} (want 200): {}", a.status, a.short()));
    }
    let mut j = a.json()?;
    if j["status"] != "success" {
        return Err(format!("not success: {}", a.short()));
    }
    Ok(j["data"].take())
}

/// Runs named cases against one querier, checking after each that it is alive, healthy and
/// under the RSS bound; a dead process is restarted so that later cases still run. Panics at
/// the end with every failure.
pub struct Cases<'a> {
    q: &'a mut Querier,
    failures: Vec<String>,
    ran: usize,
}

impl<'a> Cases<'a> {
    /// Cases against `q`.
    pub fn new(q: &'a mut Querier) -> Self {
        Cases {
            q,
            failures: Vec::new(),
            ran: 0,
        }
    }

    /// Runs one case.
    pub fn case(&mut self, name: &str, f: impl FnOnce(&mut Querier) -> Result<(), String>) {
        self.ran += 1;
        let began = Instant::now();
        let outcome = f(self.q);
        let health = self.q.check_healthy();
        let unwell = health.is_err();
        let mut problems = Vec::new();
        if let Err(e) = outcome {
            problems.push(e);
        }
        if let Err(e) = health {
            problems.push(format!("afterwards: {e}"));
        }
        if problems.is_empty() {
            eprintln!("case {name}: ok ({:.1} s)", began.elapsed().as_secs_f64());
            return;
        }
        let msg = format!(
            "case {name}: FAILED after {:.1} s: {}",
            began.elapsed().as_secs_f64(),
            problems.join("; ")
        );
        eprintln!("{msg}");
        self.failures.push(msg);
        // A dead or unresponsive process is replaced so that the next case starts clean.
        if unwell {
            self.q.restart();
        }
    }

    /// Panics with every failed case, if any.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failures.len(),
            self.ran,
            self.failures.join("\n")
        );
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
