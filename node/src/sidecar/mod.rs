//! `strata sidecar`: runs next to one Prometheus, uploads its blocks to the bucket and serves
//! its recent data over the StoreAPI, as Thanos' sidecar does.
//!
//! - `prometheus`: the Prometheus HTTP client (status, labels, reload, remote read)
//! - `remote_read`: decoding streamed remote read frames
//! - `state`: external labels, served time range, readiness
//! - `shipper`: block uploads and Thanos' shipper file
//! - `store`: the StoreAPI over remote read
//! - `reloader`: config and rule file watching, `POST /-/reload`
//!
//! [`Sidecar`] is the role as a component (crate::server): `strata sidecar` runs it alone,
//! `strata node --role sidecar` under the cluster. Unfinished: the SAMPLES remote read
//! fallback for Prometheus older than 2.13, chunk hashes, sharding and
//! `without_replica_labels`, `--shipper.upload-concurrency`, hard-linked upload copies.

pub mod prometheus;
pub mod reloader;
pub mod remote_read;
pub mod shipper;
#[cfg(test)]
mod shipper_tests;
pub mod state;
pub mod store;

use self::prometheus::PromClient;
use crate::http::params::{parse_prometheus_duration, parse_time};
use crate::server::{BoxFuture, Component, Listeners, Server};
use anyhow::{bail, Context as _};
use state::PromState;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use storage::bucket::{open_from_flags, Bucket, BucketOptions};
use tokio::sync::watch;
use tonic::service::RoutesBuilder;

/// Flags of `strata sidecar` (Thanos' names and defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct SidecarArgs {
    /// Listen host:port for HTTP endpoints (/metrics, /-/healthy, /-/ready).
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    /// Listen host:port for the gRPC StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
    /// Path to a YAML file with the object store configuration; without it (or
    /// --objstore.config) nothing is uploaded.
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    pub objstore_config_file: Option<PathBuf>,
    /// The object store configuration as inline YAML.
    #[arg(
        long = "objstore.config",
        value_name = "YAML",
        conflicts_with = "objstore_config_file"
    )]
    pub objstore_config: Option<String>,
    /// Oldest data served: RFC3339 time, Unix seconds, or a duration before now (-1d, -2h45m).
    #[arg(long = "min-time", default_value = "0000-01-01T00:00:00Z")]
    pub min_time: String,
    /// The sidecar role's own flags.
    #[command(flatten)]
    pub sidecar: SidecarFlags,
}

/// The sidecar role's own flags, shared by `strata sidecar` and `strata node --role sidecar`.
#[derive(Debug, Clone, clap::Args)]
pub struct SidecarFlags {
    /// URL of the Prometheus to serve and upload from.
    #[arg(long = "prometheus.url", default_value = "http://localhost:9090")]
    pub prometheus_url: String,
    /// How often Prometheus' external labels and lowest timestamp are re-read (the heartbeat).
    #[arg(long = "prometheus.get_config_interval", default_value = "30s", value_parser = parse_duration_flag)]
    pub get_config_interval: Duration,
    /// Prometheus' data directory (--storage.tsdb.path).
    #[arg(long = "tsdb.path", default_value = "./data")]
    pub tsdb_path: PathBuf,
    /// Also upload compacted blocks (level > 1), e.g. to migrate an existing Prometheus once.
    #[arg(long = "shipper.upload-compacted")]
    pub upload_compacted: bool,
    /// How often the shipper looks for new blocks.
    #[arg(long = "shipper.sync-interval", default_value = "30s", value_parser = parse_duration_flag, hide = true)]
    pub shipper_interval: Duration,
    /// Prometheus' config file to watch; a change triggers POST /-/reload.
    #[arg(long = "reloader.config-file", value_name = "FILE")]
    pub reloader_config_file: Option<PathBuf>,
    /// Rule directory to watch (repeatable); a change triggers POST /-/reload.
    #[arg(long = "reloader.rule-dir", value_name = "DIR")]
    pub reloader_rule_dirs: Vec<PathBuf>,
    /// How often watched files are checked.
    #[arg(long = "reloader.watch-interval", default_value = "3m", value_parser = parse_duration_flag)]
    pub reloader_interval: Duration,
}

fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_prometheus_duration(s)
        .and_then(|ms| u64::try_from(ms).ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h)"))
}

