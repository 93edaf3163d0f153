//! Job reports from assignees: lease renewals and progress, committed on the leader. An
//! assignee calls [`report`]; on the leader it commits directly, elsewhere it goes to the
//! leader's [`JobReportService`] (every node serves it, since any node may lead).

use std::time::Duration;

use raft::network::auth::{ClientAuth, ServerAuth};
use raft::{now_ms, ClusterSecret, Command, FencingToken, JobState, RaftNode, WriteError};
use raft::{NodeId, PROTOCOL_VERSION};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::registry::pb;
use pb::job_reports_client::JobReportsClient;
use pb::job_reports_server::{JobReports, JobReportsServer};

/// What an assignee reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The assignee.
    pub node_id: NodeId,
    /// Its token.
    pub token: FencingToken,
    /// Renew the lease to this long after the leader's now (zero: no renewal).
    pub lease: Duration,
    /// New progress, if any.
    pub progress: Option<String>,
}

/// The job as committed after a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The lease end, by the leader's clock.
    pub lease_expiry_ms: i64,
    /// The recorded progress.
    pub progress: String,
}

/// Why a report did not land.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The leader refused it: the token is stale, the lease lapsed, or another node holds it.
    #[error("job report refused: {0}")]
    Refused(String),
    /// No leader could be reached or it could not commit; retry later.
    #[error("job report not delivered: {0}")]
    Unavailable(String),
}

/// Commits `r` on this node, which must be the leader.
async fn commit(node: &RaftNode, r: &Report) -> Result<Reply, WriteError> {
    let now = now_ms();
    if !r.lease.is_zero() {
        let lease_ms = i64::try_from(r.lease.as_millis()).unwrap_or(i64::MAX / 2);
        node.client_write(Command::RenewLease {
            token: r.token.clone(),
            node_id: r.node_id,
            lease_expiry_ms: now.saturating_add(lease_ms),
            now_ms: now,
        })
        .await?;
    }
    if let Some(p) = &r.progress {
        node.client_write(Command::ReportJobProgress {
            token: r.token.clone(),
            node_id: r.node_id,
            progress: p.clone(),
            now_ms: now,
        })
        .await?;
    }
    let state = node.local_state();
    let job = state.jobs.get(&r.token.job_id);
    let lease_expiry_ms = match job.map(|j| &j.state) {
        Some(JobState::Assigned {
            lease_expiry_ms, ..
        }) => *lease_expiry_ms,
        _ => 0,
    };
    Ok(Reply {
        lease_expiry_ms,
        progress: job.map(|j| j.progress.clone()).unwrap_or_default(),
    })
}

fn write_failure(e: WriteError) -> ReportError {
    match e {
        WriteError::Rejected(r) => ReportError::Refused(r.to_string()),
        other => ReportError::Unavailable(other.to_string()),
    }
}

/// Delivers `r` to the leader (committing it here when this node leads).
pub async fn report(
    node: &RaftNode,
    secret: &ClusterSecret,
    r: &Report,
) -> Result<Reply, ReportError> {
    let m = node.metrics().await;
    let leader = m
        .leader_id
        .ok_or_else(|| ReportError::Unavailable("no leader".into()))?;
    if leader == node.id() {
        return commit(node, r).await.map_err(write_failure);
    }
    let addr = m
        .nodes
        .iter()
        .find(|n| n.node_id == leader)
        .map(|n| n.address.clone())
        .ok_or_else(|| ReportError::Unavailable(format!("address of leader {leader} unknown")))?;
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| ReportError::Unavailable(e.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let mut client = JobReportsClient::with_interceptor(ch, ClientAuth::new(secret));
    let req = pb::JobReport {
        protocol_version: PROTOCOL_VERSION,
        node_id: r.node_id,
        token: Some(pb::JobToken {
            term: r.token.term,
            job_id: r.token.job_id.clone(),
            attempt: r.token.attempt,
        }),
        lease_ms: u64::try_from(r.lease.as_millis()).unwrap_or(u64::MAX),
        progress: r.progress.clone(),
    };
    match client.report(req).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            Ok(Reply {
                lease_expiry_ms: reply.lease_expiry_ms,
                progress: reply.progress,
            })
        }
        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
            Err(ReportError::Refused(s.message().to_string()))
        }
        Err(s) => Err(ReportError::Unavailable(format!(
            "{}: {}",
            s.code(),
            s.message()
        ))),
    }
}

/// Serves other members' reports.
#[derive(Clone)]
pub struct JobReportService {
    node: RaftNode,
}

impl JobReportService {
    /// The service, authenticated with the cluster secret, ready for the gRPC server.
    pub fn server(
        node: RaftNode,
        secret: ClusterSecret,
    ) -> InterceptedService<JobReportsServer<Self>, ServerAuth> {
        InterceptedService::new(
            JobReportsServer::new(JobReportService { node }),
            ServerAuth::new(secret, "job-reports"),
        )
    }
}

#[tonic::async_trait]
impl JobReports for JobReportService {
    async fn report(
        &self,
        request: Request<pb::JobReport>,
    ) -> Result<Response<pb::JobReportReply>, Status> {
        let r = request.into_inner();
        if r.protocol_version == 0 || r.protocol_version > PROTOCOL_VERSION {
            return Err(Status::invalid_argument(format!(
                "job report speaks protocol v{}, this node speaks v{PROTOCOL_VERSION}",
                r.protocol_version
            )));
        }
        let token = r
            .token
            .ok_or_else(|| Status::invalid_argument("job report without a token"))?;
        let report = Report {
            node_id: r.node_id,
            token: FencingToken {
                term: token.term,
                job_id: token.job_id,
                attempt: token.attempt,
            },
            lease: Duration::from_millis(r.lease_ms),
            progress: r.progress,
        };
        match commit(&self.node, &report).await {
            Ok(reply) => Ok(Response::new(pb::JobReportReply {
                protocol_version: PROTOCOL_VERSION,
                lease_expiry_ms: reply.lease_expiry_ms,
                progress: reply.progress,
            })),
            Err(WriteError::Rejected(reason)) => {
                Err(Status::failed_precondition(reason.to_string()))
            }
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}
