//! [`RaftNode`]: the facade the `strata` binary uses to run one member of the Raft group.

mod convert;
mod handover;
mod leave;
mod membership;
mod metrics;
pub mod read;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{BasicNode, LogId, SnapshotPolicy};
use proto::raft_v1::cluster_admin_server::ClusterAdminServer;
use proto::raft_v1::raft_transport_server::RaftTransportServer;
use tonic::service::interceptor::InterceptedService;

pub use convert::{member_from_pb, member_to_pb};
pub use handover::{HandoverError, TimeoutNowRefusal};
pub use leave::LeaveOutcome;
pub use membership::Admission;
pub use metrics::{ClusterMetrics, NodeMetrics};

use crate::error::{RaftNodeError, WriteError};
use crate::network::auth::{ClusterSecret, ServerAuth};
use crate::network::client::NetworkFactory;
use crate::network::server::{AdminService, TransportService};
use crate::state::{ClusterState, Command, Member, Request, Response};
use crate::store::{self, SharedState};
use crate::types::{NodeId, Raft, TypeConfig};

/// Raft timing. The defaults suit busy 2-core machines (openraft's own 50 ms / 150-300 ms
/// would cause spurious elections under load and SIGSTOP nemeses) and still replace a lost
/// leader within 2 s.
///
/// How openraft 0.9 uses them: a follower whose leader is known stands for election only after
/// `election_max` (the leader lease) *plus* a random `election_min..election_max` have passed
/// since the last heartbeat, and refuses to vote for anyone else until the lease has passed.
/// With the defaults (250 ms, 400-800 ms) a follower stands 1.2-1.6 s after the last heartbeat,
/// which the "election 1-2 s" asks for, while a heartbeat may be late by almost five
/// intervals before anyone stands. Defaults of 1-2 s would make that 3-4 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Leader heartbeat interval (default 250 ms).
    pub heartbeat: Duration,
    /// Lower bound of the randomized election timeout (default 400 ms).
    pub election_min: Duration,
    /// Upper bound of the randomized election timeout (default 800 ms); also openraft's
    /// leader lease, during which followers refuse to vote for another candidate.
    pub election_max: Duration,
    /// Connect timeout to peers (default 1 s).
    pub connect: Duration,
    /// How long a join waits for the new learner to catch up (default 10 s).
    pub join: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            heartbeat: Duration::from_millis(250),
            election_min: Duration::from_millis(400),
            election_max: Duration::from_millis(800),
            connect: Duration::from_secs(1),
            join: Duration::from_secs(10),
        }
    }
}

/// How to run a node.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// This node's id (made once and kept in the data directory by the binary).
    pub node_id: NodeId,
    /// The node's data directory; the Raft database lives in `<data_dir>/raft`.
    pub data_dir: PathBuf,
    /// The gRPC address peers dial to reach this node (`--cluster.advertise-address`).
    pub advertise_address: String,
    /// The cluster secret every cluster RPC must carry.
    pub secret: ClusterSecret,
    /// Raft timing.
    pub timeouts: Timeouts,
    /// Build a snapshot (and purge the log before it) every this many applied entries.
    pub snapshot_every: u64,
    /// The most voters the cluster promotes learners to (default 5).
    pub max_voters: usize,
}

impl RaftNodeConfig {
    /// A configuration with default timing, snapshot policy and voter limit.
    pub fn new(
        node_id: NodeId,
        data_dir: PathBuf,
        advertise_address: String,
        secret: ClusterSecret,
    ) -> Self {
        RaftNodeConfig {
            node_id,
            data_dir,
            advertise_address,
            secret,
            timeouts: Timeouts::default(),
            snapshot_every: 1000,
            max_voters: 5,
        }
    }

    fn openraft_config(&self) -> Result<openraft::Config, RaftNodeError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let t = &self.timeouts;
        let cfg = openraft::Config {
            cluster_name: "strata".to_string(),
            heartbeat_interval: ms(t.heartbeat),
            election_timeout_min: ms(t.election_min),
            election_timeout_max: ms(t.election_max),
            install_snapshot_timeout: ms(t.election_max).max(2000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: self.snapshot_every.max(1),
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| RaftNodeError::Config(e.to_string()))
    }
}