/// `--min-time` in ms: RFC3339, Unix seconds, or `-<duration>` before `now_ms`; Thanos' default
/// `0000-01-01T00:00:00Z` means no bound.
pub fn parse_min_time(s: &str, now_ms: i64) -> Result<i64, String> {
    if s == "0000-01-01T00:00:00Z" {
        return Ok(i64::MIN);
    }
    if let Some(d) = s.strip_prefix('-').and_then(parse_prometheus_duration) {
        return Ok(now_ms.saturating_sub(d));
    }
    if let Some(d) = parse_prometheus_duration(s) {
        return Ok(now_ms.saturating_sub(d));
    }
    parse_time(s).map_err(|e| format!("--min-time {s:?}: {e} (use RFC3339 or e.g. -2d)"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the sidecar until SIGINT or SIGTERM.
pub async fn run_cli(args: SidecarArgs) -> anyhow::Result<ExitCode> {
    let limit_min = parse_min_time(&args.min_time, now_ms()).map_err(anyhow::Error::msg)?;
    let registry = crate::server::self_metrics::registry().context("registering self metrics")?;
    let bucket = if args.objstore_config_file.is_some() || args.objstore_config.is_some() {
        let metrics =
            crate::server::self_metrics::bucket_metrics().context("building bucket metrics")?;
        let b = open_from_flags(
            args.objstore_config_file.as_deref(),
            args.objstore_config.as_deref(),
            &args.sidecar.tsdb_path,
            &BucketOptions::default(),
            &metrics,
        )
        .context("opening the bucket")?;
        Some(b)
    } else {
        None
    };
    let sidecar = Sidecar::new(args.sidecar, limit_min, bucket, &registry)?;
    let listeners = Listeners::bind(&args.http_address, &args.grpc_address).await?;
    tracing::info!(
        http = %listeners.http_addr()?,
        grpc = %listeners.grpc_addr()?,
        prometheus = %sidecar.flags.prometheus_url,
        "sidecar listening"
    );
    Server::new(registry)
        .with(Arc::new(sidecar))
        .run(listeners, crate::server::signal())
        .await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The sidecar role: flags checked, bucket opened, metrics registered; a component of its
/// process (StoreAPI over Prometheus' remote read, ready while Prometheus answers, and the
/// shipper, heartbeat and reloader as its task).
pub struct Sidecar {
    flags: SidecarFlags,
    client: PromClient,
    state: Arc<PromState>,
    bucket: Option<Arc<dyn Bucket>>,
    registry: ::prometheus::Registry,
    prom_up: ::prometheus::IntGauge,
    /// The shipper's metrics when another role of the process ships blocks too (one family
    /// per name in the registry); `None`: registered at start.
    shipper_metrics: Option<shipper::ShipperMetrics>,
}

impl Sidecar {
    /// Validates `flags`; uploads to `bucket` when given; serves data from `limit_min` (ms) on.
    pub fn new(
        flags: SidecarFlags,
        limit_min: i64,
        bucket: Option<Arc<dyn Bucket>>,
        registry: &::prometheus::Registry,
    ) -> anyhow::Result<Self> {
        let client = PromClient::new(&flags.prometheus_url).map_err(anyhow::Error::msg)?;
        match &bucket {
            Some(b) => tracing::info!(bucket = %b.describe(), "uploading Prometheus' blocks"),
            None => tracing::info!("no object store configured: blocks are not uploaded"),
        }
        let prom_up = ::prometheus::IntGauge::new(
            "thanos_sidecar_prometheus_up",
            "Boolean indicator whether the sidecar can reach its Prometheus peer.",
        )?;
        registry.register(Box::new(prom_up.clone()))?;
        Ok(Sidecar {
            flags,
            client,
            state: Arc::new(PromState::new(limit_min)),
            bucket,
            registry: registry.clone(),
            prom_up,
            shipper_metrics: None,
        })
    }

    /// Counts the shipper's work in `metrics`, shared with the process' other shipper.
    pub fn with_shipper_metrics(mut self, metrics: shipper::ShipperMetrics) -> Self {
        self.shipper_metrics = Some(metrics);
        self
    }

    /// The labels and time range Prometheus serves, once known (for the registry).
    pub fn state(&self) -> Arc<PromState> {
        self.state.clone()
    }

    /// Uploads and reloads until `stop` turns true; fails when Prometheus' setup is unusable
    /// (no external labels, block durations that let it compact).
    async fn serve(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let startup = tokio::select! {
            r = self.wait_for_prometheus() => r,
            _ = stop.wait_for(|v| *v) => Ok(false),
        };
        if !startup? {
            return Ok(());
        }
        let tasks = self.start_loops(stop.clone())?;
        let _ = stop.wait_for(|v| *v).await;
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }

    /// Waits until Prometheus answers, checks its flags (when uploading) and reads its external
    /// labels; `Ok(true)` once ready to serve.
    async fn wait_for_prometheus(&self) -> anyhow::Result<bool> {
        let mut backoff = Backoff::new(self.flags.get_config_interval);
        if self.bucket.is_some() {
            loop {
                match self.client.flags().await {
                    Ok(flags) => {
                        check_block_durations(&flags, self.flags.upload_compacted)
                            .map_err(anyhow::Error::msg)?;
                        break;
                    }
                    Err(prometheus::PromError::Status { status: 404, .. }) => {
                        tracing::warn!("Prometheus has no flags endpoint (older than 2.2); no extra validation is done");
                        break;
                    }
                    Err(e) if e.is_unreachable() => {
                        tracing::warn!(error = %e, "failed to get Prometheus flags. Is Prometheus running? Retrying");
                        backoff.wait().await;
                    }
                    Err(e) => bail!("checking Prometheus' flags: {e}"),
                }
            }
        }
        let mut backoff = Backoff::new(self.flags.get_config_interval);
        loop {
            match self.heartbeat().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to fetch initial external labels. Is Prometheus running? Retrying");
                    backoff.wait().await;
                }
            }
        }
        let labels = self.state.external_labels().unwrap_or_default();
        if labels.is_empty() {
            self.state.set_down();
            bail!(
                "no external labels configured on Prometheus server, uniquely identifying external \
                 labels must be configured (global.external_labels in prometheus.yml)"
            );
        }
        tracing::info!(external_labels = ?labels.to_map(), "successfully loaded Prometheus external labels");
        Ok(true)
    }

    /// Reads external labels and the lowest timestamp; marks Prometheus up or down.
    async fn heartbeat(&self) -> Result<(), prometheus::PromError> {
        let result = async {
            let lowest = self.client.lowest_timestamp().await?;
            let labels = self.client.external_labels().await?;
            Ok((labels, lowest))
        }
        .await;
        match result {
            Ok((labels, lowest)) => {
                self.state.update(labels, lowest);
                self.prom_up.set(1);
                Ok(())
            }
            Err(e) => {
                self.state.set_down();
                self.prom_up.set(0);
                Err(e)
            }
        }
    }

    /// Starts the heartbeat, the shipper and the reloader.
    fn start_loops(
        &self,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut tasks = Vec::new();
        let hb = Heartbeat {
            client: self.client.clone(),
            state: self.state.clone(),
            prom_up: self.prom_up.clone(),
            interval: self.flags.get_config_interval,
        };
        tasks.push(tokio::spawn(hb.run(stop.clone())));

        if let Some(bucket) = &self.bucket {
            let metrics = match &self.shipper_metrics {
                Some(m) => m.clone(),
                None => shipper::ShipperMetrics::register(&self.registry)
                    .context("registering shipper metrics")?,
            };
            let shipper = shipper::Shipper::new(
                bucket.clone(),
                self.flags.tsdb_path.clone(),
                self.flags.upload_compacted,
                metrics,
            );
            tasks.push(tokio::spawn(run_shipper(
                shipper,
                self.state.clone(),
                self.flags.shipper_interval,
                stop.clone(),
            )));
        }

        let watched = reloader::Watched {
            config_file: self.flags.reloader_config_file.clone(),
            rule_dirs: self.flags.reloader_rule_dirs.clone(),
        };
        if !watched.is_empty() {
            let metrics = reloader::ReloaderMetrics::register(&self.registry)
                .context("registering reloader metrics")?;
            let r = reloader::Reloader::new(
                self.client.clone(),
                watched,
                self.flags.reloader_interval,
                metrics,
            );
            tasks.push(tokio::spawn(r.run(stop)));
        }
        Ok(tasks)
    }
}

impl Component for Sidecar {
    fn name(&self) -> &str {
        "sidecar"
    }

    fn grpc(&self, routes: &mut RoutesBuilder) {
        let store = store::SidecarStore::new(self.client.clone(), self.state.clone());
        routes.add_service(store.store_server());
        routes.add_service(store.info_server());
    }

    fn grpc_services(&self) -> Vec<&'static str> {
        vec![
            crate::server::grpc_metrics::STORE,
            crate::server::grpc_metrics::INFO,
        ]
    }

    fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(self.serve(stop))
    }
}

