//! The client side: openraft's `RaftNetworkFactory` over tonic, and [`AdminClient`] for join,
//! leave, status and election hand-over.

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
use pb::cluster_admin_client::ClusterAdminClient;
use pb::raft_transport_client::RaftTransportClient;
use proto::raft_v1 as pb;
use tonic::codegen::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::auth::{ClientAuth, ClusterSecret};
use crate::error::AdminError;
use crate::state::Member;
use crate::types::{NodeId, TypeConfig, PROTOCOL_VERSION};

type Authed = InterceptedService<Channel, ClientAuth>;

/// A lazily connecting channel to `address` (`host:port` or a URL).
pub(crate) fn channel(address: &str, connect_timeout: Duration) -> Result<Channel, String> {
    let url = if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    let ep = Endpoint::from_shared(url).map_err(|e| e.to_string())?;
    Ok(ep
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Makes openraft's per-peer clients.
#[derive(Clone, Debug)]
pub struct NetworkFactory {
    node_id: NodeId,
    secret: ClusterSecret,
    connect_timeout: Duration,
}

impl NetworkFactory {
    /// A factory whose clients present `secret` and identify as `node_id`.
    pub fn new(node_id: NodeId, secret: ClusterSecret, connect_timeout: Duration) -> Self {
        NetworkFactory {
            node_id,
            secret,
            connect_timeout,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let client = channel(&node.addr, self.connect_timeout)
            .map(|ch| RaftTransportClient::with_interceptor(ch, ClientAuth::new(&self.secret)));
        PeerClient {
            from: self.node_id,
            target,
            node: node.clone(),
            client,
        }
    }
}

/// openraft's client for one peer.
pub struct PeerClient {
    from: NodeId,
    target: NodeId,
    node: BasicNode,
    client: Result<RaftTransportClient<Authed>, String>,
}

type RpcErr<E = RaftError<NodeId>> = RPCError<NodeId, BasicNode, E>;

impl PeerClient {
    fn client<E: std::error::Error>(&self) -> Result<RaftTransportClient<Authed>, RpcErr<E>> {
        self.client.clone().map_err(|e| {
            RPCError::Unreachable(Unreachable::new(&AnyError::error(format!(
                "bad address {:?} for node {}: {e}",
                self.node.addr, self.target
            ))))
        })
    }

    fn status_error<E: std::error::Error>(&self, s: Status) -> RpcErr<E> {
        let err = AnyError::error(format!(
            "node {} at {}: {}: {}",
            self.target,
            self.node.addr,
            s.code(),
            s.message()
        ));
        match s.code() {
            Code::Unavailable => RPCError::Unreachable(Unreachable::new(&err)),
            Code::Unauthenticated | Code::FailedPrecondition | Code::Unimplemented => {
                tracing::warn!(target_node = self.target, address = %self.node.addr, code = %s.code(), message = s.message(), "peer refused Raft RPC");
                RPCError::Network(NetworkError::new(&err))
            }
            _ => RPCError::Network(NetworkError::new(&err)),
        }
    }

    fn decode_reply<T, E>(&self, reply: pb::RaftReply) -> Result<T, RpcErr<RaftError<NodeId, E>>>
    where
        T: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let res: Result<T, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.payload).map_err(|e| {
                RPCError::Network(NetworkError::new(&AnyError::error(format!(
                    "undecodable reply from node {}: {e}",
                    self.target
                ))))
            })?;
        res.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    fn request(&self, payload: Vec<u8>) -> pb::RaftRequest {
        pb::RaftRequest {
            protocol_version: PROTOCOL_VERSION,
            from_node: self.from,
            payload,
        }
    }

    fn encode<E: std::error::Error>(v: &impl serde::Serialize) -> Result<Vec<u8>, RpcErr<E>> {
        serde_json::to_vec(v).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

async fn with_ttl<T>(
    ttl: Duration,
    f: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(ttl, f).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {ttl:?}"
        ))),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        let mut c = self.client()?;
        let req = self.request(Self::encode(&rpc)?);
        let reply = with_ttl(option.hard_ttl(), c.append_entries(req))
            .await
            .map_err(|s| self.status_error(s))?;
        self.decode_reply(reply.into_inner())
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<RaftError<NodeId, InstallSnapshotError>>>
    {
        let mut c = self.client()?;
        let req = pb::InstallSnapshotRequest {
            protocol_version: PROTOCOL_VERSION,
            from_node: self.from,
            vote: Self::encode(&rpc.vote)?,
            meta: Self::encode(&rpc.meta)?,
            offset: rpc.offset,
            data: rpc.data,
            done: rpc.done,
        };
        let reply = with_ttl(option.hard_ttl(), c.install_snapshot(req))
            .await
            .map_err(|s| self.status_error(s))?;
        self.decode_reply(reply.into_inner())
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        let mut c = self.client()?;
        let req = self.request(Self::encode(&rpc)?);
        let reply = with_ttl(option.hard_ttl(), c.vote(req))
            .await
            .map_err(|s| self.status_error(s))?;
        self.decode_reply(reply.into_inner())
    }
}

/// The outcome of a committed join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    /// The leader that admitted the node.
    pub leader_id: NodeId,
    /// The leader's gRPC address (the last address the request went to).
    pub leader_address: String,
    /// Whether the node was promoted to voter.
    pub voter: bool,
}

/// A client of a peer's cluster admin service.
#[derive(Clone)]
pub struct AdminClient {
    address: String,
    client: ClusterAdminClient<Authed>,
    timeout: Duration,
}

