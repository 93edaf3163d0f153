//! How an assignee's job commands (lease renewals, completions) reach the Raft leader: directly
//! when this node leads, else through the leader's `JobReports` service. The leader re-stamps
//! the command's times with its own clock, so a worker's skewed clock cannot stretch a lease.

use std::time::Duration;

use raft::network::auth::{ClientAuth, ServerAuth};
use raft::{now_ms, ClusterSecret, Command, RaftNode, Response, WriteError, PROTOCOL_VERSION};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// The generated job report protocol (`strata.jobs.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("strata.jobs.v1");
}

use pb::job_reports_client::JobReportsClient;
use pb::job_reports_server::{JobReports, JobReportsServer};

/// Why a report did not get an answer from the state machine (worth retrying).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No leader is known, or it cannot be reached.
    #[error("no leader reachable: {0}")]
    NoLeader(String),
    /// The leader did not commit it.
    #[error("not committed: {0}")]
    NotCommitted(String),
}

/// The command with its times taken from this (the leader's) clock: `now_ms` is now, and a
/// renewal's lease end keeps its length relative to the sender's stamp. Only job commands an
/// assignee may send are accepted.
fn restamp(command: Command) -> Result<Command, String> {
    let now = now_ms();
    match command {
        Command::RenewLease {
            token,
            node_id,
            lease_expiry_ms,
            now_ms: sent,
        } => Ok(Command::RenewLease {
            token,
            node_id,
            lease_expiry_ms: now.saturating_add(lease_expiry_ms.saturating_sub(sent).max(0)),
            now_ms: now,
        }),
        Command::CompleteJob {
            token,
            node_id,
            result,
            ..
        } => Ok(Command::CompleteJob {
            token,
            node_id,
            result,
            now_ms: now,
        }),
        other => Err(format!(
            "command {} is not a job report (renew_lease or complete_job)",
            other.name()
        )),
    }
}

/// Commits `command` on this node, which must lead; a rejection is an answer, not an error.
async fn commit_here(node: &RaftNode, command: Command) -> Result<Response, ReportError> {
    match node.client_write(command).await {
        Ok(r) => Ok(r),
        Err(WriteError::Rejected(reason)) => Ok(Response::Rejected { reason }),
        Err(e @ WriteError::ForwardToLeader { .. }) => Err(ReportError::NoLeader(e.to_string())),
        Err(e) => Err(ReportError::NotCommitted(e.to_string())),
    }
}

/// Serves job reports from other members.
#[derive(Clone)]
pub struct ReportService {
    node: RaftNode,
}

impl ReportService {
    /// The service, authenticated with the cluster secret, ready for the gRPC server.
    pub fn server(
        node: RaftNode,
        secret: ClusterSecret,
    ) -> InterceptedService<JobReportsServer<Self>, ServerAuth> {
        InterceptedService::new(
            JobReportsServer::new(ReportService { node }),
            ServerAuth::new(secret, "job-reports"),
        )
    }
}

#[tonic::async_trait]
impl JobReports for ReportService {
    async fn report(
        &self,
        request: Request<pb::ReportRequest>,
    ) -> Result<tonic::Response<pb::ReportReply>, Status> {
        let r = request.into_inner();
        if r.protocol_version == 0 || r.protocol_version > PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "job report speaks protocol v{}, this node speaks v{PROTOCOL_VERSION}",
                r.protocol_version
            )));
        }
        let command: Command = serde_json::from_str(&r.command_json)
            .map_err(|e| Status::invalid_argument(format!("job report command: {e}")))?;
        let command = restamp(command).map_err(Status::invalid_argument)?;
        let response = commit_here(&self.node, command)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(pb::ReportReply {
            protocol_version: PROTOCOL_VERSION,
            response_json: serde_json::to_string(&response)
                .map_err(|e| Status::internal(e.to_string()))?,
        }))
    }
}

/// Sends job reports to whichever node leads.
#[derive(Clone)]
pub struct Reporter {
    /// The local node.
    pub node: RaftNode,
    /// The cluster secret.
    pub secret: ClusterSecret,
}

impl Reporter {
    /// Commits `command` through the leader; `Ok(Response::Rejected)` when the state machine
    /// refused it (the token is stale or its lease over), `Err` when nobody answered.
    pub async fn send(&self, command: Command) -> Result<Response, ReportError> {
        let m = self.node.metrics().await;
        let Some(leader) = m.leader_id else {
            return Err(ReportError::NoLeader("no leader elected".into()));
        };
        if leader == self.node.id() {
            let command = restamp(command).map_err(ReportError::NotCommitted)?;
            return commit_here(&self.node, command).await;
        }
        let addr = m
            .nodes
            .iter()
            .find(|n| n.node_id == leader)
            .map(|n| n.address.clone())
            .ok_or_else(|| ReportError::NoLeader(format!("address of leader {leader} unknown")))?;
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ReportError::NoLeader(e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let mut client = JobReportsClient::with_interceptor(ch, ClientAuth::new(&self.secret));
        let json = serde_json::to_string(&command)
            .map_err(|e| ReportError::NotCommitted(e.to_string()))?;
        let reply = client
            .report(pb::ReportRequest {
                protocol_version: PROTOCOL_VERSION,
                command_json: json,
            })
            .await
            .map_err(|s| ReportError::NotCommitted(format!("{}: {}", s.code(), s.message())))?
            .into_inner();
        serde_json::from_str(&reply.response_json)
            .map_err(|e| ReportError::NotCommitted(format!("leader's reply: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::FencingToken;

    fn token() -> FencingToken {
        FencingToken {
            term: 1,
            job_id: "j".into(),
            attempt: 1,
        }
    }

    #[test]
    fn a_renewal_keeps_its_length_on_the_leaders_clock() {
        let cmd = Command::RenewLease {
            token: token(),
            node_id: 2,
            lease_expiry_ms: 1_030_000,
            now_ms: 1_000_000,
        };
        let before = now_ms();
        let Ok(Command::RenewLease {
            lease_expiry_ms,
            now_ms: stamped,
            ..
        }) = restamp(cmd)
        else {
            panic!("renewal refused")
        };
        assert!(stamped >= before);
        assert_eq!(lease_expiry_ms - stamped, 30_000);
    }

    #[test]
    fn only_job_reports_are_forwarded() {
        let e = restamp(Command::DeleteJob { job_id: "j".into() }).unwrap_err();
        assert!(e.contains("delete_job"), "{e}");
    }
}
