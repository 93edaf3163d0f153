//! A test's cluster: the network plus one process per node, a directory for logs, node data
//! and the history. Dropping it kills every process and removes the network; when the test is
//! panicking it first prints every log's tail and keeps the directory.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::net::{Net, NodeId};
use crate::process::{log_tail, CommandSpec, Process, State};

/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 40;

/// What a node's command is built from.
#[derive(Debug, Clone)]
pub struct NodeCtx {
    /// The node.
    pub id: NodeId,
    /// Its address on the bridge (bind to it: `<addr>:10901`).
    pub addr: Ipv4Addr,
    /// Its namespace.
    pub netns: String,
    /// Its own DNS name (`node-N.peers`).
    pub dns_name: String,
    /// A directory of its own, kept across restarts (use as `--data-dir`).
    pub data_dir: PathBuf,
}

/// Network, processes and test directory of one test.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    dir: PathBuf,
    keep_dir: bool,
    procs: BTreeMap<NodeId, Process>,
    net: Option<Net>,
}

impl Cluster {
    /// Creates the network for `nodes` nodes, all published under the DNS name `peers`, and the
    /// test directory `$TMPDIR/strata-chaos/<name>-<pid>-<n>`. No process is started yet.
    pub fn new(name: &str, nodes: u32) -> Result<Cluster> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join("strata-chaos")
            .join(format!("{name}-{}-{seq}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: "create",
            path: dir.clone(),
            source,
        })?;
        let mut cluster = Cluster {
            name: name.to_owned(),
            dir,
            keep_dir: std::env::var_os("STRATA_CHAOS_KEEP").is_some(),
            procs: BTreeMap::new(),
            net: None,
        };
        cluster.net = Some(Net::create(&cluster.dir, nodes, "peers")?);
        Ok(cluster)
    }

    /// The network.
    pub fn net(&self) -> &Net {
        // Only `Drop` takes the network out.
        self.net.as_ref().expect("network present until drop")
    }

    /// The network, for membership changes (`add_host`, `publish`, `unpublish`).
    pub fn net_mut(&mut self) -> &mut Net {
        self.net.as_mut().expect("network present until drop")
    }

    /// The test directory (logs, node data, history).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<NodeId> {
        self.net().ids()
    }

    /// What a node's command is built from; creates its data directory.
    pub fn ctx(&self, id: NodeId) -> Result<NodeCtx> {
        let host = self.net().host(id)?;
        let data_dir = self.dir.join(format!("node-{}", id.0));
        std::fs::create_dir_all(&data_dir).map_err(|source| Error::Io {
            what: "create",
            path: data_dir.clone(),
            source,
        })?;
        Ok(NodeCtx {
            id,
            addr: host.addr,
            netns: host.netns.clone(),
            dns_name: host.dns_name.clone(),
            data_dir,
        })
    }

    /// Starts node `id`'s process in its namespace; its log is `<dir>/node-N.log`.
    pub fn start(&mut self, id: NodeId, spec: CommandSpec) -> Result<()> {
        let ctx = self.ctx(id)?;
        let log = self.dir.join(format!("node-{}.log", id.0));
        let p = Process::spawn(&id.to_string(), Some(&ctx.netns), spec, &log)?;
        if let Some(mut old) = self.procs.insert(id, p) {
            old.kill()?;
        }
        Ok(())
    }

    /// Starts every node, each with the command `spec` builds from its context.
    pub fn start_all(&mut self, spec: impl Fn(&NodeCtx) -> CommandSpec) -> Result<()> {
        for id in self.ids() {
            let s = spec(&self.ctx(id)?);
            self.start(id, s)?;
        }
        Ok(())
    }

    /// Node `id`'s process.
    pub fn process(&mut self, id: NodeId) -> Result<&mut Process> {
        self.procs.get_mut(&id).ok_or(Error::NoProcess(id))
    }

    /// SIGKILL node `id`.
    pub fn kill(&mut self, id: NodeId) -> Result<()> {
        self.process(id)?.kill()
    }

    /// SIGSTOP node `id`.
    pub fn pause(&mut self, id: NodeId) -> Result<()> {
        self.process(id)?.pause()
    }

    /// SIGCONT node `id`.
    pub fn resume(&mut self, id: NodeId) -> Result<()> {
        self.process(id)?.resume()
    }

    /// Kill (if alive) and start node `id` again with the same command and data directory.
    pub fn restart(&mut self, id: NodeId) -> Result<()> {
        self.process(id)?.restart()
    }

    /// Resumes paused nodes and restarts exited ones: every started node running again.
    pub fn revive_all(&mut self) -> Result<()> {
        for p in self.procs.values_mut() {
            match p.state() {
                State::Paused => p.resume()?,
                State::Exited => p.restart()?,
                State::Running => {}
            }
        }
        Ok(())
    }

    /// Stops node `id` for good and removes it from the network and DNS (membership shrink).
    pub fn remove_node(&mut self, id: NodeId) -> Result<()> {
        if let Some(mut p) = self.procs.remove(&id) {
            p.kill()?;
        }
        self.net_mut().remove_host(id)
    }

    /// Adds a namespace for a new node and publishes it in DNS (membership growth); start it
    /// with [`Cluster::start`].
    pub fn add_node(&mut self) -> Result<NodeId> {
        let id = self.net_mut().add_host()?;
        self.net_mut().publish(id)?;
        Ok(id)
    }

    /// Every log's tail (nodes, then dnsmasq), for a failure report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut logs: Vec<(String, PathBuf)> = self
            .procs
            .iter()
            .map(|(id, p)| (id.to_string(), p.log_path().to_path_buf()))
            .collect();
        logs.push(("dnsmasq".into(), self.dir.join("dnsmasq.log")));
        for (name, path) in logs {
            out.push_str(&format!(
                "----- {name}: last {lines} lines of {} -----\n",
                path.display()
            ));
            out.push_str(&log_tail(&path, lines));
            out.push('\n');
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing {
            eprintln!(
                "chaos test {} failed; logs:\n{}",
                self.name,
                self.log_tails(TAIL_LINES)
            );
        }
        self.procs.clear();
        if let Some(mut net) = self.net.take() {
            net.teardown();
        }
        if failing || self.keep_dir {
            eprintln!("chaos test {}: kept {}", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
