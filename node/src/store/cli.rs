//! `strata store`: the store gateway on its own, without a cluster (Thanos' `thanos store`),
//! and the store role as a component of a process (also used by `strata node --role store`).

use super::flags::StoreGatewayFlags;
use super::server::MAX_REQUEST_BYTES;
use super::{run_sync_loop, Catalog, StoreService, DEFAULT_FRAME_BYTES};
use crate::flags::ObjstoreFlags;
use crate::query::remote::serve::QueryStore;
use crate::rule::with_results::WithResults;
use crate::server::{BoxFuture, Component, Listeners, Server};
use anyhow::Context;
use proto::thanos::info::info_server::InfoServer;
use proto::thanos::store_server::StoreServer;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::service::RoutesBuilder;

/// Flags of `strata store` (Thanos' names and defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Where the bucket is.
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
    /// Listen host:port for gRPC: the StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
    /// Listen host:port for HTTP: probes and metrics.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    /// The store gateway's flags.
    #[command(flatten)]
    pub gateway: StoreGatewayFlags,
}

/// Runs the store gateway until SIGINT or SIGTERM.
pub async fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let registry = crate::server::self_metrics::registry().context("registering self metrics")?;
    let bucket = args.objstore.open_existing()?;
    let blocks = crate::ui::blocks_api::BlocksApi::new(bucket.clone());
    let role = StoreRole::with_gateway(bucket, &args.objstore.data_dir, &registry, &args.gateway)?;
    let listeners = Listeners::bind(&args.http_address, &args.grpc_address).await?;
    tracing::info!(grpc = %listeners.grpc_addr()?, http = %listeners.http_addr()?, "store listening");
    Server::new(registry)
        .with(Arc::new(role))
        .with(Arc::new(blocks))
        .run(listeners, crate::server::signal())
        .await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The store role: the StoreAPI over the bucket's blocks, ready once they are loaded.
pub struct StoreRole {
    catalog: Arc<Catalog>,
    service: StoreService,
    sync_interval: Duration,
    /// The node's rule role's results, served next to the blocks (one `thanos.Store` a port).
    rule_results: Option<QueryStore>,
}

impl StoreRole {
    /// The role over `bucket` as `gateway` configures it: index headers under `data_dir`,
    /// metrics in `registry`.
    pub fn with_gateway(
        bucket: Arc<dyn storage::bucket::Bucket>,
        data_dir: &std::path::Path,
        registry: &prometheus::Registry,
        gateway: &StoreGatewayFlags,
    ) -> anyhow::Result<Self> {
        let (catalog, service) = gateway.build(bucket, data_dir, registry)?;
        Ok(StoreRole {
            catalog,
            service,
            sync_interval: gateway.sync_interval,
            rule_results: None,
        })
    }

    /// The role answering with `results` (the node's rule role's) too.
    pub fn with_rule_results(mut self, results: QueryStore) -> Self {
        self.rule_results = Some(results);
        self
    }

    /// The role over `bucket`, its metrics in `registry`, syncing every `sync_interval`.
    pub fn new(
        bucket: Arc<dyn storage::bucket::Bucket>,
        registry: &prometheus::Registry,
        sync_interval: Duration,
    ) -> anyhow::Result<Self> {
        let catalog =
            Arc::new(Catalog::new(bucket, registry).context("registering store metrics")?);
        let service = StoreService::new(catalog.clone(), DEFAULT_FRAME_BYTES);
        Ok(StoreRole {
            catalog,
            service,
            sync_interval,
            rule_results: None,
        })
    }
}

impl Component for StoreRole {
    fn name(&self) -> &str {
        "store"
    }

    fn grpc(&self, routes: &mut RoutesBuilder) {
        let Some(results) = &self.rule_results else {
            routes.add_service(self.service.store_server());
            routes.add_service(self.service.info_server());
            return;
        };
        let both = WithResults::new(self.service.clone(), results.clone());
        routes.add_service(
            StoreServer::new(both.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES)
                .max_encoding_message_size(usize::MAX),
        );
        routes.add_service(InfoServer::new(both).max_decoding_message_size(MAX_REQUEST_BYTES));
    }

    fn grpc_services(&self) -> Vec<&'static str> {
        vec![
            crate::server::grpc_metrics::STORE,
            crate::server::grpc_metrics::INFO,
        ]
    }

    fn is_ready(&self) -> bool {
        self.catalog.is_ready()
    }

    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        let sync = run_sync_loop(self.catalog.clone(), self.sync_interval, stop);
        Box::pin(async move {
            // The error names the credentials and what to check (storage's S3 classification).
            sync.await
                .map_err(|e| anyhow::Error::new(e).context("store: first sync with the bucket"))
        })
    }
}
