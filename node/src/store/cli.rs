//! `strata store`: the store gateway on its own, without a cluster (Thanos' `thanos store`).

use super::flags::StoreGatewayFlags;
use super::{run_sync_loop, Catalog};
use crate::flags::ObjstoreFlags;
use crate::node::grpc;
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Flags of `strata store` (Thanos' names and defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
    /// Listen host:port for gRPC: the StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
    /// Listen host:port for HTTP: probes and metrics.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    #[command(flatten)]
    pub gateway: StoreGatewayFlags,
}

/// Runs the store gateway until SIGINT or SIGTERM.
pub async fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let bucket = args.objstore.open_existing()?;
    let registry = prometheus::Registry::new();
    let (catalog, service) = args
        .gateway
        .build(bucket, &args.objstore.data_dir, &registry)?;
    let grpc_listener = tokio::net::TcpListener::bind(&args.grpc_address)
        .await
        .with_context(|| format!("listening on --grpc-address {}", args.grpc_address))?;
    let http_listener = tokio::net::TcpListener::bind(&args.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", args.http_address))?;
    tracing::info!(
        grpc = %grpc_listener.local_addr().context("reading the gRPC address")?,
        http = %http_listener.local_addr().context("reading the HTTP address")?,
        "store listening"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync = tokio::spawn(run_sync_loop(
        catalog.clone(),
        args.gateway.sync_interval,
        stop_rx.clone(),
    ));
    let mut grpc_stop = stop_rx.clone();
    let grpc_server = tonic::transport::Server::builder()
        .add_service(service.store_server())
        .add_service(service.info_server());
    let grpc_task = tokio::spawn(async move {
        grpc_server
            .serve_with_incoming_shutdown(grpc::incoming(grpc_listener), async move {
                let _ = grpc_stop.changed().await;
            })
            .await
    });
    let router = probes(catalog, registry);
    let shutdown = async move {
        crate::query::wait_for_signal().await;
        tracing::info!("signal received: stopping");
        let _ = stop_tx.send(true);
    };
    let served = crate::http::serve(http_listener, router, shutdown).await;
    let _ = sync.await;
    match grpc_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "gRPC server failed"),
        Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
    }
    served.context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone)]
struct Probes {
    catalog: Arc<Catalog>,
    registry: prometheus::Registry,
}

fn probes(catalog: Arc<Catalog>, registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(Probes { catalog, registry })
}

async fn ready(State(p): State<Probes>) -> Response {
    if p.catalog.is_ready() {
        (StatusCode::OK, "Strata is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

async fn metrics(State(p): State<Probes>) -> Response {
    crate::http::metrics::encode(&p.registry)
}
