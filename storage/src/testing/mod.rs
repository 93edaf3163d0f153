//! Helpers for tests that run real Prometheus 2.42 tools: `promtool` to make and dump blocks,
//! and a `prometheus` server to query. Compiled only with the `testing` feature.

pub mod openmetrics;
pub mod prometheus;
pub mod s3;

pub use openmetrics::write_openmetrics;
pub use prometheus::{promtool_available, PrometheusServer};
pub use s3::S3Server;
