//! The server side: the Raft transport and cluster admin services over a [`RaftNode`].

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::EntryPayload;
use pb::cluster_admin_server::ClusterAdmin;
use pb::raft_transport_server::RaftTransport;
use proto::raft_v1 as pb;
use tonic::{Request, Response, Status};

use super::{check_version, decode, encode};
use crate::node::{Admission, RaftNode};
use crate::types::{TypeConfig, PROTOCOL_VERSION, STATE_VERSION};
use crate::WriteError;

/// Serves Raft messages from peers.
#[derive(Clone)]
pub struct TransportService {
    node: RaftNode,
}

impl TransportService {
    /// A transport service delivering to `node`.
    pub fn new(node: RaftNode) -> Self {
        TransportService { node }
    }
}

fn reply(payload: Vec<u8>) -> Response<pb::RaftReply> {
    Response::new(pb::RaftReply {
        protocol_version: PROTOCOL_VERSION,
        payload,
    })
}

/// Refuses entries this build cannot apply, before they enter the log: an older node lags
/// (and says why) rather than diverging from newer ones.
fn check_entries(req: &AppendEntriesRequest<TypeConfig>, from: u64) -> Result<(), Status> {
    for e in &req.entries {
        if let EntryPayload::Normal(r) = &e.payload {
            if !r.is_supported() {
                tracing::warn!(from, index = e.log_id.index, command = %r, "refusing entries this node cannot apply");
                return Err(Status::failed_precondition(format!(
                    "entry {} carries command {r}; this node applies state version {STATE_VERSION} and older; upgrade this node",
                    e.log_id
                )));
            }
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        request: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        let req: AppendEntriesRequest<TypeConfig> = decode(&r.payload, "AppendEntries")?;
        check_entries(&req, r.from_node)?;
        let res = self.node.raft().append_entries(req).await;
        Ok(reply(encode(&res)?))
    }

    async fn vote(
        &self,
        request: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        let req: VoteRequest<u64> = decode(&r.payload, "Vote")?;
        let res = self.node.raft().vote(req).await;
        Ok(reply(encode(&res)?))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        let req = InstallSnapshotRequest::<TypeConfig> {
            vote: decode(&r.vote, "InstallSnapshot vote")?,
            meta: decode(&r.meta, "InstallSnapshot meta")?,
            offset: r.offset,
            data: r.data,
            done: r.done,
        };
        let res = self.node.raft().install_snapshot(req).await;
        Ok(reply(encode(&res)?))
    }

    async fn timeout_now(
        &self,
        request: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        match self
            .node
            .accept_timeout_now(r.from_node, r.term, r.last_log_index)
            .await
        {
            Ok(()) => Ok(Response::new(pb::TimeoutNowReply {
                protocol_version: PROTOCOL_VERSION,
            })),
            Err(e) => {
                tracing::info!(from = r.from_node, term = r.term, reason = %e, "refused leadership handover");
                Err(Status::failed_precondition(format!(
                    "leadership handover refused: {e}"
                )))
            }
        }
    }
}

/// Serves cluster administration (join, leave, status, election hand-over).
#[derive(Clone)]
pub struct AdminService {
    node: RaftNode,
}

impl AdminService {
    /// An admin service over `node`.
    pub fn new(node: RaftNode) -> Self {
        AdminService { node }
    }

    fn redirect(&self, leader_id: Option<u64>, leader_address: Option<String>) -> pb::Redirect {
        pb::Redirect {
            leader_id,
            leader_grpc_address: leader_address.unwrap_or_default(),
        }
    }
}

fn write_status(e: WriteError) -> Status {
    match e {
        WriteError::NotSupportedByCluster { .. } => Status::failed_precondition(e.to_string()),
        WriteError::Rejected(_) => Status::failed_precondition(e.to_string()),
        WriteError::NotCommitted(_) => Status::unavailable(e.to_string()),
        WriteError::Fatal(_) => Status::unavailable(e.to_string()),
        WriteError::ForwardToLeader { .. } => Status::unavailable(e.to_string()),
    }
}

#[tonic::async_trait]
impl ClusterAdmin for AdminService {
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        let member = r
            .member
            .ok_or_else(|| Status::invalid_argument("join request without member"))?;
        let member = crate::node::member_from_pb(member)?;
        tracing::info!(node_id = member.node_id, address = %member.grpc_address, "join request");
        let outcome = match self.node.admit(member).await {
            Ok(Admission { leader_id, voter }) => {
                pb::join_reply::Outcome::Joined(pb::Joined { leader_id, voter })
            }
            Err(WriteError::ForwardToLeader {
                leader_id,
                leader_address,
            }) => pb::join_reply::Outcome::Redirect(self.redirect(leader_id, leader_address)),
            Err(e) => return Err(write_status(e)),
        };
        Ok(Response::new(pb::JoinReply {
            protocol_version: PROTOCOL_VERSION,
            outcome: Some(outcome),
        }))
    }

    async fn leave(
        &self,
        request: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        tracing::info!(node_id = r.node_id, "leave request");
        if r.node_id == self.node.id() && self.node.is_leader() {
            // The leader leaving: hand over first, so the next leader removes it.
            let o = self
                .node
                .leave()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            return Ok(Response::new(pb::LeaveReply {
                protocol_version: PROTOCOL_VERSION,
                outcome: Some(pb::leave_reply::Outcome::Left(pb::Left {
                    leader_id: o.removed_by,
                })),
            }));
        }
        let outcome = match self.node.remove_node(r.node_id).await {
            Ok(leader_id) => pb::leave_reply::Outcome::Left(pb::Left { leader_id }),
            Err(WriteError::ForwardToLeader {
                leader_id,
                leader_address,
            }) => pb::leave_reply::Outcome::Redirect(self.redirect(leader_id, leader_address)),
            Err(e) => return Err(write_status(e)),
        };
        Ok(Response::new(pb::LeaveReply {
            protocol_version: PROTOCOL_VERSION,
            outcome: Some(outcome),
        }))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        check_version(request.into_inner().protocol_version)?;
        Ok(Response::new(
            self.node.metrics().await.to_pb(&self.node.local_state()),
        ))
    }

    async fn trigger_election(
        &self,
        request: Request<pb::TriggerElectionRequest>,
    ) -> Result<Response<pb::TriggerElectionReply>, Status> {
        let r = request.into_inner();
        check_version(r.protocol_version)?;
        tracing::info!(
            from = r.from_node,
            "leadership hand-over: starting an election"
        );
        self.node
            .raft()
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::unavailable(format!("cannot start an election: {e}")))?;
        Ok(Response::new(pb::TriggerElectionReply {
            protocol_version: PROTOCOL_VERSION,
        }))
    }
}