/// The periodic heartbeat after start-up (Thanos re-reads the config as its heartbeat).
struct Heartbeat {
    client: PromClient,
    state: Arc<PromState>,
    prom_up: ::prometheus::IntGauge,
    interval: Duration,
}

impl Heartbeat {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|v| *v) => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let r = async {
                let lowest = self.client.lowest_timestamp().await?;
                let labels = self.client.external_labels().await?;
                Ok::<_, prometheus::PromError>((labels, lowest))
            }
            .await;
            match r {
                Ok((labels, _)) if labels.is_empty() => {
                    tracing::warn!(
                        "Prometheus reports no external labels; keeping the previous ones"
                    );
                    self.state.set_down();
                    self.prom_up.set(0);
                }
                Ok((labels, lowest)) => {
                    if !self.state.is_ready() {
                        tracing::info!("Prometheus is reachable again");
                    }
                    self.state.update(labels, lowest);
                    self.prom_up.set(1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat to Prometheus failed; not ready");
                    self.state.set_down();
                    self.prom_up.set(0);
                }
            }
        }
    }
}

/// Runs shipper rounds every `interval`; after a failed round retries sooner, with backoff.
async fn run_shipper(
    shipper: shipper::Shipper,
    state: Arc<PromState>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(interval);
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(labels) = state.external_labels().filter(|l| !l.is_empty()) else {
            wait = interval;
            continue;
        };
        match shipper.sync(&labels.to_map()).await {
            Ok(r) => {
                if !r.uploaded.is_empty() || !r.found.is_empty() {
                    tracing::info!(
                        uploaded = r.uploaded.len(),
                        found = r.found.len(),
                        "shipper round done"
                    );
                }
                backoff.reset();
                wait = interval;
            }
            Err(e) => {
                wait = backoff.next();
                tracing::error!(error = %e, retry_in = ?wait, "shipper round failed");
            }
        }
    }
}

