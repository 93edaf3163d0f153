//! The rule role of `strata node`: every node with the role loads the same rule files, but
//! each group is evaluated by one node at a time. The Raft leader (when it runs the role)
//! plans the groups as `rule-group` jobs (`assign`) and assigns them to live rule nodes; an
//! owner renews its leases through the leader and evaluates only while it holds a group
//! (`lease`), handing the alerts' `for` state on through the job's progress. Only the owner
//! sends a group's alerts, so Alertmanager never hears one alert from two nodes. Each node keeps
//! the results it computed as `strata rule` does (`super::tsdb`): blocks and a WAL under
//! `<data-dir>/rule`, uploaded to the node's bucket (an objstore flag, or an existing
//! `<data-dir>/bucket`), the unsealed rest written and shipped when the node stops. The results
//! are queryable at once: the node's StoreAPI serves them (`super::with_results` when the store
//! role serves the port's `thanos.Store`), the node announces itself in the store registry,
//! and its query role reads them in process. `thanos.Rules` lists the groups the node holds.
//!
//! Unfinished: a leader without the rule role assigns nothing (run the role on every voter);
//! groups are not re-balanced when a node joins (assignment is sticky); renewals go one Raft
//! write per group (no batching). With the sidecar role the results are read in process by the
//! node's query role only: the sidecar's StoreAPI does not carry them to other queriers. The
//! node's HTTP `/api/v1/rules` and `/api/v1/alerts` are the query role's view aggregated over
//! every node's `thanos.Rules` (each group once, from its owner); a node without the query
//! role lists every loaded group (held or not) there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use raft::{now_ms, ClusterSecret, Command, RaftNode, Role};
use tokio::sync::watch;

use super::alert::LabelMap;
use super::assign::{plan, Action, ReplicationLiveness, JOB_KIND};
use super::backend::{EngineBackend, HttpBackend, QueryBackend};
use super::cli::parse_label_flag;
use super::cli::{results_db, ResultsDbConfig};
use super::for_state::RestoreOptions;
use super::lease::{assigned_to, Holdings};
use super::manager::{Manager, ManagerOptions};
use super::metrics::RuleMetrics;
use super::notify::{Notifier, NotifyOptions};
use super::results::Results;
use crate::cluster::jobs::{report, Report, ReportError};
use crate::flags::ObjstoreFlags;
use crate::http::params::parse_prometheus_duration;
use crate::server::{BoxFuture, Component};
use crate::sidecar::shipper::ShipperMetrics;
use storage::bucket::Bucket;

fn duration(s: &str) -> Result<Duration, String> {
    parse_prometheus_duration(s)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?} (use e.g. 30s, 5m, 1h)"))
}

