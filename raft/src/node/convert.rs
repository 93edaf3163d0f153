//! Conversions between the replicated state's types and the admin protocol's messages.

use proto::raft_v1 as pb;
use tonic::Status;

use crate::state::{Member, Role};

/// A member as the admin protocol carries it.
pub fn member_to_pb(m: &Member) -> pb::Member {
    pb::Member {
        node_id: m.node_id,
        grpc_address: m.grpc_address.clone(),
        http_address: m.http_address.clone(),
        roles: m.roles.iter().map(|r| r.name().to_string()).collect(),
        software_version: m.software_version.clone(),
        protocol_version: m.protocol_version,
        joined_at_ms: m.joined_at_ms,
    }
}

/// A member from the admin protocol; refuses one that cannot be dialled.
pub fn member_from_pb(m: pb::Member) -> Result<Member, Status> {
    if m.grpc_address.is_empty() {
        return Err(Status::invalid_argument(format!(
            "member {} has no gRPC address",
            m.node_id
        )));
    }
    Ok(Member {
        node_id: m.node_id,
        grpc_address: m.grpc_address,
        http_address: m.http_address,
        roles: m.roles.into_iter().map(Role::from).collect(),
        software_version: m.software_version,
        protocol_version: m.protocol_version,
        joined_at_ms: m.joined_at_ms,
    })
}
