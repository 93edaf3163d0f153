//! The simulated network: an in-memory router between the nodes' openraft handles that loses,
//! delays, duplicates and partitions messages as a seeded RNG decides.
//!
//! Every request goes through the same JSON encoding as on the wire and is decoded afresh for
//! each delivery, so a duplicate is a true second copy. A lost reply is delivered first and its
//! answer dropped: the sender retries what the receiver already did (duplicates by retry).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use raft::types::Raft;
use raft::{NodeId, TypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use crate::rng::Rng;

/// The faults currently applied to the network.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Directed links that carry nothing: `(a, b)` blocks requests from `a` to `b` and the
    /// replies `a` would send back to `b`'s requests (a reply travels from answerer to asker).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Probability that a request is lost.
    pub loss: f64,
    /// Probability that a delivered request's reply is lost.
    pub reply_loss: f64,
    /// Probability that a delivered request is delivered again later.
    pub duplicate: f64,
    /// One-way delay range in virtual milliseconds.
    pub delay_ms: (u64, u64),
}

impl Faults {
    /// Whether anything at all is wrong with the network.
    pub fn is_healthy(&self) -> bool {
        *self == Faults::default()
    }
}

/// Message counts of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    /// Requests delivered (duplicates included).
    pub delivered: u64,
    /// Requests lost or blocked by a partition.
    pub lost: u64,
    /// Replies lost after delivery.
    pub replies_lost: u64,
    /// Extra late copies delivered.
    pub duplicated: u64,
    /// Requests to a node that was down.
    pub unreachable: u64,
}

struct State {
    nodes: BTreeMap<NodeId, Raft>,
    faults: Faults,
    rng: Rng,
    stats: NetStats,
}

/// What happens to one request.
enum Fate {
    Unreachable,
    Lost {
        after: Duration,
    },
    Deliver {
        delay: Duration,
        reply_delay: Duration,
        reply_lost: bool,
        duplicate_after: Option<Duration>,
    },
}

/// The shared router. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    state: Arc<Mutex<State>>,
}

