//! `strata query`: the PromQL querier with Prometheus' HTTP API.
//!
//! It reads StoreAPI endpoints (`--endpoint`, and in a cluster the registry's stores) through
//! `remote`; with none it answers from the bucket's blocks read directly (the embedded mode,
//! `blocks`).
//!
//! - `blocks`: the bucket's blocks as a `Queryable`, synced periodically
//! - `dedup`: replica deduplication of what a request reads (`--query.replica-label`)
//! - `downsampled`: the embedded mode's reads of downsampled blocks (`max_source_resolution`)
//! - `lookback`: Thanos' dynamic lookback for queries over downsampled data
//! - `merge`: merging a series' samples across blocks; external-label matching
//! - `remote`: fan-out to StoreAPI endpoints, merge, partial-response warnings
//! - `role`: the query role as a component of a process (crate::server)

pub(crate) mod blocks;
pub mod dedup;
mod downsampled;
pub mod lookback;
pub(crate) mod merge;
pub mod remote;
mod role;
pub(crate) mod skipped;

pub use role::QueryRole;

use crate::flags::{EndpointFlags, ObjstoreFlags};
use crate::http::params::{format_prometheus_duration, parse_prometheus_duration};
use crate::http::{self, ApiState, QueryLimits};
use crate::server::{Listeners, Server};
use anyhow::Context as _;
use blocks::{run_sync_loop, BlockSet};
use promql::{Engine, EngineOptions};
use remote::{FederatedSource, Federation, RegistryStores};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use storage::bucket::{open_existing_from_flags, open_from_flags, BucketOptions};

/// Flags of `strata query` (Thanos' names and Prometheus' defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Listen host:port for HTTP endpoints.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    /// Where the bucket is (the embedded mode).
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
    /// How far back a selector looks for the latest sample.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = parse_duration_flag)]
    pub lookback_delta: Duration,
    /// Most samples a single query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub max_samples: usize,
    /// Longest a query may run, time waiting for a slot included.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_duration_flag)]
    pub timeout: Duration,
    /// Most queries evaluated at once; more wait in a queue.
    #[arg(long = "query.max-concurrent", default_value_t = 20)]
    pub max_concurrent: usize,
    /// How often the embedded mode looks for new or removed blocks in the bucket.
    #[arg(long = "sync-block-duration", default_value = "3m", value_parser = parse_duration_flag)]
    pub sync_interval: Duration,
    /// Regex of the origins a browser may read API answers from (anchored).
    #[arg(long = "web.cors.origin", default_value = ".*")]
    pub cors_origin: String,
    /// StoreAPI endpoints and how they are queried.
    #[command(flatten)]
    pub endpoints: EndpointFlags,
    /// Listen host:port for gRPC: the querier's own StoreAPI (so queriers stack).
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
}

fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_prometheus_duration(s)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h)"))
}

impl QueryArgs {
    /// Name and value of every flag, for `/api/v1/status/flags`.
    fn flag_values(&self) -> Vec<(String, String)> {
        let d = |d: Duration| format_prometheus_duration(d.as_millis() as i64);
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        vec![
            ("http-address".into(), self.http_address.clone()),
            (
                "objstore.config-file".into(),
                path(&self.objstore.config_file),
            ),
            // The inline config may hold credentials; say only whether it was given.
            (
                "objstore.config".into(),
                if self.objstore.config.is_some() {
                    "<hidden>".into()
                } else {
                    String::new()
                },
            ),
            (
                "data-dir".into(),
                self.objstore.data_dir.display().to_string(),
            ),
            ("query.lookback-delta".into(), d(self.lookback_delta)),
            ("query.max-samples".into(), self.max_samples.to_string()),
            ("query.timeout".into(), d(self.timeout)),
            (
                "query.max-concurrent".into(),
                self.max_concurrent.to_string(),
            ),
            ("sync-block-duration".into(), d(self.sync_interval)),
            ("web.cors.origin".into(), self.cors_origin.clone()),
            ("grpc-address".into(), self.grpc_address.clone()),
            ("endpoint".into(), self.endpoints.all().join(",")),
            (
                "store.sd-files".into(),
                self.endpoints
                    .sd_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "store.response-timeout".into(),
                d(self.endpoints.response_timeout),
            ),
            (
                "store.sd-dns-interval".into(),
                d(self.endpoints.sd_dns_interval),
            ),
            (
                "query.partial-response".into(),
                self.endpoints.partial_response.to_string(),
            ),
            (
                "query.replica-label".into(),
                self.endpoints.replica_labels.join(","),
            ),
            (
                "query.auto-downsampling".into(),
                self.endpoints.auto_downsampling.to_string(),
            ),
            (
                "query.dynamic-lookback-delta".into(),
                self.endpoints.dynamic_lookback_delta.to_string(),
            ),
        ]
    }
}

