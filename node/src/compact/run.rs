//! The compact role as a component of a process (`crate::server`): `strata compact` runs it
//! alone (one pass, or a pass every `--wait-interval` with `--wait`; `/metrics`, `/-/healthy`,
//! `/-/ready` from the common server), `strata node --role compact` runs it under Raft (the
//! leader plans and assigns jobs, every compact-role node works on its own).

use super::flags::{CompactArgs, CompactFlags};
use super::leader::{LeaderConfig, Planner};
use super::metrics::CompactMetrics;
use super::report::{ReportService, Reporter};
use super::worker::Worker;
use crate::server::{BoxFuture, Component, Listeners, Server};
use anyhow::Context as _;
use raft::{ClusterSecret, RaftNode};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use storage::bucket::Bucket;
use storage::compact::pass::PassError;
use storage::compact::{Compactor, PassReport};
use tokio::sync::watch;

/// Runs `strata compact`.
pub async fn run(args: CompactArgs) -> anyhow::Result<ExitCode> {
    let bucket = args.objstore.open()?;
    let registry = crate::server::self_metrics::registry().context("registering self metrics")?;
    let listeners = Listeners::http_only(&args.http_address).await?;
    tracing::info!(
        http = %listeners.http_addr()?,
        bucket = %bucket.describe(),
        "compactor starting"
    );
    let (done_tx, mut done_rx) = watch::channel(false);
    let role = Arc::new(CompactRole::standalone(bucket, &args, &registry, done_tx)?);
    let failed = role.failed.clone();
    let shutdown = async move {
        tokio::select! {
            () = crate::server::signal() => {}
            _ = done_rx.wait_for(|d| *d) => {}
        }
    };
    Server::new(registry)
        .with(role)
        .run(listeners, shutdown)
        .await?;
    Ok(if failed.load(Ordering::SeqCst) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

enum Mode {
    /// One pass (or one every interval), then `done` turns true.
    Standalone {
        wait: bool,
        interval: Duration,
        done: watch::Sender<bool>,
    },
    /// Under Raft.
    Cluster {
        node: RaftNode,
        secret: ClusterSecret,
        leader: LeaderConfig,
        lease_ms: i64,
    },
}

/// The compact role.
pub struct CompactRole {
    compactor: Compactor,
    metrics: CompactMetrics,
    mode: Mode,
    failed: Arc<AtomicBool>,
}

impl CompactRole {
    /// `strata compact`'s compactor.
    fn standalone(
        bucket: Arc<dyn Bucket>,
        args: &CompactArgs,
        registry: &prometheus::Registry,
        done: watch::Sender<bool>,
    ) -> anyhow::Result<Self> {
        let metrics =
            CompactMetrics::register(registry).context("registering compactor metrics")?;
        // Drawn only when stderr is a terminal; logs carry the same progress otherwise.
        let bar = crate::progress::items(0, "compacting groups");
        let compactor =
            Compactor::new(bucket, args.config()).with_progress(Arc::new(move |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if done == total {
                    bar.finish_and_clear();
                }
            }));
        Ok(CompactRole {
            compactor,
            metrics,
            mode: Mode::Standalone {
                wait: args.wait,
                interval: args.compact.wait_interval,
                done,
            },
            failed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The compact role of `strata node`: planner (acting while this node leads) and worker.
    pub fn cluster(
        bucket: Arc<dyn Bucket>,
        flags: &CompactFlags,
        data_dir: &Path,
        node: RaftNode,
        secret: ClusterSecret,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Self> {
        let metrics =
            CompactMetrics::register(registry).context("registering compactor metrics")?;
        let compactor = Compactor::new(bucket, flags.config(data_dir));
        let lease_ms = flags.job_lease_ms();
        let leader = LeaderConfig {
            plan_interval: flags.wait_interval,
            lease_ms,
            concurrency: usize::from(flags.concurrency),
            keep_done: flags.wait_interval.max(Duration::from_secs(60)) * 10,
            keep_failed: flags.wait_interval,
        };
        Ok(CompactRole {
            compactor,
            metrics,
            mode: Mode::Cluster {
                node,
                secret,
                leader,
                lease_ms,
            },
            failed: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn run_standalone(
        &self,
        wait: bool,
        interval: Duration,
        done: &watch::Sender<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let outcome = tokio::select! {
                r = run_pass_logged(&self.compactor) => Some(r),
                _ = stop.changed() => None,
            };
            match outcome {
                None => break,
                Some(Ok(report)) => self.metrics.record(&report, unix_now_s()),
                Some(Err(_)) => {
                    self.metrics.record_failure();
                    if !wait {
                        self.failed.store(true, Ordering::SeqCst);
                    }
                }
            }
            if !wait {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => break,
            }
        }
        let _ = done.send(true);
    }

    async fn run_cluster(
        &self,
        node: &RaftNode,
        secret: &ClusterSecret,
        leader: &LeaderConfig,
        lease_ms: i64,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut planner = Planner::new(
            self.compactor.clone(),
            node.clone(),
            leader.clone(),
            self.metrics.clone(),
        );
        let worker = Worker {
            compactor: self.compactor.clone(),
            reporter: Reporter {
                node: node.clone(),
                secret: secret.clone(),
            },
            lease_ms,
            metrics: self.metrics.clone(),
            running: Arc::new(Mutex::new(Default::default())),
        };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            worker.tick(&stop);
            tokio::select! {
                () = planner.tick() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

impl Component for CompactRole {
    fn name(&self) -> &str {
        "compact"
    }

    fn grpc(&self, routes: &mut tonic::service::RoutesBuilder) {
        if let Mode::Cluster { node, secret, .. } = &self.mode {
            routes.add_service(ReportService::server(node.clone(), secret.clone()));
        }
    }

    fn grpc_services(&self) -> Vec<&'static str> {
        match &self.mode {
            Mode::Cluster { .. } => vec![crate::server::grpc_metrics::COMPACT_JOB_REPORTS],
            Mode::Standalone { .. } => Vec::new(),
        }
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(async move {
            match &self.mode {
                Mode::Standalone {
                    wait,
                    interval,
                    done,
                } => self.run_standalone(*wait, *interval, done, stop).await,
                Mode::Cluster {
                    node,
                    secret,
                    leader,
                    lease_ms,
                } => {
                    self.run_cluster(node, secret, leader, *lease_ms, stop)
                        .await
                }
            }
            Ok(())
        })
    }
}

/// One standalone pass with its outcome logged: what `strata compact` runs each time and
/// `strata tools bucket compact` runs once.
pub(crate) async fn run_pass_logged(compactor: &Compactor) -> Result<PassReport, PassError> {
    let result = compactor.run_pass().await;
    match &result {
        Ok(report) => log_report(report),
        Err(e) => tracing::error!(error = %e, "compaction pass failed"),
    }
    result
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

/// Unix time in seconds.
pub(crate) fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