impl Router {
    /// A router whose message fates come from `seed`.
    pub fn new(seed: u64) -> Router {
        Router {
            state: Arc::new(Mutex::new(State {
                nodes: BTreeMap::new(),
                faults: Faults::default(),
                rng: Rng::new(seed ^ 0x6e65_7477_6f72_6b00),
                stats: NetStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `id`'s running Raft reachable.
    pub fn attach(&self, id: NodeId, raft: Raft) {
        self.lock().nodes.insert(id, raft);
    }

    /// Makes `id` unreachable (crashed or stopped).
    pub fn detach(&self, id: NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Message counts so far.
    pub fn stats(&self) -> NetStats {
        self.lock().stats
    }

    /// A factory for `from`'s clients; its messages die with `alive` turning false.
    pub fn factory(&self, from: NodeId, alive: watch::Receiver<bool>) -> SimNetworkFactory {
        SimNetworkFactory {
            router: self.clone(),
            from,
            alive,
        }
    }

    fn fate(&self, from: NodeId, to: NodeId) -> Fate {
        let mut s = self.lock();
        let s = &mut *s;
        // Every hop costs at least a millisecond of virtual time: a sender that retries at once
        // after an error would otherwise spin without the clock ever moving.
        let ms = |rng: &mut Rng, (lo, hi): (u64, u64)| {
            Duration::from_millis(1 + lo + rng.below((hi.saturating_sub(lo) + 1) as usize) as u64)
        };
        if !s.nodes.contains_key(&to) {
            s.stats.unreachable += 1;
            return Fate::Unreachable;
        }
        let delay = ms(&mut s.rng, s.faults.delay_ms);
        if s.faults.cut.contains(&(from, to)) || s.rng.unit() < s.faults.loss {
            s.stats.lost += 1;
            // The sender learns of a loss only by its timeout; a short one keeps runs brisk.
            return Fate::Lost {
                after: delay + Duration::from_millis(100),
            };
        }
        let reply_delay = ms(&mut s.rng, s.faults.delay_ms);
        let reply_lost = s.rng.unit() < s.faults.reply_loss;
        let duplicate_after =
            (s.rng.unit() < s.faults.duplicate).then(|| delay + ms(&mut s.rng, (0, 2000)));
        Fate::Deliver {
            delay,
            reply_delay,
            reply_lost,
            duplicate_after,
        }
    }

    /// The target's Raft, if it is up and `from -> to` is not cut.
    fn reach(&self, from: NodeId, to: NodeId) -> Option<Raft> {
        let s = self.lock();
        if s.faults.cut.contains(&(from, to)) {
            return None;
        }
        s.nodes.get(&to).cloned()
    }

    fn count(&self, f: impl FnOnce(&mut NetStats)) {
        f(&mut self.lock().stats)
    }
}

/// openraft's network factory for one simulated node.
pub struct SimNetworkFactory {
    router: Router,
    from: NodeId,
    alive: watch::Receiver<bool>,
}

impl RaftNetworkFactory<TypeConfig> for SimNetworkFactory {
    type Network = SimPeer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> SimPeer {
        SimPeer {
            router: self.router.clone(),
            from: self.from,
            target,
            alive: self.alive.clone(),
        }
    }
}

/// openraft's client from one simulated node to another.
pub struct SimPeer {
    router: Router,
    from: NodeId,
    target: NodeId,
    alive: watch::Receiver<bool>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn net_err<E: std::error::Error>(msg: String) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&AnyError::error(msg)))
}

fn unreachable<E: std::error::Error>(msg: String) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(msg)))
}

impl SimPeer {
    /// Sends one request, applying its fate; `send` delivers a decoded copy to the target.
    async fn rpc<Req, Resp, E, F, Fut>(
        &mut self,
        kind: &'static str,
        req: &Req,
        option: &RPCOption,
        send: F,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize + DeserializeOwned + Send + 'static,
        Resp: Send + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Raft, Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RaftError<NodeId, E>>> + Send + 'static,
    {
        let bytes =
            serde_json::to_vec(req).map_err(|e| net_err(format!("cannot encode {kind}: {e}")))?;
        let mut alive = self.alive.clone();
        let ttl = option.hard_ttl();
        let exchange = self.exchange(kind, bytes, send);
        tokio::select! {
            r = tokio::time::timeout(ttl, exchange) => match r {
                Ok(r) => r,
                Err(_) => Err(net_err(format!("{kind} to node {}: no answer within {ttl:?}", self.target))),
            },
            // A crashed sender's messages die with it, so that its storage is released at once.
            _ = alive.wait_for(|a| !*a) => Err(net_err(format!("node {} is down", self.from))),
        }
    }

    async fn exchange<Req, Resp, E, F, Fut>(
        &self,
        kind: &'static str,
        bytes: Vec<u8>,
        send: F,
    ) -> RpcResult<Resp, E>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Send + 'static,
        E: std::error::Error + Send + 'static,
        F: Fn(Raft, Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, RaftError<NodeId, E>>> + Send + 'static,
    {
        let (from, to) = (self.from, self.target);
        let decode = move |b: &[u8]| {
            serde_json::from_slice::<Req>(b).map_err(|e| format!("cannot decode {kind}: {e}"))
        };
        match self.router.fate(from, to) {
            Fate::Unreachable => Err(unreachable(format!("node {to} is down"))),
            Fate::Lost { after } => {
                tokio::time::sleep(after).await;
                Err(net_err(format!("{kind} {from}->{to} lost")))
            }
            Fate::Deliver {
                delay,
                reply_delay,
                reply_lost,
                duplicate_after,
            } => {
                tokio::time::sleep(delay).await;
                let Some(target) = self.router.reach(from, to) else {
                    self.router.count(|s| s.lost += 1);
                    return Err(net_err(format!("{kind} {from}->{to} lost in flight")));
                };
                if let Some(after) = duplicate_after {
                    let (router, bytes, send) = (self.router.clone(), bytes.clone(), send.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        if let (Some(t), Ok(req)) = (router.reach(from, to), decode(&bytes)) {
                            router.count(|s| s.duplicated += 1);
                            let _ = send(t, req).await;
                        }
                    });
                }
                let req = decode(&bytes).map_err(net_err)?;
                self.router.count(|s| s.delivered += 1);
                let res = send(target, req).await;
                tokio::time::sleep(reply_delay).await;
                if reply_lost || self.is_cut_back() {
                    self.router.count(|s| s.replies_lost += 1);
                    // Like a lost request, a lost reply is noticed only by a timeout.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(net_err(format!("reply to {kind} {from}->{to} lost")));
                }
                match res {
                    Ok(r) => Ok(r),
                    // A stopped node does not answer; it does not report its own death.
                    Err(RaftError::Fatal(f)) => Err(unreachable(format!("node {to}: {f}"))),
                    Err(e) => Err(RPCError::RemoteError(RemoteError::new(to, e))),
                }
            }
        }
    }

    fn is_cut_back(&self) -> bool {
        self.router
            .lock()
            .faults
            .cut
            .contains(&(self.target, self.from))
    }
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.rpc(
            "append_entries",
            &rpc,
            &option,
            |raft: Raft, req| async move { raft.append_entries(req).await },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.rpc(
            "install_snapshot",
            &rpc,
            &option,
            |raft: Raft, req| async move { raft.install_snapshot(req).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.rpc("vote", &rpc, &option, |raft: Raft, req| async move {
            raft.vote(req).await
        })
        .await
    }
}