struct Inner {
    config: RaftNodeConfig,
    raft: Raft,
    shared: SharedState,
    /// One membership change (or leadership handover) at a time from this node (see
    /// `membership.rs`).
    membership: tokio::sync::Mutex<()>,
    /// Since when this node leads, and in which term (see `handover.rs`).
    leader_since: handover::LeaderSince,
    /// Set while a handover is under way: writes are refused so that the successor's log stays
    /// as long as the leader's, or the leader would refuse it its vote.
    handing_over: std::sync::atomic::AtomicBool,
    /// Every client write holds a read guard while openraft has it; the handover takes the
    /// write guard to wait for those already in flight.
    writes: tokio::sync::RwLock<()>,
}

/// One running member of the Raft group. Cheap to clone.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

/// The transport service with authentication, ready to add to a tonic server.
pub type TransportServer = InterceptedService<RaftTransportServer<TransportService>, ServerAuth>;
/// The admin service with authentication, ready to add to a tonic server.
pub type AdminServer = InterceptedService<ClusterAdminServer<AdminService>, ServerAuth>;

impl RaftNode {
    /// Opens `<data_dir>/raft` (creating it) and starts Raft. A node whose log holds a
    /// membership resumes its cluster; a fresh one waits to be initialized or to join.
    pub async fn open(config: RaftNodeConfig) -> Result<Self, RaftNodeError> {
        // Refuse a bad configuration before touching the data directory.
        config.openraft_config()?;
        let dir = config.data_dir.join("raft");
        let (log, sm) = tokio::task::spawn_blocking(move || store::open(&dir))
            .await
            .map_err(|e| RaftNodeError::Raft {
                node_id: config.node_id,
                reason: format!("opening storage: {e}"),
            })??;
        let shared = sm.shared();
        let network = NetworkFactory::new(
            config.node_id,
            config.secret.clone(),
            config.timeouts.connect,
        );
        Self::start(config, log, sm, shared, network).await
    }

