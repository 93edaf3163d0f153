//! `strata rule` (standalone, no Raft): Thanos' ruler flags, wiring of the manager, the
//! query backend, the notifier and the HTTP API; SIGHUP and `POST /-/reload` reload rules.

use super::alert::LabelMap;
use super::api;
use super::backend::{EngineBackend, HttpBackend, QueryBackend};
use super::manager::{Manager, ManagerOptions};
use super::metrics::RuleMetrics;
use super::notify::{Notifier, NotifyOptions};
use super::results::Results;
use crate::flags::ObjstoreFlags;
use crate::http::params::parse_prometheus_duration;
use anyhow::Context as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_prometheus_duration(s)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h)"))
}

/// `name="value"` as Thanos' `--label` takes it.
pub fn parse_label_flag(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("label {s:?}: want name=\"value\""))?;
    if !crate::http::params::is_valid_label_name(name) {
        return Err(format!("label {s:?}: {name:?} is not a valid label name"));
    }
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| format!("label {s:?}: the value must be double-quoted"))?;
    Ok((name.to_string(), value.replace("\\\"", "\"")))
}

/// Flags of `strata rule` (Thanos' names and defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// Rule files to load (globs; repeatable).
    #[arg(long = "rule-file", default_value = "rules/")]
    pub rule_files: Vec<String>,
    /// Default evaluation interval of rule groups.
    #[arg(long = "eval-interval", default_value = "1m", value_parser = parse_duration_flag)]
    pub eval_interval: Duration,
    /// Querier or Prometheus HTTP address to evaluate against (repeatable; the first that
    /// answers wins). Without it, rules evaluate over the bucket's blocks.
    #[arg(long = "query", value_name = "ADDRESS")]
    pub query: Vec<String>,
    /// Timeout of one rule query.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_duration_flag)]
    pub query_timeout: Duration,
    /// Alertmanager URL to send alerts to (repeatable).
    #[arg(long = "alertmanagers.url", value_name = "URL")]
    pub alertmanagers: Vec<String>,
    /// Timeout of one request to an Alertmanager.
    #[arg(long = "alertmanagers.send-timeout", default_value = "10s", value_parser = parse_duration_flag)]
    pub send_timeout: Duration,
    /// URL the alerts' generator links point to.
    #[arg(long = "alert.query-url", default_value = "")]
    pub alert_query_url: String,
    /// Label dropped from alerts before sending (repeatable; e.g. the replica label).
    #[arg(long = "alert.label-drop", value_name = "LABEL")]
    pub alert_label_drop: Vec<String>,
    /// External label `name="value"` of the ruler's results and alerts (repeatable).
    #[arg(long = "label", value_parser = parse_label_flag)]
    pub labels: Vec<(String, String)>,
    /// Minimum time before a firing alert is sent again.
    #[arg(long = "resend-delay", default_value = "1m", value_parser = parse_duration_flag)]
    pub resend_delay: Duration,
    /// How long the ruler's own results are kept (in memory) for its query API.
    #[arg(long = "tsdb.retention", default_value = "48h", value_parser = parse_duration_flag)]
    pub retention: Duration,
    /// Block duration of uploaded results (accepted; uploading is not implemented yet).
    #[arg(long = "tsdb.block-duration", default_value = "2h", value_parser = parse_duration_flag)]
    pub block_duration: Duration,
    /// Capacity of the alert notification queue.
    #[arg(
        long = "alertmanagers.notification-queue-capacity",
        default_value_t = 10_000
    )]
    pub queue_capacity: usize,
    /// Listen host:port for HTTP endpoints.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    /// Listen host:port for gRPC (accepted; the StoreAPI and Rules API are not served yet).
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
    /// The bucket the embedded engine reads when no --query is given.
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
}

impl RuleArgs {
    fn flag_values(&self) -> Vec<(String, String)> {
        let d = |d: Duration| crate::http::params::format_prometheus_duration(d.as_millis() as i64);
        vec![
            ("rule-file".into(), self.rule_files.join(",")),
            ("eval-interval".into(), d(self.eval_interval)),
            ("query".into(), self.query.join(",")),
            ("alertmanagers.url".into(), self.alertmanagers.join(",")),
            ("alert.query-url".into(), self.alert_query_url.clone()),
            ("alert.label-drop".into(), self.alert_label_drop.join(",")),
            ("resend-delay".into(), d(self.resend_delay)),
            ("http-address".into(), self.http_address.clone()),
            ("grpc-address".into(), self.grpc_address.clone()),
        ]
    }
}

