//! Harness for cluster tests: real `strata node` processes on loopback, each with its own
//! ports and data directory, a shared secret file, waits with deadlines, logs printed on
//! failure, and every process killed at the end.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `strata` binary under test.
pub fn strata() -> &'static str {
    env!("CARGO_BIN_EXE_strata")
}

/// A free loopback port (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// One `strata node` process.
pub struct Node {
    /// Name in logs.
    pub name: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// gRPC address.
    pub grpc: String,
    /// HTTP address.
    pub http: String,
    /// Its combined stdout and stderr.
    pub log: PathBuf,
    /// Extra flags it was started with.
    pub extra: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (with `kill`, so no signal crate is needed) and waits up to `deadline`
    /// for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self, deadline: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            panic!("{} is not running", self.name);
        };
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -TERM {pid}");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.success();
            }
            assert!(
                started.elapsed() < deadline,
                "{} did not stop within {deadline:?} of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/api/v1/status/cluster`'s data, if the node answers.
    pub fn status(&self) -> Option<Value> {
        let body = http_get(&self.http, "/api/v1/status/cluster").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then(|| v["data"].clone())
    }

    /// The node id it reports.
    pub fn id(&self) -> Option<u64> {
        self.status().and_then(|s| s["node_id"].as_u64())
    }
}

/// A set of nodes sharing a secret and a peer list.
pub struct Cluster {
    /// Temporary directory holding data dirs, logs and the secret.
    pub dir: tempfile::TempDir,
    /// The shared secret file.
    pub secret: PathBuf,
    /// The nodes.
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// `n` nodes' addresses and data dirs (not started).
    pub fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "shared-cluster-secret-for-tests\n")
            .unwrap_or_else(|e| panic!("secret: {e}"));
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("node{i}"),
                data_dir: dir.path().join(format!("data{i}")),
                grpc: format!("127.0.0.1:{}", free_port()),
                http: format!("127.0.0.1:{}", free_port()),
                log: dir.path().join(format!("node{i}.log")),
                extra: Vec::new(),
                child: None,
            })
            .collect();
        Cluster { dir, secret, nodes }
    }

    /// `--cluster.peers` for every node.
    pub fn peer_flags(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| ["--cluster.peers".to_string(), n.grpc.clone()])
            .collect()
    }

    /// Starts node `i` with the shared secret, every node as a peer, and `extra` flags.
    pub fn start(&mut self, i: usize, extra: &[&str]) {
        let peers = self.peer_flags();
        let secret = self.secret.clone();
        let node = &mut self.nodes[i];
        node.extra = extra.iter().map(|s| s.to_string()).collect();
        node.child = Some(spawn_node(node, &secret, &peers, extra));
    }

    /// Starts node `i` again with the flags it had.
    pub fn restart(&mut self, i: usize) {
        let extra = self.nodes[i].extra.clone();
        let e: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.start(i, &e);
    }

    /// Nodes currently running.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_running())
            .collect()
    }

    /// Waits until every node in `which` reports the same leader, a member list of `members`
    /// nodes and itself in it; returns the leader's id.
    pub fn wait_for_agreement(
        &mut self,
        which: &[usize],
        members: usize,
        deadline: Duration,
    ) -> u64 {
        let started = Instant::now();
        loop {
            let seen = which
                .iter()
                .map(|i| self.nodes[*i].status())
                .collect::<Vec<_>>();
            let leaders: Vec<Option<u64>> = seen
                .iter()
                .map(|s| s.as_ref().and_then(|s| s["leader_id"].as_u64()))
                .collect();
            let counts_ok = seen.iter().all(|s| {
                s.as_ref()
                    .and_then(|s| s["members"].as_array())
                    .is_some_and(|m| {
                        m.len() == members && m.iter().all(|x| x["raft_role"] == "voter")
                    })
            });
            if counts_ok && leaders.iter().all(|l| l.is_some() && *l == leaders[0]) {
                // Also wait until every node has applied the log as it stood: a membership change
                // still in its joint phase would leave two survivors of a leader loss without a
                // quorum of the old configuration.
                let last = seen
                    .iter()
                    .filter_map(|s| s.as_ref().and_then(|s| s["last_log_index"].as_u64()))
                    .max()
                    .unwrap_or(0);
                let applied = which.iter().all(|i| {
                    self.nodes[*i]
                        .status()
                        .and_then(|s| s["applied_index"].as_u64())
                        .is_some_and(|a| a >= last && membership_settled(&self.nodes[*i]))
                });
                if let (true, Some(Some(l))) = (applied, leaders.first()) {
                    return *l;
                }
            }
            if started.elapsed() > deadline {
                self.fail(&format!(
                    "no agreement on one leader and {members} voters within {deadline:?}; last seen: {}",
                    serde_json::to_string_pretty(&seen).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Index of the node whose id is `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == Some(id))
    }

    /// Panics after printing every node's log.
    pub fn fail(&self, msg: &str) -> ! {
        self.print_logs();
        panic!("{msg}");
    }

    /// Prints the tail of every node's log to stderr.
    pub fn print_logs(&self) {
        for n in &self.nodes {
            let text = n.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(120)..];
            eprintln!(
                "===== {} ({}, grpc {}, http {}) =====\n{}",
                n.name,
                n.log.display(),
                n.grpc,
                n.http,
                tail.join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

fn membership_settled(n: &Node) -> bool {
    n.status().is_some_and(|s| s["membership_joint"] == false)
}

fn spawn_node(node: &Node, secret: &Path, peers: &[String], extra: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .unwrap_or_else(|e| panic!("log file: {e}"));
    let log2 = log.try_clone().unwrap_or_else(|e| panic!("log file: {e}"));
    let mut cmd = Command::new(strata());
    cmd.arg("node")
        .arg("--data-dir")
        .arg(&node.data_dir)
        .args(["--grpc-address", &node.grpc, "--http-address", &node.http])
        .arg("--cluster.secret-file")
        .arg(secret)
        .args(peers)
        .args([
            "--cluster.store-heartbeat-interval",
            "1s",
            "--cluster.store-expiry",
            "5s",
        ])
        .args(extra)
        .env("RUST_LOG", "info,openraft=warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawning strata node: {e}"))
}

/// Runs `strata` with `args` to completion.
pub fn run_strata(args: &[&str]) -> Output {
    Command::new(strata())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running strata: {e}"))
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `deadline` naming `what`.
pub fn wait_for<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP/1.0 GET returning the body of a 200 answer.
pub fn http_get(address: &str, path: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = address.parse().map_err(|e| format!("{e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed response")?;
    if !head.lines().next().unwrap_or_default().contains(" 200 ") {
        return Err(format!(
            "{}: {body}",
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok(body.to_string())
}