/// Exponential backoff from 500 ms up to `max`.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(500).min(max),
            max,
        }
    }

    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = Duration::from_millis(500).min(self.max);
    }

    async fn wait(&mut self) {
        let d = self.next();
        tokio::time::sleep(d).await;
    }
}

/// Thanos' `validatePrometheus`: uploading needs Prometheus' local compaction off
/// (`--storage.tsdb.min-block-duration` equal to `--storage.tsdb.max-block-duration`), or a
/// compacted block could replace level-1 blocks before they are uploaded; with
/// `--shipper.upload-compacted` compacted blocks are shipped too and differing durations pass.
pub fn check_block_durations(
    flags: &std::collections::BTreeMap<String, String>,
    upload_compacted: bool,
) -> Result<(), String> {
    let min = flags.get("storage.tsdb.min-block-duration");
    let max = flags.get("storage.tsdb.max-block-duration");
    let (Some(min), Some(max)) = (min, max) else {
        tracing::warn!(
            "Prometheus does not report its block durations; no extra validation is done"
        );
        return Ok(());
    };
    let parse = |s: &str| {
        parse_prometheus_duration(s)
            .ok_or_else(|| format!("Prometheus reports an unparsable block duration {s:?}"))
    };
    let (min_ms, max_ms) = (parse(min)?, parse(max)?);
    if min_ms != max_ms && !upload_compacted {
        return Err(format!(
            "found that TSDB Max time is {max} and Min time is {min}. Compaction needs to be \
             disabled (storage.tsdb.min-block-duration = storage.tsdb.max-block-duration), or \
             use --shipper.upload-compacted"
        ));
    }
    if min_ms != 2 * 3_600_000 {
        tracing::warn!(block_time = %min, "found that TSDB block time is not 2h. Only 2h block time is recommended.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/api/v1/status/flags` of Prometheus 2.42 (captured) with 30s blocks.
    const FLAGS_EQUAL: &str = include_str!("testdata/status_flags.json");

    fn flags(json: &str) -> std::collections::BTreeMap<String, String> {
        let data = super::prometheus::api_data("u", json).unwrap();
        serde_json::from_value(data).unwrap()
    }

    #[test]
    fn equal_block_durations_pass_and_default_ones_need_upload_compacted() {
        let f = flags(FLAGS_EQUAL);
        assert_eq!(check_block_durations(&f, false), Ok(()));
        // Prometheus' defaults: min 2h, max 10% of retention (here 1d12h).
        let mut d = f.clone();
        d.insert("storage.tsdb.min-block-duration".into(), "2h".into());
        d.insert("storage.tsdb.max-block-duration".into(), "1d12h".into());
        let err = check_block_durations(&d, false).unwrap_err();
        assert!(err.contains("Compaction needs to be disabled"), "{err}");
        assert_eq!(check_block_durations(&d, true), Ok(()));
        d.insert("storage.tsdb.max-block-duration".into(), "forever".into());
        assert!(check_block_durations(&d, true).is_err());
    }

    #[test]
    fn min_time_accepts_rfc3339_relative_and_the_thanos_default() {
        let now = 1_700_000_000_000;
        assert_eq!(parse_min_time("0000-01-01T00:00:00Z", now), Ok(i64::MIN));
        assert_eq!(parse_min_time("-1d", now), Ok(now - 86_400_000));
        assert_eq!(parse_min_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(
            parse_min_time("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000)
        );
        assert!(parse_min_time("yesterday", now).is_err());
    }
}
