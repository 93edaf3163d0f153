//! `strata rule` (standalone, no Raft): Thanos' ruler flags, wiring of the manager, the
//! query backend, the notifier, the results' blocks, the HTTP API and the gRPC services;
//! SIGHUP and `POST /-/reload` reload rules.

use super::alert::LabelMap;
use super::alertmanagers::Alertmanagers;
use super::api;
use super::backend::{EngineBackend, HttpBackend, QueryBackend, QueryTargets};
use super::manager::{Manager, ManagerOptions};
use super::metrics::RuleMetrics;
use super::notify::{Notifier, NotifyOptions};
use super::results::Results;
use super::tsdb::{ResultsDb, WalOptions};
use super::wal::WalMetrics;
use crate::flags::ObjstoreFlags;
use crate::http::params::parse_prometheus_duration;
use crate::sidecar::shipper::{Shipper, ShipperMetrics};
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
    /// answers wins): `http://host:port[/prefix]`, `host:port`, `dns+host:port` (every
    /// A/AAAA record) or `dnssrv+_name._tcp.domain`. Without it (and without
    /// --query.sd-files), rules evaluate over the bucket's blocks.
    #[arg(long = "query", value_name = "ADDRESS")]
    pub query: Vec<String>,
    /// Prometheus file-SD files listing query addresses (repeatable; re-read when changed).
    #[arg(long = "query.sd-files", value_name = "FILE")]
    pub query_sd_files: Vec<std::path::PathBuf>,
    /// How often `dns+` and `dnssrv+` query addresses are resolved again.
    #[arg(long = "query.sd-dns-interval", default_value = "30s", value_parser = parse_duration_flag)]
    pub query_dns_interval: Duration,
    /// Timeout of one rule query.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_duration_flag)]
    pub query_timeout: Duration,
    /// Alertmanager URL to send alerts to (repeatable): `http://host:port[/prefix]`, or with
    /// `dns+` / `dnssrv+` before the scheme to send to every address of a DNS name
    /// (`dns+http://alertmanager:9093`; port 9093 when omitted).
    #[arg(long = "alertmanagers.url", value_name = "URL")]
    pub alertmanagers: Vec<String>,
    /// Alertmanagers in Thanos' YAML format (`alertmanagers:` with `static_configs`,
    /// `file_sd_configs`, `scheme`, `path_prefix`, `timeout`, `api_version: v2`).
    #[arg(long = "alertmanagers.config-file", value_name = "FILE")]
    pub alertmanagers_config_file: Option<std::path::PathBuf>,
    /// How often `dns+` and `dnssrv+` Alertmanager names are resolved again.
    #[arg(long = "alertmanagers.sd-dns-interval", default_value = "30s", value_parser = parse_duration_flag)]
    pub alertmanagers_dns_interval: Duration,
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
    #[arg(long = "resend-delay", alias = "rules.alert.resend-delay", default_value = "1m", value_parser = parse_duration_flag)]
    pub resend_delay: Duration,
    /// Max time to tolerate an outage of the ruler and still restore alerts' `for` state.
    #[arg(long = "for-outage-tolerance", alias = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = parse_duration_flag)]
    pub for_outage_tolerance: Duration,
    /// Minimum time an alert pends after a `for` state restore (and the least `for` restored).
    #[arg(long = "for-grace-period", alias = "rules.alert.for-grace-period", default_value = "10m", value_parser = parse_duration_flag)]
    pub for_grace_period: Duration,
    /// How long the ruler's own results are kept in memory for its query API and StoreAPI
    /// (and read back from --data-dir's blocks after a restart); local blocks whose max time
    /// is older are deleted (with a bucket, once uploaded).
    #[arg(long = "tsdb.retention", default_value = "48h", value_parser = parse_duration_flag)]
    pub retention: Duration,
    /// Range of the blocks the results are written to under --data-dir (and uploaded to the
    /// bucket with --objstore.config-file/--objstore.config); results not yet in a block are
    /// kept in a WAL under --data-dir/wal and replayed after a restart.
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
    /// Listen host:port for gRPC: the StoreAPI over the results, Info, and the Rules API.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
    /// The bucket the embedded engine reads when no --query is given, and where the results'
    /// blocks go when an objstore flag is given (`--data-dir` holds the local blocks).
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
}