/// The rule role's flags on `strata node` (`strata rule`'s names; the node's own
/// `--http-address`, `--grpc-address` and `--data-dir` serve it).
#[derive(Debug, Clone, clap::Args)]
pub struct RuleNodeFlags {
    /// Rule files to load (globs; repeatable). None: the role holds no groups.
    #[arg(long = "rule-file")]
    pub rule_files: Vec<String>,
    /// Default evaluation interval of rule groups.
    #[arg(long = "eval-interval", default_value = "1m", value_parser = duration)]
    pub eval_interval: Duration,
    /// Querier or Prometheus HTTP address rules evaluate against (repeatable); without it,
    /// the bucket's blocks.
    #[arg(long = "query", value_name = "ADDRESS")]
    pub query: Vec<String>,
    /// Timeout of one rule query.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = duration)]
    pub query_timeout: Duration,
    /// Alertmanager URL to send alerts to (repeatable).
    #[arg(long = "alertmanagers.url", value_name = "URL")]
    pub alertmanagers: Vec<String>,
    /// Timeout of one request to an Alertmanager.
    #[arg(long = "alertmanagers.send-timeout", default_value = "10s", value_parser = duration)]
    pub send_timeout: Duration,
    /// URL the alerts' generator links point to.
    #[arg(long = "alert.query-url", default_value = "")]
    pub alert_query_url: String,
    /// Label dropped from alerts before sending (repeatable).
    #[arg(long = "alert.label-drop", value_name = "LABEL")]
    pub alert_label_drop: Vec<String>,
    /// External label `name="value"` of the rules' results and alerts (repeatable).
    #[arg(long = "label", value_parser = parse_label_flag)]
    pub labels: Vec<(String, String)>,
    /// Minimum time before a firing alert is sent again.
    #[arg(long = "resend-delay", alias = "rules.alert.resend-delay", default_value = "1m", value_parser = duration)]
    pub resend_delay: Duration,
    /// Max outage (of the group's owner) after which alerts' `for` state is not restored.
    #[arg(long = "for-outage-tolerance", alias = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = duration)]
    pub for_outage_tolerance: Duration,
    /// Minimum time an alert pends after a `for` state restore (and the least `for` restored).
    #[arg(long = "for-grace-period", alias = "rules.alert.for-grace-period", default_value = "10m", value_parser = duration)]
    pub for_grace_period: Duration,
    /// How long the rules' results are kept in memory (and read back from the local blocks
    /// under `<data-dir>/rule` after a restart); local blocks whose max time is older are
    /// deleted (with a bucket, once uploaded).
    #[arg(long = "tsdb.retention", default_value = "48h", value_parser = duration)]
    pub retention: Duration,
    /// Range of the blocks the results are written to under `<data-dir>/rule` (and uploaded
    /// to the node's bucket); results not yet in a block are kept in a WAL under
    /// `<data-dir>/rule/wal` and replayed after a restart.
    #[arg(long = "tsdb.block-duration", default_value = "2h", value_parser = duration)]
    pub block_duration: Duration,
    /// Lease of a rule group: a lost owner's groups move after it lapses, within about 1.5x
    /// the lease; keep 1.5x it plus a few seconds below --eval-interval so that at most one
    /// iteration is missed (node/tests/rule_cluster.rs derives the bound).
    #[arg(long = "rule.lease-duration", default_value = "15s", value_parser = duration)]
    pub lease: Duration,
}

/// Where the role keeps its results' blocks and WAL, and where it uploads them.
pub struct RuleStorage {
    /// The local TSDB directory (`<data-dir>/rule`).
    pub dir: PathBuf,
    /// The node's bucket the blocks are uploaded to, and the shipper's metrics
    /// (`thanos_shipper_*`, shared with a sidecar role's shipper); `None`: they stay local.
    pub upload: Option<(Arc<dyn Bucket>, ShipperMetrics)>,
}

/// The rule role's component.
pub struct RuleRole {
    node: RaftNode,
    secret: ClusterSecret,
    flags: RuleNodeFlags,
    manager: Arc<Manager>,
    notifier: Arc<Notifier>,
    holdings: Arc<Holdings>,
    blocks: Blocks,
    sync_interval: Duration,
    results: Arc<Results>,
    external_labels: LabelMap,
    storage: RuleStorage,
    registry: prometheus::Registry,
    /// Whether the role adds its own `thanos.Store` and Info (no other role serves one on the
    /// node's port); else the store role's wraps the results (`super::with_results`).
    serve_store_api: bool,
    /// Whether the role serves `/api/v1/rules` and `/api/v1/alerts` itself (no query role on
    /// the node serves the cluster's aggregated view instead).
    serve_rules_http: bool,
}

type Blocks = Option<Arc<crate::query::blocks::BlockSet>>;

