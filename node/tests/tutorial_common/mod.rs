//! Shared by the tutorial tests: real child processes killed on drop, a Prometheus 2.42 replica
//! with the tutorial's external labels, the tutorial's bucket file, a TCP proxy in front of S3
//! that can be cut (an outage), and readers of what the bucket holds.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Thanos tutorial's MinIO access key.
pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
/// The Thanos tutorial's MinIO secret key.
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Whether the `prometheus` binary (2.42 from Debian) is on PATH.
pub fn prometheus_available() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How to start one process again and again (a restart keeps name, program and arguments).
#[derive(Clone, Debug)]
pub struct Spec {
    /// Name in logs and panics.
    pub name: String,
    program: PathBuf,
    args: Vec<String>,
}

impl Spec {
    /// `program args...`, named `name`.
    pub fn new(name: &str, program: impl Into<PathBuf>, args: &[String]) -> Spec {
        Spec {
            name: name.to_string(),
            program: program.into(),
            args: args.to_vec(),
        }
    }

    /// `strata <args...>` from the binary Cargo built for this test.
    pub fn strata(name: &str, args: &[String]) -> Spec {
        Spec::new(name, env!("CARGO_BIN_EXE_strata"), args)
    }
}

/// A running child with its stderr in `<work>/<name>.<n>.log`; killed when dropped.
pub struct Proc {
    spec: Spec,
    work: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

impl Proc {
    /// Starts `spec` with its log under `work`.
    pub fn start(work: &Path, spec: Spec) -> Proc {
        let mut p = Proc {
            spec,
            work: work.to_path_buf(),
            child: None,
            log: PathBuf::new(),
            starts: 0,
        };
        p.restart();
        p
    }