impl RuleArgs {
    /// `--for-outage-tolerance` and `--for-grace-period`.
    pub fn restore_options(&self) -> super::for_state::RestoreOptions {
        super::for_state::RestoreOptions {
            outage_tolerance: self.for_outage_tolerance,
            grace_period: self.for_grace_period,
        }
    }

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
            (
                "data-dir".into(),
                self.objstore.data_dir.display().to_string(),
            ),
            ("tsdb.block-duration".into(), d(self.block_duration)),
            ("tsdb.retention".into(), d(self.retention)),
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
    if !args.query.is_empty() || !args.query_sd_files.is_empty() {
        let targets = QueryTargets {
            specs: args.query.clone(),
            sd_files: args.query_sd_files.clone(),
            dns_interval: args.query_dns_interval,
        };
        let b = HttpBackend::new(&targets, args.query_timeout).context("--query")?;
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

/// Where a ruler keeps its results' blocks and WAL, and where it uploads them.
pub(crate) struct ResultsDbConfig<'a> {
    /// The local TSDB directory (blocks, `wal/`, `thanos.shipper.json`).
    pub dir: &'a std::path::Path,
    /// `--tsdb.block-duration`.
    pub block_duration: Duration,
    /// `--tsdb.retention`.
    pub retention: Duration,
    /// The bucket the blocks are uploaded to, and the shipper's metrics.
    pub upload: Option<(Arc<dyn storage::bucket::Bucket>, ShipperMetrics)>,
}

/// Opens the results' blocks and WAL (loading and replaying them into `results`), with a
/// shipper when `config.upload` is given; `strata rule` and the node's rule role share it.
pub(crate) async fn results_db(
    config: ResultsDbConfig<'_>,
    results: Arc<Results>,
    external: &LabelMap,
    registry: &prometheus::Registry,
) -> anyhow::Result<Arc<ResultsDb>> {
    let shipper = match config.upload {
        Some((bucket, metrics)) => Some(Shipper::new(
            bucket,
            config.dir.to_path_buf(),
            false,
            metrics,
        )),
        None => None,
    };
    let labels = external
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let wal = WalOptions {
        segment_bytes: super::wal::SEGMENT_BYTES,
        metrics: WalMetrics::register(registry).context("registering WAL metrics")?,
    };
    let deleted = prometheus::IntCounter::new(
        "strata_rule_blocks_deleted_total",
        "Local ruler blocks deleted after --tsdb.retention.",
    )
    .and_then(|c| registry.register(Box::new(c.clone())).map(|()| c))
    .context("registering retention metrics")?;
    let mut db = ResultsDb::open(
        config.dir,
        config.block_duration,
        results,
        labels,
        shipper,
        config.retention.as_millis() as i64,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        Some(wal),
    )
    .await
    .with_context(|| {
        format!(
            "opening the results' blocks and WAL in {}",
            config.dir.display()
        )
    })?;
    db.count_deletions(deleted);
    Ok(Arc::new(db))
}

/// Serves the ruler's gRPC services on `listener` until `stop`.
async fn serve_grpc(
    listener: tokio::net::TcpListener,
    routes: tonic::service::RoutesBuilder,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::server::grpc_metrics::{init_server, GrpcMetricsLayer, INFO, RULES, STORE};
    // Counted like every other process' gRPC server (`grpc_server_*`).
    init_server(&[STORE, INFO, RULES]);
    let server = tonic::transport::Server::builder()
        .layer(GrpcMetricsLayer)
        .add_routes(routes.routes());
    let incoming = crate::node::grpc::incoming(listener);
    let done = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = server.serve_with_incoming_shutdown(incoming, done).await {
        tracing::error!(error = %e, "gRPC server failed");
    }
}

/// `--alertmanagers.url` and `--alertmanagers.config-file` together.
fn alertmanagers(args: &RuleArgs) -> anyhow::Result<Alertmanagers> {
    let dns = args.alertmanagers_dns_interval;
    let mut all = Alertmanagers::from_urls(&args.alertmanagers, dns)?;
    if let Some(f) = &args.alertmanagers_config_file {
        all.extend(Alertmanagers::from_config_file(f, dns)?);
    }
    Ok(all)
}

/// Runs the ruler until SIGINT or SIGTERM.
pub async fn run(args: RuleArgs) -> anyhow::Result<ExitCode> {
    let registry = crate::server::self_metrics::registry().context("registering self metrics")?;
    let metrics = RuleMetrics::register(&registry).context("registering rule metrics")?;
    let external_labels: LabelMap = args.labels.iter().cloned().collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let backend = backend(&args, &registry, stop_rx.clone())?;
    let notifier = Arc::new(
        Notifier::new(
            NotifyOptions {
                alertmanagers: Arc::new(alertmanagers(&args)?),
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
    let upload = if args.objstore.config_file.is_some() || args.objstore.config.is_some() {
        let bucket = args
            .objstore
            .open()
            .context("opening the bucket for uploads")?;
        let metrics = ShipperMetrics::register(&registry).context("registering shipper metrics")?;
        Some((bucket, metrics))
    } else {
        None
    };
    let config = ResultsDbConfig {
        dir: &args.objstore.data_dir,
        block_duration: args.block_duration,
        retention: args.retention,
        upload,
    };
    let db = results_db(config, results.clone(), &external_labels, &registry).await?;
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
    let for_state = super::for_state::FileForState::open(&args.objstore.data_dir.join("rules"))
        .context("opening the alert for-state under --data-dir")?;
    manager.set_for_state(Arc::new(for_state), args.restore_options());
    // A bad rule file at start is fatal, with promtool's messages.
    manager.reload().await.context("loading --rule-file")?;
    let grpc_listener = tokio::net::TcpListener::bind(&args.grpc_address)
        .await
        .with_context(|| format!("listening on --grpc-address {}", args.grpc_address))?;
    let grpc_local = grpc_listener
        .local_addr()
        .context("reading the gRPC address")?;
    let mut routes = tonic::service::RoutesBuilder::default();
    let ext: std::collections::BTreeMap<String, String> = args.labels.iter().cloned().collect();
    super::grpc::add_services(&mut routes, manager.clone(), results.clone(), ext);
    tracing::info!(address = %grpc_local, "gRPC server listening");
    let grpc_task = tokio::spawn(serve_grpc(grpc_listener, routes, stop_rx.clone()));
    let (db_stop_tx, db_stop_rx) = tokio::sync::watch::channel(false);
    let db_task = tokio::spawn(db.clone().run(db_stop_rx));
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
    // After the last evaluation: the unsealed results are written and shipped.
    let _ = db_stop_tx.send(true);
    let _ = db_task.await;
    let _ = grpc_task.await;
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