fn backend(
    flags: &RuleNodeFlags,
    objstore: &ObjstoreFlags,
) -> anyhow::Result<(Arc<dyn QueryBackend>, Blocks)> {
    // Without rule files nothing is queried: the role must not open (or need) a bucket then.
    if !flags.query.is_empty() || flags.rule_files.is_empty() {
        let targets = super::backend::QueryTargets {
            specs: flags.query.clone(),
            sd_files: Vec::new(),
            dns_interval: Duration::from_secs(30),
        };
        let b = HttpBackend::new(&targets, flags.query_timeout)
            .context("building the HTTP client of --query")?;
        return Ok((Arc::new(b), None));
    }
    // Read-only, as `strata rule`: a typo in the bucket config must not create an empty one.
    let bucket = objstore
        .open_existing()
        .context("opening the bucket the rules evaluate over (or give --query)")?;
    let blocks = Arc::new(
        // Its own registry: the query role registers the same block metrics in the node's.
        crate::query::blocks::BlockSet::new(bucket, &prometheus::Registry::new())
            .context("registering block metrics")?,
    );
    let engine = promql::Engine::new(promql::EngineOptions {
        lookback_delta_ms: 5 * 60 * 1000,
        max_samples: 50_000_000,
        timeout: flags.query_timeout,
    });
    Ok((
        Arc::new(EngineBackend::new(engine, blocks.clone())),
        Some(blocks),
    ))
}

