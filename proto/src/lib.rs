//! Protobuf definitions and generated code (Thanos StoreAPI, Prometheus remote read, Strata's
//! cluster services). The Thanos and Prometheus packages arrive with the query path.

/// Strata's Raft transport and cluster administration (`strata.raft.v1`).
#[allow(missing_docs, clippy::all)]
pub mod raft_v1 {
    tonic::include_proto!("strata.raft.v1");
}
