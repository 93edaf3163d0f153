//! The store role: Thanos' StoreAPI (`thanos.Store`, `thanos.info.Info`) over the bucket's
//! blocks, served on the node's gRPC port, and the client the querier uses to read it.
//!
//! - `catalog`: the bucket's blocks, raw and downsampled, opened and kept in sync
//! - `resolution`: which blocks answer a request for downsampled data
//! - `opener`: blocks opened through local index headers, hot ones kept in a bounded cache
//! - `index_cache`: Thanos' index cache, postings lists and series entries across requests
//! - `caching_bucket`, `caching_bucket_config`: Thanos' caching bucket for chunk reads
//! - `pool`: `--chunk-pool-size`, the bytes of chunks Series requests hold at once
//! - `select`: matching series and their stored chunks; cutting frames under the size limit
//! - `server`: the gRPC services
//! - `client`: a StoreAPI endpoint as the querier sees it (Info, Series decoded to samples)
//! - `convert`: wire messages to and from labels, matchers and chunks
//!
//! Unfinished: the sidecar role (StoreAPI over a Prometheus' remote read), hints, request
//! sharding (`shard_info`), `without_replica_labels`, and announcing the store's real label sets and time range in the
//! registry (it announces a placeholder; queriers ask Info instead).

pub mod caching_bucket;
pub mod caching_bucket_config;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod convert;
pub mod flags;
pub mod index_cache;
pub mod opener;
#[cfg(test)]
mod opening_tests;
pub mod pool;
pub mod resolution;
pub mod select;
pub mod server;
#[cfg(test)]
mod tests;

pub use catalog::{run_sync_loop, Catalog};
pub use server::{StoreService, DEFAULT_FRAME_BYTES};