/// Maps a refused cluster call to the error callers branch on.
fn admin_error(address: &str, s: Status) -> AdminError {
    let (address, message) = (address.to_string(), s.message().to_string());
    match s.code() {
        Code::Unauthenticated => AdminError::Unauthenticated { address, message },
        Code::FailedPrecondition if message.contains("protocol v") => {
            AdminError::Version { address, message }
        }
        code => AdminError::Rpc {
            address,
            message: format!("{code}: {message}"),
        },
    }
}

/// Asks the voter at `address` to campaign now: a leaving leader's handover (Raft's
/// TimeoutNow), sent on the authenticated Raft transport. A refusal comes back as
/// [`AdminError::Rpc`] carrying the receiver's reason.
pub(crate) async fn timeout_now(
    address: &str,
    secret: &ClusterSecret,
    timeout: Duration,
    req: pb::TimeoutNowRequest,
) -> Result<(), AdminError> {
    let ch = channel(address, timeout).map_err(|reason| AdminError::Address {
        address: address.to_string(),
        reason,
    })?;
    let mut c = RaftTransportClient::with_interceptor(ch, ClientAuth::new(secret));
    with_ttl(timeout, c.timeout_now(req))
        .await
        .map_err(|s| admin_error(address, s))?;
    Ok(())
}

/// How many leader redirects a join or leave follows.
const MAX_HOPS: usize = 3;

impl AdminClient {
    /// A client of the node at `address` (connects on first use). `timeout` bounds each call;
    /// a join waits for the new node's log to catch up, so give it several seconds.
    pub fn new(
        address: &str,
        secret: &ClusterSecret,
        timeout: Duration,
    ) -> Result<Self, AdminError> {
        let ch = channel(address, timeout.min(Duration::from_secs(2))).map_err(|reason| {
            AdminError::Address {
                address: address.to_string(),
                reason,
            }
        })?;
        Ok(AdminClient {
            address: address.to_string(),
            client: ClusterAdminClient::with_interceptor(ch, ClientAuth::new(secret)),
            timeout,
        })
    }

    /// The address this client calls.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn error(&self, s: Status) -> AdminError {
        admin_error(&self.address, s)
    }

    /// The peer's view of the cluster.
    pub async fn status(&mut self) -> Result<pb::StatusReply, AdminError> {
        let req = pb::StatusRequest {
            protocol_version: PROTOCOL_VERSION,
        };
        let r = with_ttl(self.timeout, self.client.status(req))
            .await
            .map_err(|s| self.error(s))?;
        Ok(r.into_inner())
    }

    /// Asks the peer to start an election now (a leaving leader's hand-over).
    pub async fn trigger_election(&mut self, from: NodeId) -> Result<(), AdminError> {
        let req = pb::TriggerElectionRequest {
            protocol_version: PROTOCOL_VERSION,
            from_node: from,
        };
        with_ttl(self.timeout, self.client.trigger_election(req))
            .await
            .map_err(|s| self.error(s))?;
        Ok(())
    }

    /// Asks the cluster through the peer at `address` to admit `member`, following redirects
    /// to the leader. Retry later on [`AdminError::NoLeader`] (an election is in progress).
    pub async fn join(
        address: &str,
        secret: &ClusterSecret,
        timeout: Duration,
        member: &Member,
    ) -> Result<JoinOutcome, AdminError> {
        let mut addr = address.to_string();
        for _ in 0..=MAX_HOPS {
            let mut c = AdminClient::new(&addr, secret, timeout)?;
            let req = pb::JoinRequest {
                protocol_version: PROTOCOL_VERSION,
                member: Some(crate::node::member_to_pb(member)),
            };
            let r = with_ttl(timeout, c.client.join(req))
                .await
                .map_err(|s| c.error(s))?
                .into_inner();
            match r.outcome {
                Some(pb::join_reply::Outcome::Joined(j)) => {
                    return Ok(JoinOutcome {
                        leader_id: j.leader_id,
                        leader_address: addr,
                        voter: j.voter,
                    })
                }
                Some(pb::join_reply::Outcome::Redirect(rd))
                    if !rd.leader_grpc_address.is_empty() =>
                {
                    addr = rd.leader_grpc_address;
                }
                _ => {
                    return Err(AdminError::NoLeader {
                        address: addr,
                        hops: 0,
                    })
                }
            }
        }
        Err(AdminError::NoLeader {
            address: addr,
            hops: MAX_HOPS,
        })
    }

    /// Asks the cluster through the peer at `address` to remove `node_id`, following redirects.
    /// Returns the id of the leader that committed the removal.
    pub async fn leave(
        address: &str,
        secret: &ClusterSecret,
        timeout: Duration,
        node_id: NodeId,
    ) -> Result<NodeId, AdminError> {
        let mut addr = address.to_string();
        for _ in 0..=MAX_HOPS {
            let mut c = AdminClient::new(&addr, secret, timeout)?;
            let req = pb::LeaveRequest {
                protocol_version: PROTOCOL_VERSION,
                node_id,
            };
            let r = with_ttl(timeout, c.client.leave(req))
                .await
                .map_err(|s| c.error(s))?
                .into_inner();
            match r.outcome {
                Some(pb::leave_reply::Outcome::Left(l)) => return Ok(l.leader_id),
                Some(pb::leave_reply::Outcome::Redirect(rd))
                    if !rd.leader_grpc_address.is_empty() =>
                {
                    addr = rd.leader_grpc_address;
                }
                _ => {
                    return Err(AdminError::NoLeader {
                        address: addr,
                        hops: 0,
                    })
                }
            }
        }
        Err(AdminError::NoLeader {
            address: addr,
            hops: MAX_HOPS,
        })
    }
}
