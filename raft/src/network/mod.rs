//! The tonic transport: openraft's network client ([`client::NetworkFactory`]), the Raft and
//! admin services ([`server`]), and cluster authentication ([`auth`]).

pub mod auth;
pub mod client;
pub mod server;

use tonic::Status;

use crate::types::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Refuses a request whose protocol version this node cannot speak.
pub(crate) fn check_version(peer_version: u32) -> Result<(), Status> {
    if peer_version == 0 {
        return Err(Status::failed_precondition(format!(
            "request carries no Strata cluster protocol version (this node speaks v{PROTOCOL_VERSION}); is the peer a Strata node?"
        )));
    }
    if peer_version > PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "peer speaks Strata cluster protocol v{peer_version}, this node speaks v{PROTOCOL_VERSION} (accepts v{MIN_PROTOCOL_VERSION}..=v{PROTOCOL_VERSION}); upgrade this node"
        )));
    }
    if peer_version < MIN_PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "peer speaks Strata cluster protocol v{peer_version}, this node speaks v{PROTOCOL_VERSION} (accepts v{MIN_PROTOCOL_VERSION}..=v{PROTOCOL_VERSION}); upgrade the peer"
        )));
    }
    Ok(())
}

/// Serializes an openraft message for the wire.
pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(v).map_err(|e| Status::internal(format!("cannot encode Raft message: {e}")))
}

/// Deserializes an openraft message from the wire, naming what failed.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("cannot decode {what} payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_or_missing_versions_are_refused_naming_both() {
        let e = check_version(PROTOCOL_VERSION + 1).expect_err("newer refused");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains(&format!("v{}", PROTOCOL_VERSION + 1)));
        assert!(e
            .message()
            .contains(&format!("this node speaks v{PROTOCOL_VERSION}")));
        assert!(check_version(0)
            .expect_err("missing")
            .message()
            .contains("no Strata cluster protocol version"));
        assert!(check_version(PROTOCOL_VERSION).is_ok());
    }
}
