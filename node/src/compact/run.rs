//! The compactor's process: one pass (or a pass every `--wait-interval` with `--wait`), with
//! `/metrics`, `/-/healthy` and `/-/ready` served meanwhile.

use super::flags::CompactArgs;
use super::metrics::CompactMetrics;
use anyhow::Context as _;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::process::ExitCode;
use std::sync::Arc;
use storage::compact::{Compactor, PassReport};
use tokio::sync::watch;

/// Runs `strata compact`.
pub async fn run(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let bucket = args.objstore.open()?;
    let registry = prometheus::Registry::new();
    let metrics = CompactMetrics::register(&registry).context("registering compactor metrics")?;
    let http_listener = tokio::net::TcpListener::bind(&args.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", args.http_address))?;
    tracing::info!(
        http = %http_listener.local_addr().context("reading the HTTP address")?,
        bucket = %bucket.describe(),
        "compactor starting"
    );
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let router = Router::new()
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(|| async { "Strata is Ready.\n" }))
        .route("/metrics", get(metrics_handler))
        .with_state(registry)
        .merge(crate::ui::routes("/blocks"))
        .merge(crate::ui::blocks_api::BlocksApi::new(bucket.clone()).router());
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(crate::http::serve(http_listener, router, async move {
        let _ = http_stop.changed().await;
    }));
    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        crate::query::wait_for_signal().await;
        tracing::info!("signal received: stopping after the current pass step");
        let _ = signal_tx.send(true);
    });

    // Drawn only when stderr is a terminal; logs carry the same progress otherwise.
    let bar = crate::progress::items(0, "compacting groups");
    let shown = bar.clone();
    let compactor =
        Compactor::new(bucket, args.config()).with_progress(Arc::new(move |done, total| {
            shown.set_length(total as u64);
            shown.set_position(done as u64);
        }));
    let mut code = ExitCode::SUCCESS;
    loop {
        let pass = compactor.run_pass();
        let outcome = tokio::select! {
            r = pass => Some(r),
            _ = stop_rx.changed() => None,
        };
        match outcome {
            None => break,
            Some(Ok(report)) => {
                log_report(&report);
                metrics.record(&report, unix_now_s());
            }
            Some(Err(e)) => {
                metrics.record_failure();
                tracing::error!(error = %e, "compaction pass failed");
                if !args.wait {
                    code = ExitCode::FAILURE;
                }
            }
        }
        if !args.wait {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.wait_interval) => {}
            _ = stop_rx.changed() => break,
        }
    }
    bar.finish_and_clear();
    let _ = stop_tx.send(true);
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "HTTP server failed"),
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
    }
    Ok(code)
}

async fn metrics_handler(State(registry): State<prometheus::Registry>) -> Response {
    crate::http::metrics::encode(&registry)
}

fn log_report(r: &PassReport) {
    tracing::info!(
        groups = r.groups,
        compactions = r.compactions,
        vertical = r.vertical_compactions,
        failed = r.failed_compactions,
        blocks_compacted = r.blocks_compacted,
        marked_for_deletion = r.marked_for_deletion.values().sum::<usize>(),
        marked_no_compact = r.marked_no_compact.values().sum::<usize>(),
        deleted = r.deleted,
        partial_removed = r.partial_removed,
        unreadable_metas = r.unreadable_metas,
        downsampled = r.downsampled,
        downsample_failures = r.downsample_failures,
        index_written = r.index_written,
        "compaction pass done"
    );
}

fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