    /// Starts the process again (it must not be running), with a fresh log file.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.spec.name);
        self.starts += 1;
        self.log = self
            .work
            .join(format!("{}.{}.log", self.spec.name, self.starts));
        let log = std::fs::File::create(&self.log).expect("create log file");
        let child = Command::new(&self.spec.program)
            .args(&self.spec.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.spec.name));
        self.child = Some(child);
    }

    /// The current run's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` every 100 ms until it holds; panics with the log on timeout or early exit.
    pub fn wait_until(
        &mut self,
        what: &str,
        deadline: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(s))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited with {s} before {what}:\n{}",
                    self.spec.name,
                    self.log()
                );
            }
            if cond(self) {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "{}: {what} not reached within {deadline:?}:\n{}",
                self.spec.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {pid}");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            if start.elapsed() > deadline {
                self.kill();
                panic!(
                    "{} did not stop within {deadline:?} of SIGTERM:\n{}",
                    self.spec.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL and reap, if running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET /-/ready` on loopback answers 200.
pub fn ready(port: u16) -> bool {
    crate::query_common::request(port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
}

/// `GET /-/ready` on loopback answers this status (`None` when nothing answers).
pub fn ready_status(port: u16) -> Option<u16> {
    crate::query_common::request(port, "GET", "/-/ready", None)
        .ok()
        .map(|r| r.status)
}

/// The tutorial's bucket file (`type: S3`, SigV4) for an S3 endpoint on loopback.
pub fn bucket_yaml(port: u16, bucket: &str, secret: &str) -> String {
    format!(
        "type: S3\nconfig:\n  bucket: \"{bucket}\"\n  endpoint: \"127.0.0.1:{port}\"\n  \
         access_key: \"{ACCESS_KEY}\"\n  secret_key: \"{secret}\"\n  insecure: true\n  \
         signature_version2: false\n"
    )
}

/// A Prometheus replica's config: the tutorial's external labels, 1 s scrapes of `targets`
/// (job name, host:port list).
pub fn prometheus_config(replica: &str, targets: &[(&str, Vec<String>)]) -> String {
    let mut s = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    \
         region: eu-west\n    monitor: prometheus\n    replica: {replica}\nscrape_configs:\n"
    );
    for (job, addrs) in targets {
        let list: Vec<String> = addrs.iter().map(|a| format!("'{a}'")).collect();
        s.push_str(&format!(
            "  - job_name: {job}\n    static_configs: [{{targets: [{}]}}]\n",
            list.join(", ")
        ));
    }
    s
}

/// Prometheus 2.42 on `port` with 30 s blocks (the hidden block-duration flags, equal as the
/// sidecar requires) so the first block is cut within about a minute.
pub fn prometheus_spec(name: &str, port: u16, config: &Path, data: &Path) -> Spec {
    Spec::new(
        name,
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.min-block-duration=30s".into(),
            "--storage.tsdb.max-block-duration=30s".into(),
            "--web.enable-lifecycle".into(),
        ],
    )
}

/// A block in the bucket directory of s3s-fs.
#[derive(Debug, Clone)]
pub struct BucketBlock {
    /// The block's ULID (its directory name).
    pub ulid: String,
    /// meta.json, if uploaded (a block without it is a partial upload, invisible to readers).
    pub meta: Option<serde_json::Value>,
}

/// Every block directory in `bucket`, sorted by ULID.
pub fn bucket_blocks(bucket: &Path) -> Vec<BucketBlock> {
    let mut v: Vec<BucketBlock> = std::fs::read_dir(bucket)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| BucketBlock {
                    ulid: e.file_name().to_string_lossy().into_owned(),
                    meta: std::fs::read(e.path().join("meta.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok()),
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.ulid.cmp(&b.ulid));
    v
}

/// Complete blocks (with meta.json) whose `thanos.labels.replica` is `replica`.
pub fn complete_blocks_of(bucket: &Path, replica: &str) -> Vec<BucketBlock> {
    bucket_blocks(bucket)
        .into_iter()
        .filter(|b| {
            b.meta
                .as_ref()
                .is_some_and(|m| m["thanos"]["labels"]["replica"] == replica)
        })
        .collect()
}

/// Every object under `dir` as (path relative to `dir`, size, modification time).
pub fn objects(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = e.metadata() {
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.push((rel, m.len(), m.modified().expect("mtime")));
            }
        }
    }
    out.sort();
    out
}

/// A TCP proxy on loopback in front of `target` that a test can cut: an outage that refuses
/// service and breaks open connections, optionally tripped by a byte pattern in a request.
pub struct CutProxy {
    /// Port on 127.0.0.1.
    pub port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    target: u16,
    down: AtomicBool,
    stopping: AtomicBool,
    tripped: AtomicBool,
    trip_on: Mutex<Option<Vec<u8>>>,
    conns: Mutex<Vec<TcpStream>>,
}

impl ProxyState {
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl CutProxy {
    /// Forwards 127.0.0.1:<port> to 127.0.0.1:`target`.
    pub fn start(target: u16) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState {
            target,
            down: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            tripped: AtomicBool::new(false),
            trip_on: Mutex::new(None),
            conns: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if s.down.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", s.target)) else {
                    continue;
                };
                pipe(&s, client, upstream);
            }
        });
        CutProxy { port, state }
    }

    /// The next request whose bytes contain `pattern` is not forwarded: the proxy cuts instead.
    pub fn cut_on(&self, pattern: &[u8]) {
        *self.state.trip_on.lock().expect("lock") = Some(pattern.to_vec());
    }

    /// Whether a `cut_on` pattern has cut the proxy.
    pub fn tripped(&self) -> bool {
        self.state.tripped.load(Ordering::SeqCst)
    }

    /// Ends the outage: new connections are forwarded again.
    pub fn restore(&self) {
        self.state.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        self.state.cut();
        // Wakes the accept loop so it sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies both ways between `client` and `upstream` on two threads, watching client bytes for
/// the trip pattern.
fn pipe(s: &Arc<ProxyState>, client: TcpStream, upstream: TcpStream) {
    let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    ) else {
        return;
    };
    s.conns.lock().expect("lock").extend([c3, u3]);
    let st = s.clone();
    std::thread::spawn(move || {
        let (mut from, mut to) = (client, upstream);
        let mut buf = vec![0u8; 64 * 1024];
        let mut tail: Vec<u8> = Vec::new();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || st.down.load(Ordering::SeqCst) {
                break;
            }
            let pattern = st.trip_on.lock().expect("lock").clone();
            if let Some(p) = pattern {
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(p.len()).any(|w| w == p.as_slice()) {
                    *st.trip_on.lock().expect("lock") = None;
                    st.tripped.store(true, Ordering::SeqCst);
                    st.cut();
                    break;
                }
                let keep = tail.len().saturating_sub(p.len());
                tail.drain(..keep);
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let (mut from, mut to) = (u2, c2);
        let _ = std::io::copy(&mut from, &mut to);
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
