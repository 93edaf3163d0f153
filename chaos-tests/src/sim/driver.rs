//! The driver of one seed: forms a cluster, runs the seeded schedule of client writes,
//! membership changes and faults, checks the invariants after every step, then heals and
//! requires convergence.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use raft::{Command, Member, NodeId, RaftNode, Request, Timeouts, WriteError, PROTOCOL_VERSION};
use tokio::time::{sleep, timeout, Instant};

use super::invariants::{digest, Figures, Invariants};
use super::net::{Faults, NetStats, Router};
use super::node::{address, NodeOptions, SimNode};
use super::workload::Workload;
use super::{SeedFailure, SimConfig, SimError};
use crate::rng::Rng;

/// What a seed's run did.
#[derive(Debug, Clone, Default)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// Steps run.
    pub steps: usize,
    /// Virtual time simulated.
    pub virtual_time: Duration,
    /// Wall time taken (set by [`super::run_seed`]).
    pub wall: Duration,
    /// Invariant figures.
    pub figures: Figures,
    /// Message counts.
    pub net: NetStats,
    /// Action counts.
    pub counts: Counts,
}

/// How often each kind of action ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Writes acknowledged.
    pub acked: u32,
    /// Writes refused by the state machine (committed, with a rejection).
    pub rejected: u32,
    /// Writes whose fate the client does not know (timeout, leader lost).
    pub unknown: u32,
    /// Crashes.
    pub crashes: u32,
    /// Restarts.
    pub restarts: u32,
    /// Nodes that joined.
    pub joins: u32,
    /// Nodes removed.
    pub removals: u32,
    /// Partitions made.
    pub partitions: u32,
}

/// Virtual epoch for command timestamps (ms).
const EPOCH_MS: i64 = 1_700_000_000_000;
/// How long a client waits for one write (virtual).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an admin call (join, remove, promote) may take (virtual).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

enum WriteResult {
    Acked(openraft::LogId<NodeId>, raft::Response),
    Rejected,
    Unknown,
}

struct Sim {
    seed: u64,
    cfg: SimConfig,
    rng: Rng,
    dir: tempfile::TempDir,
    router: Router,
    inv: Arc<Invariants>,
    nodes: BTreeMap<NodeId, SimNode>,
    next_id: NodeId,
    /// Nodes that should end up members.
    members: BTreeSet<NodeId>,
    /// Nodes being removed (removal not yet confirmed).
    leaving: BTreeSet<NodeId>,
    wl: Workload,
    opts: NodeOptions,
    t0: Instant,
    /// The last actions: when (virtual seconds), what, how many times in a row.
    recent: VecDeque<(f64, String, u32)>,
    counts: Counts,
}

/// Runs one seed (inside a paused-clock runtime).
pub(super) async fn run(seed: u64, cfg: SimConfig) -> Result<SeedOutcome, SeedFailure> {
    let mut sim = Sim::new(seed, cfg).map_err(|e| setup_failure(seed, e))?;
    // A backstop for a hang inside a step: virtual time keeps running with Raft's timers.
    let budget = Duration::from_secs(60 * cfg.steps as u64 + 300);
    let result = match timeout(budget, sim.run_all()).await {
        Ok(r) => r,
        Err(_) => Err(sim.failure(
            None,
            vec![format!(
                "the run did not finish within {budget:?} (virtual): a step hangs"
            )],
        )),
    };
    for n in sim.nodes.values_mut() {
        n.crash(&sim.router).await;
    }
    result?;
    Ok(SeedOutcome {
        seed,
        steps: cfg.steps,
        virtual_time: sim.t0.elapsed(),
        wall: Duration::ZERO,
        figures: sim.inv.figures(),
        net: sim.router.stats(),
        counts: sim.counts,
    })
}

fn setup_failure(seed: u64, e: SimError) -> SeedFailure {
    SeedFailure {
        seed,
        step: None,
        violations: vec![e.to_string()],
        recent: Vec::new(),
    }
}