    /// Starts Raft over stores and a network the caller made: the seam through which the
    /// tier-0 simulation runs real nodes over an in-memory network (and wraps the stores to
    /// record what they apply). `shared` must be the state machine's [`SharedState`].
    /// [`RaftNode::open`] is this with the sled stores and the tonic network.
    pub async fn start<LS, SM, N>(
        config: RaftNodeConfig,
        log: LS,
        sm: SM,
        shared: SharedState,
        network: N,
    ) -> Result<Self, RaftNodeError>
    where
        LS: RaftLogStorage<TypeConfig>,
        SM: RaftStateMachine<TypeConfig>,
        N: RaftNetworkFactory<TypeConfig>,
    {
        let cfg = Arc::new(config.openraft_config()?);
        let raft = Raft::new(config.node_id, cfg, network, log, sm)
            .await
            .map_err(|e| RaftNodeError::Raft {
                node_id: config.node_id,
                reason: e.to_string(),
            })?;
        tracing::info!(node_id = config.node_id, address = %config.advertise_address, "raft node started");
        let leader_since = handover::track_leadership(&raft, config.node_id);
        Ok(RaftNode {
            inner: Arc::new(Inner {
                config,
                raft,
                shared,
                membership: tokio::sync::Mutex::new(()),
                leader_since,
                handing_over: std::sync::atomic::AtomicBool::new(false),
                writes: tokio::sync::RwLock::new(()),
            }),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.config.node_id
    }

    /// This node's advertised gRPC address.
    pub fn advertise_address(&self) -> &str {
        &self.inner.config.advertise_address
    }

    /// The node's configuration.
    pub fn config(&self) -> &RaftNodeConfig {
        &self.inner.config
    }

    /// The openraft handle (for waits on metrics and advanced use).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// The Raft transport service, authenticated: add it to the node's gRPC server.
    pub fn transport_server(&self) -> TransportServer {
        let auth = ServerAuth::new(self.inner.config.secret.clone(), "raft-transport");
        InterceptedService::new(
            RaftTransportServer::new(TransportService::new(self.clone())),
            auth,
        )
    }

    /// The cluster admin service, authenticated: add it to the node's gRPC server.
    pub fn admin_server(&self) -> AdminServer {
        let auth = ServerAuth::new(self.inner.config.secret.clone(), "cluster-admin");
        InterceptedService::new(
            ClusterAdminServer::new(AdminService::new(self.clone())),
            auth,
        )
    }

    /// Both services as tonic routes (`Server::builder().add_routes(..)`), for a gRPC server
    /// that serves nothing else; a node with more services adds the two servers itself.
    pub fn grpc_routes(&self) -> tonic::service::Routes {
        tonic::service::Routes::new(self.transport_server()).add_service(self.admin_server())
    }

    /// Whether the log holds a membership (the node bootstrapped or joined a cluster before).
    pub async fn is_initialized(&self) -> Result<bool, RaftNodeError> {
        self.inner
            .raft
            .is_initialized()
            .await
            .map_err(|e| self.fatal(e))
    }

    /// Bootstraps a new single-voter cluster of this node, then records `me` as its first
    /// member. Only when told to: refused if this node's log already holds a membership.
    pub async fn initialize(&self, me: Member) -> Result<(), RaftNodeError> {
        let id = self.id();
        if self.is_initialized().await? {
            return Err(RaftNodeError::AlreadyInitialized { node_id: id });
        }
        let nodes = BTreeMap::from([(id, BasicNode::new(self.advertise_address()))]);
        self.inner
            .raft
            .initialize(nodes)
            .await
            .map_err(|e| match e {
                RaftError::APIError(_) => RaftNodeError::AlreadyInitialized { node_id: id },
                RaftError::Fatal(f) => self.fatal(f),
            })?;
        let wait = self.inner.config.timeouts.election_max * 3;
        self.inner
            .raft
            .wait(Some(wait))
            .current_leader(id, "bootstrapped node becomes leader")
            .await
            .map_err(|e| RaftNodeError::Raft {
                node_id: id,
                reason: format!("no leadership after bootstrap: {e}"),
            })?;
        self.client_write(Command::AddMember {
            member: Member { node_id: id, ..me },
        })
        .await?;
        Ok(())
    }

    /// Commits a command through this node (which must be the leader). A state-machine
    /// rejection comes back as [`WriteError::Rejected`].
    pub async fn client_write(&self, command: Command) -> Result<Response, WriteError> {
        self.client_write_logged(command).await.map(|(_, r)| r)
    }

    /// [`RaftNode::client_write`], also returning the log id of the committed entry (checkers
    /// use it to find an acknowledged write on every node).
    pub async fn client_write_logged(
        &self,
        command: Command,
    ) -> Result<(LogId<NodeId>, Response), WriteError> {
        let handing_over = || {
            self.inner
                .handing_over
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        let refused = || {
            WriteError::NotCommitted(
                "this leader is handing over leadership; retry through the next leader".into(),
            )
        };
        if handing_over() {
            return Err(refused());
        }
        let _in_flight = self.inner.writes.read().await;
        if handing_over() {
            return Err(refused());
        }
        let request = Request::new(command);
        if let Some(min) = self.local_state().min_member_protocol() {
            if request.version > min {
                return Err(WriteError::NotSupportedByCluster {
                    command: request.command.name().to_string(),
                    needed: request.version,
                    cluster_min: min,
                });
            }
        }
        let r = self
            .inner
            .raft
            .client_write(request)
            .await
            .map_err(write_error)?;
        match r.data {
            Response::Rejected { reason } => Err(WriteError::Rejected(reason)),
            other => Ok((r.log_id, other)),
        }
    }

    /// A linearizable read: confirms leadership with a quorum, waits until the state machine has
    /// applied everything committed before the read, then reads. Only the leader answers.
    pub async fn read_state(&self) -> Result<ClusterState, WriteError> {
        self.inner
            .raft
            .ensure_linearizable()
            .await
            .map_err(|e| match e {
                RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
                    WriteError::ForwardToLeader {
                        leader_id: f.leader_id,
                        leader_address: f.leader_node.map(|n| n.addr),
                    }
                }
                RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
                    WriteError::NotCommitted(q.to_string())
                }
                RaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
            })?;
        Ok(self.local_state())
    }

    /// The state as applied on this node, without consulting the leader (may be stale).
    pub fn local_state(&self) -> ClusterState {
        self.inner.shared.read().state.clone()
    }

    /// Stops Raft (and its replication tasks). The gRPC server is the caller's to stop.
    pub async fn shutdown(&self) -> Result<(), RaftNodeError> {
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| RaftNodeError::Raft {
                node_id: self.id(),
                reason: format!("shutdown: {e}"),
            })
    }

    fn fatal(&self, e: impl std::fmt::Display) -> RaftNodeError {
        RaftNodeError::Raft {
            node_id: self.id(),
            reason: e.to_string(),
        }
    }
}

/// Maps openraft's write errors to Strata's.
pub(crate) fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> WriteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::ForwardToLeader {
            leader_id: f.leader_id,
            leader_address: f.leader_node.map(|n| n.addr),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            WriteError::NotCommitted(c.to_string())
        }
        RaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
    }
}

/// Milliseconds since the Unix epoch on this node's clock: only the leader reads it, to stamp
/// commands; apply never does.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
