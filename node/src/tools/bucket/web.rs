//! `strata tools bucket web`: the web UI's blocks page over a bucket, with nothing else
//! running (Thanos' `thanos tools bucket web`).

use crate::flags::ObjstoreFlags;
use crate::ui::blocks_api::BlocksApi;
use anyhow::Context as _;
use std::process::ExitCode;

/// Serves `/blocks` and `/api/v1/blocks` on `http_address` until SIGINT or SIGTERM.
pub async fn run(objstore: &ObjstoreFlags, http_address: &str) -> anyhow::Result<ExitCode> {
    let bucket = objstore.open_existing()?;
    let listener = tokio::net::TcpListener::bind(http_address)
        .await
        .with_context(|| format!("listening on --http-address {http_address}"))?;
    let addr = listener.local_addr().context("reading the HTTP address")?;
    tracing::info!(bucket = %bucket.describe(), http = %addr, "bucket web: open http://{addr}/blocks");
    let router = crate::ui::routes("/blocks")
        .merge(BlocksApi::new(bucket).router())
        .route(
            "/-/healthy",
            axum::routing::get(|| async { "Strata is Healthy.\n" }),
        )
        .fallback(|| async {
            crate::http::response::error_response(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "404 page not found",
            )
        });
    crate::http::serve(listener, router, crate::server::signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