/// Runs the querier until SIGINT or SIGTERM: the query role alone, its StoreAPI on
/// `--grpc-address`.
pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let registry = crate::server::self_metrics::registry().context("registering self metrics")?;
    let embedded = build(&args, registry.clone(), None)?;
    let listeners = Listeners::bind(&args.http_address, &args.grpc_address).await?;
    tracing::info!(http = %listeners.http_addr()?, grpc = %listeners.grpc_addr()?, "querier listening");
    let role = QueryRole::new(embedded, args.sync_interval, true);
    let mut server = Server::new(registry).with(Arc::new(role));
    if !args.endpoints.any() {
        let bucket = args.objstore.open_existing()?;
        server = server.with(Arc::new(crate::ui::blocks_api::BlocksApi::new(bucket)));
    }
    server.run(listeners, crate::server::signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The embedded querier before it serves: the API state and the block set to keep in sync.
pub struct Embedded {
    /// The API's shared state (its registry is the one given to [`build`]).
    pub state: Arc<ApiState>,
    blocks: Option<Arc<BlockSet>>,
    source: FederatedSource,
}

impl Embedded {
    /// Keeps the block set (if any) in sync with the bucket until `stop` (what `run` spawns).
    pub fn sync_loop(
        &self,
        interval: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let blocks = self.blocks.clone();
        async move {
            if let Some(b) = blocks {
                run_sync_loop(b, interval, stop).await;
            }
        }
    }
}

/// Builds the querier's state with its metrics in `registry` (used by `strata query` and by
/// `strata node` with the query role): StoreAPI endpoints and the cluster's `stores`, with the
/// bucket's blocks as the fallback unless `--endpoint` is given outside a cluster.
pub fn build(
    args: &QueryArgs,
    registry: prometheus::Registry,
    stores: Option<RegistryStores>,
) -> anyhow::Result<Embedded> {
    let cors = http::cors::CorsOrigin::new(&args.cors_origin).with_context(|| {
        format!(
            "--web.cors.origin {:?} is not a valid regex",
            args.cors_origin
        )
    })?;
    let endpoints = args.endpoints.all();
    let blocks = if !args.endpoints.any() || stores.is_some() {
        Some(open_blocks(args, &registry, stores.is_none())?)
    } else {
        tracing::info!(endpoints = ?endpoints, sd_files = ?args.endpoints.sd_files, "answering from StoreAPI endpoints");
        None
    };
    let federation = Federation::new(
        args.endpoints.discovery()?,
        stores,
        blocks.clone(),
        args.endpoints.partial_response,
    )?
    .with_response_timeout(args.endpoints.response_timeout);
    let engine = Engine::new(EngineOptions {
        lookback_delta_ms: args.lookback_delta.as_millis() as i64,
        max_samples: args.max_samples,
        timeout: args.timeout,
    });
    let source = FederatedSource(Arc::new(federation));
    let state = Arc::new(ApiState {
        source: Arc::new(source.clone()),
        engine: Arc::new(engine),
        limits: QueryLimits::new(args.timeout, args.max_concurrent),
        flags: args.flag_values(),
        registry,
        cors: Arc::new(cors),
        replica_labels: args.endpoints.replica_labels.clone(),
        auto_downsampling: args.endpoints.auto_downsampling,
        dynamic_lookback: args.endpoints.dynamic_lookback_delta,
    });
    Ok(Embedded {
        state,
        blocks,
        source,
    })
}

/// Opens the bucket for the embedded mode; `must_exist` (a standalone querier, which only
/// reads) refuses a FILESYSTEM bucket directory that does not exist.
fn open_blocks(
    args: &QueryArgs,
    registry: &prometheus::Registry,
    must_exist: bool,
) -> anyhow::Result<Arc<BlockSet>> {
    // The process' registry already holds the bucket metrics every role shares.
    let bucket_metrics =
        crate::server::self_metrics::bucket_metrics().context("building bucket metrics")?;
    let open = if must_exist {
        open_existing_from_flags
    } else {
        open_from_flags
    };
    let bucket = open(
        args.objstore.config_file.as_deref(),
        args.objstore.config.as_deref(),
        &args.objstore.data_dir,
        &BucketOptions::default(),
        &bucket_metrics,
    )
    .context("opening the bucket")?;
    tracing::info!(bucket = %bucket.describe(), "answering from the bucket's blocks (embedded mode)");
    Ok(Arc::new(
        BlockSet::new(bucket, registry).context("registering block metrics")?,
    ))
}

/// Completes on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the querier");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