impl RuleRole {
    /// The role of a node: the manager gated by this node's holdings.
    pub fn new(
        flags: RuleNodeFlags,
        objstore: &ObjstoreFlags,
        storage: RuleStorage,
        sync_interval: Duration,
        node: RaftNode,
        secret: ClusterSecret,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<RuleRole> {
        if flags.lease < Duration::from_millis(400) {
            anyhow::bail!(
                "--rule.lease-duration {:?} is too short (at least 400ms)",
                flags.lease
            );
        }
        let metrics = RuleMetrics::register(registry).context("registering rule metrics")?;
        let external_labels: LabelMap = flags.labels.iter().cloned().collect();
        let (backend, blocks) = backend(&flags, objstore)?;
        let notifier = Arc::new(
            Notifier::new(
                NotifyOptions {
                    alertmanagers: Arc::new(
                        super::alertmanagers::Alertmanagers::from_urls(
                            &flags.alertmanagers,
                            Duration::from_secs(30),
                        )
                        .context("--alertmanagers.url")?,
                    ),
                    external_labels: external_labels.clone(),
                    drop_labels: flags.alert_label_drop.clone(),
                    external_url: flags.alert_query_url.clone(),
                    capacity: 10_000,
                    timeout: flags.send_timeout,
                },
                metrics.clone(),
            )
            .context("building the Alertmanager client")?,
        );
        let results = Arc::new(Results::new(flags.retention.as_millis() as i64));
        let manager = Manager::new(
            ManagerOptions {
                rule_files: flags.rule_files.clone(),
                eval_interval: flags.eval_interval,
                external_labels: external_labels.clone(),
                external_url: flags.alert_query_url.clone(),
                resend_delay: flags.resend_delay,
            },
            backend,
            notifier.clone(),
            results.clone(),
            metrics,
        );
        let holdings = Arc::new(Holdings::new(flags.lease, flags.lease / 4));
        manager.set_gate(holdings.clone());
        manager.set_for_state(
            holdings.clone(),
            RestoreOptions {
                outage_tolerance: flags.for_outage_tolerance,
                grace_period: flags.for_grace_period,
            },
        );
        Ok(RuleRole {
            node,
            secret,
            flags,
            manager,
            notifier,
            holdings,
            blocks,
            sync_interval,
            results,
            external_labels,
            storage,
            registry: registry.clone(),
            serve_store_api: false,
            serve_rules_http: true,
        })
    }

    /// The role serves its results' StoreAPI itself (a node without a store or sidecar role).
    pub fn serving_store_api(mut self) -> Self {
        self.serve_store_api = true;
        self
    }

    /// The node's query role serves `/api/v1/rules` and `/api/v1/alerts`, aggregated over every
    /// node's `thanos.Rules` (each lists the groups it holds), so the role adds no routes.
    pub fn without_rules_http(mut self) -> Self {
        self.serve_rules_http = false;
        self
    }

    /// Whether the role keeps and serves results: it has rule files, or results of an earlier
    /// run under `<data-dir>/rule` still to be shipped. A node without either (a default node
    /// not given `--rule-file`) creates no directory, WAL or results loop.
    pub fn keeps_results(&self) -> bool {
        !self.flags.rule_files.is_empty() || self.storage.dir.exists()
    }

    /// The results as a StoreAPI (with the `--label` external labels), for the store role to
    /// serve next to the bucket's blocks.
    pub fn results_store(&self) -> crate::query::remote::serve::QueryStore {
        super::grpc::results_store(self.results.clone(), &self.external_labels)
    }

    /// The results as the query role of the same node reads them, in process.
    pub fn results_source(&self) -> Arc<dyn promql::Queryable> {
        let external = storage::labels::Labels::from_pairs(self.external_labels.iter());
        Arc::new(super::labelled::Labelled::new(
            self.results.clone(),
            external,
        ))
    }

    /// Renews the leases of the groups the state assigns to this node (taking over new ones)
    /// and drops those it no longer holds.
    async fn renew(&self) {
        let assigned = assigned_to(&self.node.local_state(), self.node.id());
        self.holdings.retain(&assigned);
        for (key, token) in assigned {
            let progress = self.holdings.progress_to_report(&key, &token);
            let r = Report {
                node_id: self.node.id(),
                token: token.clone(),
                lease: self.flags.lease,
                progress: progress.clone(),
            };
            let sent = Instant::now();
            match report(&self.node, &self.secret, &r).await {
                Ok(reply) => self
                    .holdings
                    .renewed(&key, &token, sent, progress, &reply.progress),
                Err(ReportError::Refused(reason)) => {
                    tracing::info!(group = %key, %reason, "rule group lease refused");
                    self.holdings.lost(&key);
                }
                Err(e) => {
                    tracing::debug!(group = %key, error = %e, "rule group lease not renewed; retrying")
                }
            }
        }
    }

    /// On the leader: creates, assigns and deletes `rule-group` jobs.
    async fn plan_once(&self, liveness: &mut ReplicationLiveness) {
        let m = self.node.raft().metrics().borrow().clone();
        if m.current_leader != Some(self.node.id()) {
            return;
        }
        let state = self.node.local_state();
        let rule_nodes: BTreeSet<u64> = state
            .members
            .values()
            .filter(|m| m.roles.contains(&Role::Rule))
            .map(|m| m.node_id)
            .collect();
        let matched: BTreeMap<u64, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let live = liveness.observe(
            self.node.id(),
            m.last_log_index,
            &matched,
            &rule_nodes,
            Instant::now(),
            self.flags.lease,
        );
        let groups: BTreeSet<String> = self.manager.group_keys().into_iter().collect();
        let now = now_ms();
        let lease_ms = self.flags.lease.as_millis() as i64;
        for action in plan(&groups, &live, &state.jobs, now) {
            let cmd = match &action {
                Action::Create { job_id, key } => Command::CreateJob {
                    job_id: job_id.clone(),
                    kind: JOB_KIND.into(),
                    spec: key.clone(),
                    now_ms: now,
                },
                Action::Assign { job_id, node_id } => Command::AssignJob {
                    job_id: job_id.clone(),
                    node_id: *node_id,
                    lease_expiry_ms: now_ms() + lease_ms,
                    now_ms: now_ms(),
                },
                Action::Delete { job_id } => Command::DeleteJob {
                    job_id: job_id.clone(),
                },
            };
            match self.node.client_write(cmd).await {
                Ok(_) => tracing::info!(?action, "rule group plan"),
                Err(e) => {
                    tracing::warn!(?action, error = %e, "rule group plan not committed");
                    return;
                }
            }
        }
    }

    async fn duties(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.flags.lease / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut liveness = ReplicationLiveness::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.plan_once(&mut liveness).await;
            self.renew().await;
        }
    }
}

