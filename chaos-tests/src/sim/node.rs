//! One simulated node: Strata's real sled stores in a directory of its own, the state machine
//! wrapped to report what it applies, and a [`RaftNode`] over the simulated network. A crash
//! stops it and drops every handle; a restart reopens the same directory.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{BasicNode, LogId, ServerState, SnapshotMeta, StoredMembership};
use raft::store::{FlushMode, SharedState, StateMachineStore};
use raft::types::{Entry, StorageError};
use raft::{ClusterSecret, NodeId, RaftNode, RaftNodeConfig, Response, Timeouts, TypeConfig};
use tokio::sync::watch;
use tokio::time::Instant;

use super::invariants::{digest, Invariants};
use super::net::Router;
use super::phase::{phase_at, tick_ms, wait_for_free_phase};
use super::SimError;

/// The state machine with a tap: every applied entry and installed snapshot is reported.
pub struct RecordingSm {
    inner: StateMachineStore,
    shared: SharedState,
    node: NodeId,
    inv: Arc<Invariants>,
}

impl RaftStateMachine<TypeConfig> for RecordingSm {
    type SnapshotBuilder = <StateMachineStore as RaftStateMachine<TypeConfig>>::SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        self.inner.applied_state().await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        // One at a time, so that the state after every index can be compared across nodes.
        let mut out = Vec::new();
        for entry in entries {
            let copy = entry.clone();
            let mut r = self.inner.apply([entry]).await?;
            let response = r.pop().unwrap_or_default();
            let state = digest(&self.shared.read().state);
            self.inv.applied(self.node, &copy, &response, state);
            out.push(response);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.inner.get_snapshot_builder().await
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        self.inner.install_snapshot(meta, snapshot).await?;
        let state = digest(&self.shared.read().state);
        self.inv
            .snapshot_installed(self.node, meta.last_log_id, state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        self.inner.get_current_snapshot().await
    }
}

/// A running incarnation of a node.
pub struct Running {
    /// The node.
    pub node: RaftNode,
    alive: watch::Sender<bool>,
}

/// A simulated node, running or not.
pub struct SimNode {
    /// Its Raft id.
    pub id: NodeId,
    /// Its data directory (kept across crashes).
    pub dir: PathBuf,
    /// The running incarnation, if up.
    pub running: Option<Running>,
    /// How many times it was started.
    pub starts: u32,
    /// The tick phase of the running incarnation (see [`super::phase`]).
    pub phase: Option<u64>,
}

/// The gRPC address a node advertises (the router ignores it; it names the node in metrics).
pub fn address(id: NodeId) -> String {
    format!("node-{id}:10901")
}

/// Timing and snapshot policy of simulated nodes.
#[derive(Debug, Clone, Copy)]
pub struct NodeOptions {
    /// Raft timing (virtual time).
    pub timeouts: Timeouts,
    /// Snapshot every this many entries.
    pub snapshot_every: u64,
    /// The instant tick phases are counted from (the start of the run).
    pub origin: Instant,
}

impl SimNode {
    /// A node that has never run, with its directory under `root`.
    pub fn new(id: NodeId, root: &Path) -> SimNode {
        SimNode {
            id,
            dir: root.join(format!("node-{id}")),
            running: None,
            starts: 0,
            phase: None,
        }
    }

    /// Starts (or restarts) the node from its directory, waiting first (in virtual time) until
    /// its tick phase keeps clear of `taken`, the running nodes' phases (see [`super::phase`]).
    pub async fn start(
        &mut self,
        router: &Router,
        inv: &Arc<Invariants>,
        opts: NodeOptions,
        taken: &[u64],
    ) -> Result<(), SimError> {
        if self.running.is_some() {
            return Ok(());
        }
        wait_released(&self.dir).await?;
        let tick = tick_ms(&opts.timeouts);
        let now = phase_at(opts.origin, Instant::now(), tick);
        tokio::time::sleep(wait_for_free_phase(now, taken, tick)).await;
        let (log, sm) = raft::store::open_with(&self.dir, FlushMode::Inline)?;
        let shared = sm.shared();
        inv.node_opened(self.id, shared.read().last_applied);
        let sm = RecordingSm {
            inner: sm,
            shared: shared.clone(),
            node: self.id,
            inv: inv.clone(),
        };
        let (alive, alive_rx) = watch::channel(true);
        let secret = ClusterSecret::from_bytes(b"tier0-simulation-secret-0123456789")
            .map_err(|e| SimError::Setup(e.to_string()))?;
        let mut config = RaftNodeConfig::new(self.id, self.dir.clone(), address(self.id), secret);
        config.timeouts = opts.timeouts;
        config.snapshot_every = opts.snapshot_every;
        let network = router.factory(self.id, alive_rx.clone());
        let node = RaftNode::start(config, log, sm, shared, network).await?;
        router.attach(self.id, node.raft().clone());
        tokio::spawn(observe(node.clone(), inv.clone(), alive_rx));
        self.running = Some(Running { node, alive });
        self.starts += 1;
        self.phase = Some(phase_at(opts.origin, Instant::now(), tick));
        Ok(())
    }

    /// Stops the node abruptly: unreachable at once, its messages in flight dropped.
    pub async fn crash(&mut self, router: &Router) {
        let Some(r) = self.running.take() else { return };
        router.detach(self.id);
        let _ = r.alive.send(false);
        let stop = tokio::time::timeout(Duration::from_secs(30), r.node.shutdown()).await;
        if stop.is_err() {
            eprintln!("node {} did not shut down within 30 s (virtual)", self.id);
        }
    }

    /// The running node, if up.
    pub fn node(&self) -> Option<&RaftNode> {
        self.running.as_ref().map(|r| &r.node)
    }
}

/// Reports every leader a node's metrics show: its committed vote and its own leadership.
async fn observe(node: RaftNode, inv: Arc<Invariants>, mut alive: watch::Receiver<bool>) {
    let mut metrics = node.raft().metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            if m.vote.is_committed() {
                if let Some(l) = m.vote.leader_id().voted_for() {
                    inv.leader_seen(node.id(), m.vote.leader_id().get_term(), l);
                }
            }
            if m.state == ServerState::Leader {
                inv.leader_seen(node.id(), m.current_term, node.id());
            }
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = alive.wait_for(|a| !*a) => return,
        }
    }
}

/// Waits (in virtual time) until no handle of a previous incarnation holds the directory:
/// tasks of a stopped node may still be unwinding.
async fn wait_released(dir: &Path) -> Result<(), SimError> {
    if !dir.join("db").exists() {
        return Ok(());
    }
    for _ in 0..200 {
        let probe = std::panic::catch_unwind(|| sled::open(dir));
        match probe {
            Ok(Ok(db)) => {
                drop(db);
                return Ok(());
            }
            Ok(Err(e)) if raft::store::is_lock_held(&e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(e)) => return Err(SimError::Setup(format!("{}: {e}", dir.display()))),
            Err(_) => return Err(SimError::Setup(format!("{}: sled panicked", dir.display()))),
        }
    }
    Err(SimError::Setup(format!(
        "{} still locked 10 s (virtual) after its node stopped",
        dir.display()
    )))
}
