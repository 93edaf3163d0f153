//! Protobuf definitions and generated code (Thanos StoreAPI, Prometheus remote read, Strata's
//! cluster services). Thanos' hintspb, WriteableStore, Targets, Metadata, Exemplars, Query
//! and Status services and Prometheus' remote write are not included yet.

/// Strata's Raft transport and cluster administration (`strata.raft.v1`).
#[allow(missing_docs, clippy::all)]
pub mod raft_v1 {
    tonic::include_proto!("strata.raft.v1");
}

/// Thanos' StoreAPI (`thanos` package: `thanos.Store`, labels, series and chunks), Rules API
/// (`thanos.Rules`) and Info API (`thanos.info`), wire-compatible with Thanos.
#[allow(missing_docs, clippy::all)]
pub mod thanos {
    tonic::include_proto!("thanos");

    /// Thanos' Info API (`thanos.info.Info`).
    #[allow(missing_docs, clippy::all)]
    pub mod info {
        tonic::include_proto!("thanos.info");
    }
}

/// Prometheus' remote read messages (`prometheus` package, prompb), wire-compatible with
/// Prometheus 2.x: what the sidecar sends to `/api/v1/read` and decodes from its answers.
#[allow(missing_docs, clippy::all)]
pub mod prometheus {
    tonic::include_proto!("prometheus");
}

/// `google.protobuf.Timestamp`, as the Rules API's messages use it.
pub use prost_types::Timestamp;
