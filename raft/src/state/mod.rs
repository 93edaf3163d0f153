//! The replicated cluster state: members, the store registry and the job table.
//!
//! [`ClusterState::apply`] is the only way to change it and is deterministic: its inputs are the
//! command and the term of the entry that carried it, never the local clock or randomness.

mod command;
mod jobs;
mod progress;
mod registry;
mod role;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use command::{Command, LabelSet, Rejection, Request, Response};
pub use jobs::{FencingToken, Job, JobState, Lapse, MAX_LAPSES};
pub use registry::{StoreEntry, StoreInfo};
pub use role::{Role, UnknownRole};

use crate::types::{NodeId, STATE_VERSION};

/// A cluster member as recorded in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's Raft id.
    pub node_id: NodeId,
    /// Address peers dial for gRPC (Raft, admin, StoreAPI).
    pub grpc_address: String,
    /// Address of the node's HTTP API.
    pub http_address: String,
    /// Roles the node runs (encoded as their names; see [`Role`]).
    #[serde(default)]
    pub roles: BTreeSet<Role>,
    /// The node's software version.
    pub software_version: String,
    /// The cluster protocol version the node speaks.
    pub protocol_version: u32,
    /// When the leader admitted the node (ms since the Unix epoch).
    pub joined_at_ms: i64,
}

/// The replicated state every node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterState {
    /// Members by node id.
    #[serde(default)]
    pub members: BTreeMap<NodeId, Member>,
    /// Registered stores by StoreAPI address.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreEntry>,
    /// Jobs by id.
    #[serde(default)]
    pub jobs: BTreeMap<String, Job>,
}

impl ClusterState {
    /// Applies one command carried by an entry of `term`.
    pub fn apply(&mut self, term: u64, request: &Request) -> Response {
        if !request.is_supported() {
            return Response::Rejected {
                reason: Rejection::UnsupportedCommand {
                    command: request.command.name().to_string(),
                    needed: request.version,
                    supported: STATE_VERSION,
                },
            };
        }
        let outcome = match &request.command {
            Command::AddMember { member } => {
                self.members.insert(member.node_id, member.clone());
                Ok(Response::Ok)
            }
            Command::RemoveMember { node_id } => self.remove_member(*node_id),
            Command::RegisterStore { store, now_ms } => self.register_store(store, *now_ms),
            Command::StoreHeartbeat {
                address,
                min_time_ms,
                max_time_ms,
                now_ms,
            } => self.store_heartbeat(address, *min_time_ms, *max_time_ms, *now_ms),
            Command::DeregisterStore { address } => self.deregister_store(address),
            Command::ExpireStores { now_ms, max_age_ms } => {
                Ok(self.expire_stores(*now_ms, *max_age_ms))
            }
            Command::CreateJob {
                job_id,
                kind,
                spec,
                now_ms,
            } => self.create_job(job_id, kind, spec, *now_ms),
            Command::AssignJob {
                job_id,
                node_id,
                lease_expiry_ms,
                now_ms,
            } => self.assign_job(term, job_id, *node_id, *lease_expiry_ms, *now_ms),
            Command::RenewLease {
                token,
                node_id,
                lease_expiry_ms,
                now_ms,
            } => self.renew_lease(token, *node_id, *lease_expiry_ms, *now_ms),
            Command::CompleteJob {
                token,
                node_id,
                result,
                now_ms,
            } => self.complete_job(token, *node_id, result, *now_ms),
            Command::ReportJobProgress {
                token,
                node_id,
                progress,
                now_ms,
            } => self.report_job_progress(token, *node_id, progress, *now_ms),
            Command::ExpireLeases { now_ms } => Ok(self.expire_leases(*now_ms)),
            Command::DeleteJob { job_id } => self.delete_job(job_id),
            Command::Unknown => unreachable_unknown(),
        };
        outcome.unwrap_or_else(|reason| Response::Rejected { reason })
    }

    fn remove_member(&mut self, node_id: NodeId) -> Result<Response, Rejection> {
        if self.members.remove(&node_id).is_none() {
            return Err(Rejection::UnknownMember { node_id });
        }
        self.stores.retain(|_, s| s.info.node_id != Some(node_id));
        Ok(Response::Ok)
    }

    /// The lowest protocol version among members (the version every member understands), or
    /// `None` for an empty member table.
    pub fn min_member_protocol(&self) -> Option<u32> {
        self.members.values().map(|m| m.protocol_version).min()
    }
}

/// `Request::is_supported` refuses `Unknown` before dispatch; kept as a rejection, not a panic.
fn unreachable_unknown() -> Result<Response, Rejection> {
    Err(Rejection::UnsupportedCommand {
        command: "unknown".to_string(),
        needed: u32::MAX,
        supported: STATE_VERSION,
    })
}
