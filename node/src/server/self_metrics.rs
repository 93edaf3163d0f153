//! The metrics every Strata process exposes about itself, whatever its roles: process
//! metrics, `strata_build_info`, HTTP requests, gRPC server and client calls, bucket operations
//! (one set for every bucket any role opens) and the PromQL engine's queries. [`registry`] makes a process' registry with all of them; the roles add
//! their own.
//!
//! The families are one set per process (statics), because the code that records them (the
//! StoreAPI client, the query handlers) is shared by roles that do not hold the registry.

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntGauge, IntGaugeVec, Opts, Registry};
use storage::bucket::BucketMetrics;

use super::grpc_metrics;
use super::process_metrics::ProcessCollector;

/// The git revision the binary was built from (`unknown` outside a git checkout).
pub const REVISION: &str = match option_env!("STRATA_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// The rustc that built the binary (Go's `goversion` label has no Rust twin).
pub const RUST_VERSION: &str = match option_env!("STRATA_RUSTC_VERSION") {
    Some(r) => r,
    None => "unknown",
};

/// The PromQL engine's metrics with Prometheus' names.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    /// `prometheus_engine_queries`: queries being evaluated now.
    pub queries: IntGauge,
    /// `prometheus_engine_queries_concurrent_max`: `--query.max-concurrent`.
    pub concurrent_max: IntGauge,
    /// `prometheus_engine_query_duration_seconds{slice}`: `queue_time` (waiting for a slot)
    /// and `inner_eval` (evaluation); Prometheus' `prepare_time` and `result_sort` are not
    /// measured apart (Strata's engine plans inside the evaluation). Prometheus
    /// exports a summary; the prometheus crate has none, so this is a histogram of the same
    /// name (`histogram_quantile` over `_bucket` instead of the `quantile` label).
    pub duration: HistogramVec,
}

impl EngineMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        Ok(EngineMetrics {
            queries: IntGauge::new(
                "prometheus_engine_queries",
                "The current number of queries being executed or waiting.",
            )?,
            concurrent_max: IntGauge::new(
                "prometheus_engine_queries_concurrent_max",
                "The max number of concurrent queries.",
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("prometheus_engine_query_duration_seconds", "Query timings")
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        120.0,
                    ]),
                &["slice"],
            )?,
        })
    }
}

/// This process' engine metrics.
pub static ENGINE: LazyLock<Result<EngineMetrics, prometheus::Error>> =
    LazyLock::new(EngineMetrics::new);

/// This process' bucket operation metrics (`strata_objstore_bucket_*`), shared by every role
/// that opens a bucket, so that a node's store, compact and query roles all count in the one
/// registry `/metrics` serves.
static BUCKET: LazyLock<Result<BucketMetrics, prometheus::Error>> =
    LazyLock::new(BucketMetrics::new);

/// The bucket metrics to open this process' buckets with.
pub fn bucket_metrics() -> Result<BucketMetrics, prometheus::Error> {
    shared(&*BUCKET).cloned()
}

/// A fresh registry holding every self-monitoring family of this process.
pub fn registry() -> Result<Registry, prometheus::Error> {
    let r = Registry::new();
    r.register(Box::new(ProcessCollector::new()?))?;
    r.register(Box::new(build_info()?))?;
    shared(&*crate::http::metrics::HTTP)?.register(&r)?;
    shared(&*grpc_metrics::SERVER)?.register(&r)?;
    shared(&*grpc_metrics::CLIENT)?.register(&r)?;
    shared(&*BUCKET)?.register_in(&r)?;
    let engine = shared(&*ENGINE)?;
    r.register(Box::new(engine.queries.clone()))?;
    r.register(Box::new(engine.concurrent_max.clone()))?;
    r.register(Box::new(engine.duration.clone()))?;
    Ok(r)
}

/// A static's value, or its construction error again (prometheus::Error is not Clone).
fn shared<T>(s: &Result<T, prometheus::Error>) -> Result<&T, prometheus::Error> {
    s.as_ref()
        .map_err(|e| prometheus::Error::Msg(format!("building self metrics: {e}")))
}

/// `strata_build_info{version,revision,rustversion} 1`, as Thanos' `thanos_build_info`.
fn build_info() -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(
        Opts::new(
            "strata_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustversion from which strata was built.",
        ),
        &["version", "revision", "rustversion"],
    )?;
    g.with_label_values(&[env!("CARGO_PKG_VERSION"), REVISION, RUST_VERSION])
        .set(1);
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_exposes_every_family_with_build_info() {
        let r = registry().expect("registry");
        // Two registries in one process share the statics: a second one must work too.
        let again = registry().expect("second registry");
        let mut text = String::new();
        for reg in [&r, &again] {
            text = prometheus::TextEncoder::new()
                .encode_to_string(&reg.gather())
                .expect("encode");
        }
        for family in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
            "prometheus_engine_queries_concurrent_max",
        ] {
            assert!(
                text.contains(&format!("\n{family} ")),
                "{family} in\n{text}"
            );
        }
        let info = format!(
            "strata_build_info{{revision=\"{REVISION}\",rustversion=\"{RUST_VERSION}\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&info), "{info} in\n{text}");
    }
}