impl Sim {
    fn new(seed: u64, cfg: SimConfig) -> Result<Sim, SimError> {
        // tmpfs keeps sled's fsyncs cheap; the directories are dropped with the run.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("tier0-").tempdir_in(shm)
        } else {
            tempfile::Builder::new().prefix("tier0-").tempdir()
        }
        .map_err(|e| SimError::Setup(format!("temp dir: {e}")))?;
        let mut rng = Rng::new(seed);
        let t0 = Instant::now();
        let opts = NodeOptions {
            timeouts: Timeouts::default(),
            snapshot_every: [5, 10, 20, 1000][rng.below(4)],
            origin: t0,
        };
        Ok(Sim {
            seed,
            cfg,
            rng,
            dir,
            router: Router::new(seed),
            inv: Arc::new(Invariants::default()),
            nodes: BTreeMap::new(),
            next_id: 1,
            members: BTreeSet::new(),
            leaving: BTreeSet::new(),
            wl: Workload::default(),
            opts,
            t0,
            recent: VecDeque::new(),
            counts: Counts::default(),
        })
    }

    async fn run_all(&mut self) -> Result<(), SeedFailure> {
        if let Err(e) = self.setup().await {
            return Err(self.failure(None, vec![e.to_string()]));
        }
        for step in 0..self.cfg.steps {
            if let Err(e) = self.step().await {
                return Err(self.failure(Some(step), vec![e.to_string()]));
            }
            let pause = Duration::from_millis(self.rng.below(1500) as u64);
            sleep(pause).await;
            self.inv.check_acked(false);
            let v = self.inv.violations();
            if !v.is_empty() {
                return Err(self.failure(Some(step), v));
            }
        }
        self.heal_and_converge().await;
        self.inv.check_acked(true);
        let v = self.inv.violations();
        if !v.is_empty() {
            return Err(self.failure(None, v));
        }
        Ok(())
    }

    fn failure(&self, step: Option<usize>, violations: Vec<String>) -> SeedFailure {
        SeedFailure {
            seed: self.seed,
            step,
            violations,
            recent: self
                .recent
                .iter()
                .map(|(t, msg, n)| match n {
                    1 => format!("[{t:>7.2}s] {msg}"),
                    n => format!("[{t:>7.2}s] {msg} (x{n})"),
                })
                .collect(),
        }
    }

    fn log(&mut self, msg: String) {
        let t = self.t0.elapsed().as_secs_f64();
        if self.cfg.verbose {
            eprintln!("seed {}: [{t:>7.2}s] {msg}", self.seed);
        }
        // Retries in the heal loop repeat one line many times: keep it once, with a count, so
        // the actions before it stay in the report.
        match self.recent.back_mut() {
            Some((_, last, n)) if *last == msg => *n += 1,
            _ => self.recent.push_back((t, msg, 1)),
        }
        if self.recent.len() > 40 {
            self.recent.pop_front();
        }
    }

    fn now_ms(&self) -> i64 {
        EPOCH_MS + i64::try_from(self.t0.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn member(id: NodeId) -> Member {
        Member {
            node_id: id,
            grpc_address: address(id),
            http_address: format!("node-{id}:10902"),
            roles: BTreeSet::from([raft::Role::Store]),
            software_version: "tier0".into(),
            protocol_version: PROTOCOL_VERSION,
            joined_at_ms: 0,
        }
    }

    fn running(&self) -> BTreeMap<NodeId, RaftNode> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.node().map(|r| (*id, r.clone())))
            .collect()
    }

    /// The running node that leads the highest term, if any.
    fn leader(&self) -> Option<RaftNode> {
        self.running()
            .into_values()
            .filter(|n| n.raft().metrics().borrow().state == ServerState::Leader)
            .max_by_key(|n| n.raft().metrics().borrow().current_term)
    }

    async fn start(&mut self, id: NodeId) -> Result<(), SimError> {
        let root = self.dir.path().to_path_buf();
        let taken: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.id != id && n.running.is_some())
            .filter_map(|n| n.phase)
            .collect();
        let node = self
            .nodes
            .entry(id)
            .or_insert_with(|| SimNode::new(id, &root));
        node.start(&self.router, &self.inv, self.opts, &taken).await
    }

    async fn setup(&mut self) -> Result<(), SimError> {
        let n0 = 3 + self.rng.below(self.cfg.max_nodes.saturating_sub(2).max(1));
        self.start(1).await?;
        self.next_id = 2;
        let first = self
            .nodes
            .get(&1)
            .and_then(|n| n.node().cloned())
            .ok_or_else(|| SimError::Setup("node 1 did not start".into()))?;
        first.initialize(Self::member(1)).await?;
        self.members.insert(1);
        self.log(format!("bootstrapped node 1; {n0} nodes to form"));
        for _ in 1..n0 {
            let id = self.next_id;
            self.next_id += 1;
            self.start(id).await?;
            self.members.insert(id);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.admit(id).await {
                if Instant::now() > deadline {
                    return Err(SimError::Setup(format!(
                        "node {id} could not join a healthy cluster within 60 s"
                    )));
                }
                sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(())
    }

    /// Asks the leader to admit `id`; true once it is a member.
    async fn admit(&mut self, id: NodeId) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let r = timeout(ADMIN_TIMEOUT, leader.admit(Self::member(id))).await;
        let ok = matches!(r, Ok(Ok(_)));
        self.log(format!(
            "admit {id} via leader {}: {}",
            leader.id(),
            describe(&r)
        ));
        if ok {
            self.counts.joins += 1;
        }
        ok
    }

    async fn step(&mut self) -> Result<(), SimError> {
        match self.rng.below(100) {
            0..=39 => self.write_one().await,
            40..=46 => self.burst().await,
            47..=53 => self.partition(),
            54..=59 => {
                self.router.set_faults(Faults::default());
                self.log("network healed".into());
            }
            60..=64 => self.flaky(),
            65..=70 => self.crash().await,
            71..=77 => self.restart().await?,
            78..=81 => self.join().await?,
            82..=84 => self.remove().await,
            85..=86 => {
                if let Some(l) = self.leader() {
                    let r = timeout(ADMIN_TIMEOUT, l.promote_learners()).await;
                    self.log(format!("promote via {}: {}", l.id(), describe(&r)));
                }
            }
            87..=88 => {
                let ids: Vec<NodeId> = self.running().into_keys().collect();
                if let Some(id) = self.rng.pick(&ids).copied() {
                    if let Some(n) = self.running().get(&id) {
                        let _ = n.raft().trigger().snapshot().await;
                        self.log(format!("snapshot on {id}"));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn write_one(&mut self) {
        let running: Vec<NodeId> = self.running().into_keys().collect();
        let Some(at) = self.rng.pick(&running).copied() else {
            return;
        };
        let members: Vec<NodeId> = self.members.iter().copied().collect();
        let now = self.now_ms();
        let cmd = self.wl.next(&mut self.rng, now, &members);
        let r = client_write(self.running(), at, cmd.clone()).await;
        self.record_write(at, &cmd, r);
    }

    async fn burst(&mut self) {
        let running: Vec<NodeId> = self.running().into_keys().collect();
        let members: Vec<NodeId> = self.members.iter().copied().collect();
        let mut tasks = Vec::new();
        for _ in 0..2 + self.rng.below(3) {
            let Some(at) = self.rng.pick(&running).copied() else {
                return;
            };
            let now = self.now_ms();
            let cmd = self.wl.next(&mut self.rng, now, &members);
            let nodes = self.running();
            let c = cmd.clone();
            tasks.push((at, cmd, tokio::spawn(client_write(nodes, at, c))));
        }
        for (at, cmd, t) in tasks {
            let r = t.await.unwrap_or(WriteResult::Unknown);
            self.record_write(at, &cmd, r);
        }
    }

    fn record_write(&mut self, at: NodeId, cmd: &Command, r: WriteResult) {
        let what = match &r {
            WriteResult::Acked(log_id, resp) => {
                self.inv.acked(*log_id, &Request::new(cmd.clone()));
                self.wl.acked(cmd, resp);
                self.counts.acked += 1;
                format!("acked at {log_id}")
            }
            WriteResult::Rejected => {
                self.counts.rejected += 1;
                "rejected".to_string()
            }
            WriteResult::Unknown => {
                self.counts.unknown += 1;
                "unknown".to_string()
            }
        };
        self.log(format!("write {} via {at}: {what}", cmd.name()));
    }

    fn partition(&mut self) {
        let mut ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.rng.shuffle(&mut ids);
        let mut cut = BTreeSet::new();
        let both = |cut: &mut BTreeSet<(NodeId, NodeId)>, a: &[NodeId], b: &[NodeId]| {
            for x in a {
                for y in b {
                    cut.insert((*x, *y));
                    cut.insert((*y, *x));
                }
            }
        };
        let kind = match self.rng.below(4) {
            0 => {
                let (one, rest) = ids.split_at(1.min(ids.len()));
                both(&mut cut, one, rest);
                format!("isolate {one:?}")
            }
            1 => {
                let k = 1 + self.rng.below((ids.len().saturating_sub(1) / 2).max(1));
                let (minority, majority) = ids.split_at(k.min(ids.len()));
                both(&mut cut, minority, majority);
                format!("split {minority:?} | {majority:?}")
            }
            2 if ids.len() >= 2 => {
                cut.insert((ids[0], ids[1]));
                format!("one-way {} -/-> {}", ids[0], ids[1])
            }
            _ => {
                // A bridge: two halves that only one node reaches both of.
                let mid = ids.len() / 2;
                let bridge = ids.get(mid).copied();
                let a: Vec<NodeId> = ids[..mid].to_vec();
                let b: Vec<NodeId> = ids[mid..]
                    .iter()
                    .copied()
                    .filter(|x| Some(*x) != bridge)
                    .collect();
                both(&mut cut, &a, &b);
                format!("bridge {a:?} <-{bridge:?}-> {b:?}")
            }
        };
        let mut f = self.router.faults();
        f.cut = cut;
        self.router.set_faults(f);
        self.counts.partitions += 1;
        self.log(format!("partition: {kind}"));
    }

    fn flaky(&mut self) {
        let mut f = self.router.faults();
        f.loss = [0.0, 0.02, 0.1, 0.3][self.rng.below(4)];
        f.reply_loss = [0.0, 0.05, 0.2][self.rng.below(3)];
        f.duplicate = [0.0, 0.05, 0.2][self.rng.below(3)];
        f.delay_ms = [(0, 2), (1, 20), (10, 200), (100, 800)][self.rng.below(4)];
        self.log(format!(
            "network: loss {} reply loss {} duplicate {} delay {:?} ms",
            f.loss, f.reply_loss, f.duplicate, f.delay_ms
        ));
        self.router.set_faults(f);
    }

    async fn crash(&mut self) {
        let ids: Vec<NodeId> = self.running().into_keys().collect();
        let Some(id) = self.rng.pick(&ids).copied() else {
            return;
        };
        if let Some(n) = self.nodes.get_mut(&id) {
            n.crash(&self.router).await;
        }
        self.counts.crashes += 1;
        self.log(format!("crash {id}"));
    }

    async fn restart(&mut self) -> Result<(), SimError> {
        let down: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.running.is_none())
            .map(|(id, _)| *id)
            .collect();
        let Some(id) = self.rng.pick(&down).copied() else {
            return Ok(());
        };
        self.start(id).await?;
        self.counts.restarts += 1;
        self.log(format!("restart {id}"));
        Ok(())
    }

    async fn join(&mut self) -> Result<(), SimError> {
        if self.members.len() + self.leaving.len() >= self.cfg.max_nodes {
            return Ok(());
        }
        let id = self.next_id;
        self.next_id += 1;
        self.start(id).await?;
        self.members.insert(id);
        self.admit(id).await;
        Ok(())
    }

    async fn remove(&mut self) {
        if self.members.len() <= 3 {
            return;
        }
        let ids: Vec<NodeId> = self.members.iter().copied().collect();
        let Some(id) = self.rng.pick(&ids).copied() else {
            return;
        };
        self.members.remove(&id);
        self.leaving.insert(id);
        self.try_remove(id).await;
    }

    /// Asks the leader to remove `id`; once done, the node stops and its directory goes.
    async fn try_remove(&mut self, id: NodeId) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let r = timeout(ADMIN_TIMEOUT, leader.remove_node(id)).await;
        self.log(format!("remove {id} via {}: {}", leader.id(), describe(&r)));
        if !matches!(r, Ok(Ok(_))) {
            return false;
        }
        self.counts.removals += 1;
        self.leaving.remove(&id);
        if let Some(mut n) = self.nodes.remove(&id) {
            n.crash(&self.router).await;
            let _ = std::fs::remove_dir_all(&n.dir);
        }
        true
    }

    /// Heals the network, restarts every node, finishes membership changes and waits until
    /// every node holds the same state; records a violation if it does not happen in time.
    async fn heal_and_converge(&mut self) {
        self.router.set_faults(Faults::default());
        let down: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.running.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in down {
            if let Err(e) = self.start(id).await {
                self.inv
                    .violate(format!("node {id} would not restart: {e}"));
                return;
            }
        }
        self.log("healed: network whole, every node up".into());
        let deadline = Instant::now() + self.cfg.converge_within;
        while Instant::now() < deadline {
            for id in self.leaving.clone() {
                self.try_remove(id).await;
            }
            if let Some(l) = self.leader() {
                let want_in: Vec<NodeId> = self.members.iter().copied().collect();
                for id in want_in {
                    let state = l.local_state();
                    let m = l.raft().metrics().borrow().membership_config.clone();
                    let voter = m.membership().voter_ids().any(|v| v == id);
                    if !voter || !state.members.contains_key(&id) {
                        self.admit(id).await;
                    }
                }
            }
            if self.divergence().is_none() {
                return;
            }
            sleep(Duration::from_millis(250)).await;
        }
        if let Some(d) = self.divergence() {
            self.inv.violate(format!(
                "no convergence within {:?} of healing: {d}; cluster: {}",
                self.cfg.converge_within,
                self.cluster_view()
            ));
        }
    }

    /// Every running node's tick phase, role, vote, last log index, leader, applied index and
    /// membership, for a failure report.
    fn cluster_view(&self) -> String {
        let lines: Vec<String> = self
            .running()
            .iter()
            .map(|(id, n)| {
                let m = n.raft().metrics().borrow().clone();
                let phase = self.nodes.get(id).and_then(|s| s.phase);
                format!(
                    "node {id}: tick phase {phase:?} ms, {:?} vote {} last log {:?} leader {:?} applied {:?} membership {} at {:?}",
                    m.state,
                    m.vote,
                    m.last_log_index,
                    m.current_leader,
                    m.last_applied.map(|l| l.to_string()),
                    m.membership_config.membership(),
                    m.membership_config.log_id().as_ref().map(|l| l.to_string()),
                )
            })
            .collect();
        lines.join("; ")
    }

    /// Why the cluster has not converged, or `None` when it has: every member up, one leader,
    /// the same applied index, state and membership everywhere, members = voters = the member
    /// table = the nodes the schedule meant to keep.
    fn divergence(&self) -> Option<String> {
        if !self.leaving.is_empty() {
            return Some(format!("removal of {:?} not finished", self.leaving));
        }
        let running = self.running();
        let ids: BTreeSet<NodeId> = running.keys().copied().collect();
        if ids != self.members {
            return Some(format!("running {ids:?}, members {:?}", self.members));
        }
        let leader = self.leader()?;
        let lm = leader.raft().metrics().borrow().clone();
        let want_state = leader.local_state();
        let voters: BTreeSet<NodeId> = lm.membership_config.membership().voter_ids().collect();
        let nodes: BTreeSet<NodeId> = lm
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        let table: BTreeSet<NodeId> = want_state.members.keys().copied().collect();
        if voters != self.members || nodes != self.members || table != self.members {
            return Some(format!(
                "voters {voters:?}, raft nodes {nodes:?}, member table {table:?}, wanted {:?}",
                self.members
            ));
        }
        let mut lines = Vec::new();
        for (id, n) in &running {
            let m = n.raft().metrics().borrow().clone();
            let s = n.local_state();
            if m.last_applied != lm.last_applied
                || s != want_state
                || m.membership_config != lm.membership_config
                || m.current_leader != Some(leader.id())
            {
                lines.push(format!(
                    "node {id}: {:?} term {} leader {:?} applied {:?} state {:x} membership {}",
                    m.state,
                    m.current_term,
                    m.current_leader,
                    m.last_applied.map(|l| l.to_string()),
                    digest(&s),
                    m.membership_config.membership()
                ));
            }
        }
        if lines.is_empty() {
            None
        } else {
            Some(format!(
                "leader {} applied {:?}; differing: {}",
                leader.id(),
                lm.last_applied.map(|l| l.to_string()),
                lines.join("; ")
            ))
        }
    }
}

/// One client write: sent to `at`, following leader redirects like a real client.
async fn client_write(
    nodes: BTreeMap<NodeId, RaftNode>,
    mut at: NodeId,
    cmd: Command,
) -> WriteResult {
    for _ in 0..4 {
        let Some(node) = nodes.get(&at) else {
            return WriteResult::Unknown;
        };
        match timeout(WRITE_TIMEOUT, node.client_write_logged(cmd.clone())).await {
            Ok(Ok((log_id, resp))) => return WriteResult::Acked(log_id, resp),
            Ok(Err(WriteError::Rejected(_))) => return WriteResult::Rejected,
            Ok(Err(WriteError::ForwardToLeader {
                leader_id: Some(l), ..
            })) if l != at => at = l,
            _ => return WriteResult::Unknown,
        }
    }
    WriteResult::Unknown
}

fn describe<T, E: std::fmt::Display>(
    r: &Result<Result<T, E>, tokio::time::error::Elapsed>,
) -> String {
    match r {
        Ok(Ok(_)) => "ok".into(),
        Ok(Err(e)) => format!("failed: {e}"),
        Err(_) => "timed out".into(),
    }
}