impl RuleRole {
    /// The role of a node without rule files or earlier results: no groups to evaluate, but
    /// the leader's planning (deleting jobs of groups removed from the files) goes on.
    async fn run_without_results(
        self: Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        self.manager
            .reload()
            .await
            .map_err(|e| anyhow::anyhow!("loading --rule-file: {e}"))?;
        tracing::debug!("no --rule-file: the rule role keeps no results");
        self.duties(stop).await;
        Ok(())
    }
}

impl Component for RuleRole {
    fn name(&self) -> &str {
        "rule"
    }

    fn http(&self) -> axum::Router {
        if !self.serve_rules_http {
            return axum::Router::new();
        }
        super::api::rule_routes(self.manager.clone())
    }

    fn grpc(&self, routes: &mut tonic::service::RoutesBuilder) {
        // Every node loads every group; each lists the groups it holds, so a querier's
        // `/api/v1/rules` over the nodes shows each group once, from its owner.
        let holdings = self.holdings.clone();
        let only: super::grpc::GroupFilter =
            Arc::new(move |key| holdings.held_keys().iter().any(|k| k == key));
        routes.add_service(super::grpc::rules_server(
            self.manager.clone(),
            self.external_labels.clone(),
            Some(only),
        ));
        if self.serve_store_api && self.keeps_results() {
            let store = self.results_store();
            routes.add_service(store.store_server());
            routes.add_service(store.info_server());
        }
    }

    fn grpc_services(&self) -> Vec<&'static str> {
        use crate::server::grpc_metrics::{INFO, RULES, STORE};
        if self.serve_store_api && self.keeps_results() {
            vec![RULES, STORE, INFO]
        } else {
            vec![RULES]
        }
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(async move {
            if !self.keeps_results() {
                return self.run_without_results(stop).await;
            }
            // Before the first evaluation: the blocks and the WAL are read back into the
            // results, and every later result is logged.
            let db = results_db(
                ResultsDbConfig {
                    dir: &self.storage.dir,
                    block_duration: self.flags.block_duration,
                    retention: self.flags.retention,
                    upload: self.storage.upload.clone(),
                },
                self.results.clone(),
                &self.external_labels,
                &self.registry,
            )
            .await?;
            let (db_stop_tx, db_stop_rx) = watch::channel(false);
            let db_task = tokio::spawn(db.run(db_stop_rx));
            // A bad rule file at start is fatal, with promtool's messages.
            if let Err(e) = self.manager.reload().await {
                let _ = db_stop_tx.send(true);
                let _ = db_task.await;
                return Err(e).context("loading --rule-file");
            }
            let notify = tokio::spawn(self.notifier.clone().run(stop.clone()));
            if let Some(blocks) = &self.blocks {
                tokio::spawn(crate::query::blocks::run_sync_loop(
                    blocks.clone(),
                    self.sync_interval,
                    stop.clone(),
                ));
            }
            let duties = tokio::spawn(self.clone().duties(stop.clone()));
            let mut stop = stop;
            let _ = stop.wait_for(|s| *s).await;
            let _ = duties.await;
            self.manager.stop().await;
            // After the last evaluation: the unsealed results are written and shipped.
            let _ = db_stop_tx.send(true);
            let _ = db_task.await;
            let _ = notify.await;
            tracing::debug!(held = ?self.holdings.held_keys(), "rule role stopped");
            Ok(())
        })
    }

    fn reload(&self) -> BoxFuture<anyhow::Result<()>> {
        let manager = self.manager.clone();
        Box::pin(async move {
            manager
                .reload()
                .await
                .map_err(|e| anyhow::anyhow!("reloading rules: {e}"))
        })
    }
}