/// Builds the query backend: `--query` endpoints, else the bucket's blocks (kept in sync
/// until `stop`).
fn backend(
    args: &RuleArgs,
    registry: &prometheus::Registry,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Arc<dyn QueryBackend>> {
    if !args.query.is_empty() {
        let b = HttpBackend::new(&args.query, args.query_timeout)
            .context("building the HTTP client")?;
        return Ok(Arc::new(b));
    }
    let bucket = args
        .objstore
        .open_existing()
        .context("opening the bucket")?;
    let blocks = Arc::new(
        crate::query::blocks::BlockSet::new(bucket, registry)
            .context("registering block metrics")?,
    );
    tokio::spawn(crate::query::blocks::run_sync_loop(
        blocks.clone(),
        Duration::from_secs(180),
        stop,
    ));
    let engine = promql::Engine::new(promql::EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 50_000_000,
        timeout: args.query_timeout,
    });
    Ok(Arc::new(EngineBackend::new(engine, blocks)))
}

/// Runs the ruler until SIGINT or SIGTERM.
pub async fn run(args: RuleArgs) -> anyhow::Result<ExitCode> {
    let registry = prometheus::Registry::new();
    let metrics = RuleMetrics::register(&registry).context("registering rule metrics")?;
    let external_labels: LabelMap = args.labels.iter().cloned().collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let backend = backend(&args, &registry, stop_rx.clone())?;
    let notifier = Arc::new(
        Notifier::new(
            NotifyOptions {
                alertmanagers: args.alertmanagers.clone(),
                external_labels: external_labels.clone(),
                drop_labels: args.alert_label_drop.clone(),
                external_url: args.alert_query_url.clone(),
                capacity: args.queue_capacity,
                timeout: args.send_timeout,
            },
            metrics.clone(),
        )
        .context("building the Alertmanager client")?,
    );
    let results = Arc::new(Results::new(args.retention.as_millis() as i64));
    let manager = Manager::new(
        ManagerOptions {
            rule_files: args.rule_files.clone(),
            eval_interval: args.eval_interval,
            external_labels,
            external_url: args.alert_query_url.clone(),
            resend_delay: args.resend_delay,
        },
        backend,
        notifier.clone(),
        results.clone(),
        metrics,
    );
    // A bad rule file at start is fatal, with promtool's messages.
    manager.reload().await.context("loading --rule-file")?;
    if args.grpc_address != "0.0.0.0:10901" {
        tracing::warn!(address = %args.grpc_address, "--grpc-address is accepted but the ruler serves no gRPC yet");
    }
    let notify_task = tokio::spawn(notifier.run(stop_rx.clone()));
    let router = api::router(manager.clone(), results, registry, args.flag_values())?
        .merge(crate::ui::routes("/alerts"));
    let listener = tokio::net::TcpListener::bind(&args.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", args.http_address))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(address = %local, "HTTP server listening");
    let hup = tokio::spawn(reload_on_sighup(manager.clone(), stop_rx.clone()));
    let shutdown = async move {
        crate::query::wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    crate::http::serve(listener, router, shutdown)
        .await
        .context("serving HTTP")?;
    manager.stop().await;
    let _ = notify_task.await;
    let _ = hup.await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn reload_on_sighup(manager: Arc<Manager>, mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        }
    };
    loop {
        let reload = tokio::select! {
            r = hup.recv() => r.is_some(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if !reload {
            return;
        }
        if let Err(e) = manager.reload().await {
            tracing::error!(error = %e, "reload failed; the previous rules keep running");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_flags_take_quoted_values() {
        assert_eq!(
            parse_label_flag("replica=\"A\""),
            Ok(("replica".into(), "A".into()))
        );
        assert!(parse_label_flag("replica=A").is_err());
        assert!(parse_label_flag("1x=\"A\"").is_err());
    }
}
