//! `strata node`: a symmetric cluster member. It locks its data directory, keeps its node id
//! there, serves Raft and cluster admin on its gRPC port, joins (or, by the bootstrap rule,
//! starts) the cluster, and runs its roles as components of one server (crate::server): query
//! (the querier of `strata query`, reading the registry's stores and `--endpoint`, else the
//! bucket), store (the StoreAPI over the bucket's blocks), sidecar (the sidecar of `strata
//! sidecar`, uploading to the node's bucket); store and sidecar are announced in the store
//! registry; rule (rule groups as Raft jobs, results in blocks and a WAL under `<data-dir>/rule`,
//! uploaded to the node's bucket, and served live: by the store role's StoreAPI, else the rule
//! role's own, announced in the registry, and read in process by the query role) and compact
//! (compaction as Raft jobs).
//!
//! - `datadir`: the data directory lock and node id
//! - `grpc`: the gRPC listener (TCP_NODELAY on every connection)
//! - `member`: the cluster membership as a component (joiner, leader duties, leave)
//! - `roles`: `--role` parsing and the role components of a node

mod datadir;
pub mod grpc;
mod member;
mod roles;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use raft::{Member, RaftNode, RaftNodeConfig, Role, PROTOCOL_VERSION};
use tracing::Instrument as _;

use crate::cluster::discovery::{derive_advertise_address, Discovery, PeerSpec};
use crate::cluster::http::NodeHttp;
use crate::cluster::metrics::RaftGauges;
use crate::flags::{EndpointFlags, ObjstoreFlags};
use crate::query::{self, QueryArgs};
use crate::server::{Listeners, Server};
use crate::sidecar::SidecarFlags;
use datadir::DataDir;
use member::ClusterMember;
use roles::{check_roles, parse_role};

const AFTER_HELP: &str = "\
Joining and bootstrapping:
  A node whose data directory already holds cluster state resumes it. Otherwise it resolves
  --cluster.peers and asks each peer to let it join (following redirects to the leader),
  retrying with backoff; it joins as a learner and the leader promotes learners up to five
  voters. A new cluster is bootstrapped only
    1. by a node started with --cluster.bootstrap (it forms a one-node cluster, even next to an
       existing one: it then stays alone and never joins or disturbs the other), or
    2. by the agreed seed: the node whose advertise address is the lowest of the resolved peer
       addresses, once every other resolved peer answers that it is uninitialized.
  All other nodes wait and retry, so one peer list (e.g. dns+peers:10901 listing every node)
  cannot form two clusters. If nodes may resolve different sets (DNS still propagating), start
  exactly one node with --cluster.bootstrap instead.

Every cluster RPC carries a credential derived from --cluster.secret-file; a peer without it is
refused (both sides log it).

Leaving and Raft timing:
  SIGTERM (or SIGINT) is a graceful leave: the node stops its roles, leaves the cluster and
  exits. A leader first hands leadership to a voter whose log has caught up (it asks it to
  campaign at once, Raft's TimeoutNow), so a new leader is in place within a round trip or two
  and then removes the old one; if no voter can take over, the leader removes itself and the
  others elect a leader after about one election timeout. A follower asks the leader to remove
  it. `strata cluster leave` does the same without stopping the node. A restarted node that
  left joins again.
  openraft makes a follower stand for election only after the leader lease
  (--raft.election-timeout-max) plus a random timeout between --raft.election-timeout-min and
  --raft.election-timeout-max have passed since the last heartbeat: 1.2-1.6 s with the
  defaults (heartbeat 250 ms, election 400-800 ms), so a lost leader is replaced within about
  2 s, while a heartbeat can be late by almost five intervals (a busy or paused machine)
  before anyone stands.";

/// Flags of `strata node` (Thanos' names where Thanos has the flag).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct NodeArgs {
    /// Where the bucket is.
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
    /// Listen host:port for gRPC: Raft transport, cluster admin and StoreAPI.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    pub grpc_address: String,
    /// Listen host:port for HTTP: cluster status, probes, metrics and the query API.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    /// A peer's gRPC address: host:port, or dns+name:port for every address a DNS name resolves
    /// to (re-resolved while joining). Repeatable.
    #[arg(long = "cluster.peers", value_name = "PEER")]
    pub peers: Vec<PeerSpec>,
    /// The gRPC host:port peers dial to reach this node. Default: --grpc-address when it names a
    /// host, else the --cluster.peers address that is on this machine with the gRPC port.
    #[arg(long = "cluster.advertise-address", value_name = "HOST:PORT")]
    pub advertise_address: Option<String>,
    /// File holding the cluster's shared secret (at least 16 bytes). Required unless
    /// --cluster.insecure is given.
    #[arg(
        long = "cluster.secret-file",
        value_name = "FILE",
        required_unless_present = "insecure"
    )]
    pub secret_file: Option<PathBuf>,
    /// Run without a cluster secret (a well-known one is used, so anyone can join): for local
    /// experiments only.
    #[arg(long = "cluster.insecure", conflicts_with = "secret_file")]
    pub insecure: bool,
    /// Bootstrap a new single-node cluster with this node (see "Joining and bootstrapping").
    #[arg(long = "cluster.bootstrap")]
    pub bootstrap: bool,
    /// Roles to run, a comma list of query, store, compact, rule, sidecar. Query, store,
    /// compact, rule (with --rule-file, ...) and sidecar (with the --prometheus.url,
    /// --tsdb.path, ... flags below) work today. Store and sidecar both serve the StoreAPI on
    /// the one gRPC port, so a node runs one of them.
    #[arg(long = "role", value_delimiter = ',', value_parser = parse_role, default_value = "query,store,compact,rule")]
    pub roles: Vec<Role>,
    /// How often a store or sidecar heartbeats its registry entry.
    #[arg(long = "cluster.store-heartbeat-interval", default_value = "5s", value_parser = humantime::parse_duration)]
    pub store_heartbeat: Duration,
    /// Raft leader heartbeat interval.
    #[arg(long = "raft.heartbeat-interval", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub raft_heartbeat: Duration,
    /// Lower bound of the randomized Raft election timeout. A follower stands for election
    /// after the leader lease (--raft.election-timeout-max) plus a random timeout between min
    /// and max since the last heartbeat: 1.2-1.6 s with the defaults (see "Leaving and Raft
    /// timing").
    #[arg(long = "raft.election-timeout-min", default_value = "400ms", value_parser = humantime::parse_duration)]
    pub election_min: Duration,
    /// Upper bound of the randomized Raft election timeout; also openraft's leader lease,
    /// during which followers refuse to vote for another candidate.
    #[arg(long = "raft.election-timeout-max", default_value = "800ms", value_parser = humantime::parse_duration)]
    pub election_max: Duration,
    /// StoreAPI endpoints for the query role.
    #[command(flatten)]
    pub endpoints: EndpointFlags,
    /// How often the query and store roles look for new or removed blocks in the bucket.
    #[arg(long = "sync-block-duration", default_value = "3m", value_parser = humantime::parse_duration)]
    pub sync_interval: Duration,
    /// How long SIGTERM waits for the graceful leave (handover and removal) before the node
    /// stops anyway.
    #[arg(long = "cluster.leave-timeout", default_value = "15s", value_parser = humantime::parse_duration)]
    pub leave_timeout: Duration,
    /// Heartbeat age after which the leader removes a store from the registry.
    #[arg(long = "cluster.store-expiry", default_value = "30s", value_parser = humantime::parse_duration)]
    pub store_expiry: Duration,
    /// The sidecar role's flags (used with --role sidecar).
    #[command(flatten)]
    pub sidecar: SidecarFlags,
    /// The rule role's flags (used with --role rule).
    #[command(flatten)]
    pub rule: crate::rule::cluster::RuleNodeFlags,
    /// The compact role's flags (used with --role compact; `strata compact`'s names).
    #[command(flatten)]
    pub compact: crate::compact::CompactFlags,
    /// The store role's caches and limits (used with --role store; `strata store`'s names).
    #[command(flatten)]
    pub store: crate::store::flags::StoreCacheFlags,
}

/// Runs the node until SIGINT or SIGTERM.
pub async fn run(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::lock(&args.objstore.data_dir)?;
    let node_id = dir.node_id()?;
    let span = tracing::info_span!("node", node_id);
    run_locked(args, dir, node_id).instrument(span).await
}

async fn run_locked(args: NodeArgs, dir: DataDir, node_id: u64) -> anyhow::Result<ExitCode> {
    let roles = check_roles(&args.roles)?;
    let secret = crate::cluster::load_secret(args.secret_file.as_deref(), args.insecure)?;
    let discovery = Arc::new(Discovery::new(args.peers.clone())?);
    let advertise = match &args.advertise_address {
        Some(a) => a.clone(),
        None => derive_advertise_address(&args.grpc_address, &discovery, args.bootstrap).await?,
    };
    let listeners = Listeners::bind(&args.http_address, &args.grpc_address).await?;
    let http_local = listeners.http_addr()?;
    let me = Member {
        node_id,
        grpc_address: advertise.clone(),
        http_address: http_advertise(&advertise, http_local),
        roles: roles.clone(),
        software_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: PROTOCOL_VERSION,
        joined_at_ms: 0,
    };
    let mut config = RaftNodeConfig::new(
        node_id,
        dir.path().to_path_buf(),
        advertise.clone(),
        secret.clone(),
    );
    config.timeouts.heartbeat = args.raft_heartbeat;
    config.timeouts.election_min = args.election_min;
    config.timeouts.election_max = args.election_max;
    let node = RaftNode::open(config)
        .await
        .context("opening the Raft node")?;
    tracing::info!(grpc = %listeners.grpc_addr()?, advertise = %advertise, http = %http_local, roles = ?roles, "node listening");
    if roles.contains(&Role::Query) {
        tracing::info!(
            "query it at {}/api/v1/query?query=up (Prometheus' HTTP API; Grafana: a Prometheus data source at {})",
            browsable_url(http_local),
            browsable_url(http_local)
        );
    }

    let registry = crate::server::self_metrics::registry().context("registering self metrics")?;
    let node_http = Arc::new(NodeHttp {
        node: node.clone(),
        store_max_age_ms: i64::try_from(args.store_expiry.as_millis()).unwrap_or(i64::MAX),
    });
    let (components, announce_store) = roles::components(&roles, &args, &node, &registry)?;
    let member = ClusterMember {
        node: node.clone(),
        me,
        discovery,
        secret,
        bootstrap: args.bootstrap,
        http: node_http,
        gauges: RaftGauges::register(&registry).context("registering Raft metrics")?,
        announce_store,
        watch_stores: roles.contains(&Role::Query),
        store_heartbeat: args.store_heartbeat,
        store_expiry: args.store_expiry,
        leave_timeout: args.leave_timeout,
    };
    let mut server = Server::new(registry.clone())
        .with_routes(
            node.grpc_routes(),
            &[
                crate::server::grpc_metrics::RAFT_TRANSPORT,
                crate::server::grpc_metrics::CLUSTER_ADMIN,
            ],
        )
        .with(Arc::new(member));
    for c in components {
        server = server.with(c);
    }
    // The blocks page's API, over the bucket as the roles left it: a reader opens it only if
    // it exists, and the roles that need it have already refused a missing one.
    match args.objstore.open_existing() {
        Ok(bucket) => server = server.with(Arc::new(crate::ui::blocks_api::BlocksApi::new(bucket))),
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "no bucket: /api/v1/blocks is not served")
        }
    }
    let shutdown = async {
        query::wait_for_signal().await;
        tracing::info!("signal received: stopping the roles, leaving the cluster, then stopping");
    };
    let served = server
        .run(listeners, shutdown.instrument(tracing::Span::current()))
        .await;
    if let Err(e) = node.shutdown().await {
        tracing::warn!(error = %e, "Raft shutdown");
    }
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM's graceful leave, bounded by `limit`; a node alone in its cluster (or in none)
/// just stops.
pub(crate) async fn leave_on_shutdown(node: &RaftNode, limit: Duration) {
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if membership.get_node(&node.id()).is_none() {
        tracing::info!("not a member of a cluster; nothing to leave");
        return;
    }
    if membership.nodes().all(|(id, _)| *id == node.id()) {
        tracing::info!("the only member of its cluster; stopping without leaving");
        return;
    }
    match tokio::time::timeout(limit, node.leave()).await {
        Ok(Ok(o)) => tracing::info!(
            handed_over_to = ?o.handed_over_to,
            removed_by = o.removed_by,
            "left the cluster"
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not leave the cluster; stopping anyway (the others see a lost node)")
        }
        Err(_) => {
            tracing::warn!(
                ?limit,
                "leaving took too long; stopping anyway (the others see a lost node)"
            )
        }
    }
}

/// The HTTP address peers should use: the listen address, or the advertise host with the HTTP
/// port when it listens on every interface.
fn http_advertise(grpc_advertise: &str, http_local: SocketAddr) -> String {
    if !http_local.ip().is_unspecified() {
        return http_local.to_string();
    }
    match grpc_advertise.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{}", http_local.port()),
        None => http_local.to_string(),
    }
}

/// The registry's stores, for the query role: `own_store`, this node's blocks and
/// `own_results`, its rule role's results, are read in process; `results_in_own_store`: the
/// node's StoreAPI serves those results (no sidecar role serves it instead). Liveness is the
/// leader's judgement (it deregisters a store whose heartbeats stop, by its own monotonic
/// clock); re-judging the heartbeat stamps with this node's wall clock would drop every store
/// when the clocks differ.
pub(crate) fn registry_stores(
    node: &RaftNode,
    own_store: bool,
    own_results: Option<Arc<dyn promql::Queryable>>,
    results_in_own_store: bool,
) -> query::remote::RegistryStores {
    let in_process = own_store || (own_results.is_some() && results_in_own_store);
    let own_address = in_process.then(|| node.advertise_address().to_string());
    let node = node.clone();
    query::remote::RegistryStores {
        list: Arc::new(move || node.local_state().stores.keys().cloned().collect()),
        own_address,
        own_blocks: own_store,
        own_results,
    }
}

/// The querier's flags for the query role: the node's HTTP address, bucket and endpoints, and
/// `strata query`'s defaults otherwise (the node does not expose the other query.* flags yet).
pub(crate) fn query_args(args: &NodeArgs) -> QueryArgs {
    QueryArgs {
        http_address: args.http_address.clone(),
        objstore: ObjstoreFlags::clone(&args.objstore),
        lookback_delta: Duration::from_secs(300),
        max_samples: 50_000_000,
        timeout: Duration::from_secs(120),
        max_concurrent: 20,
        sync_interval: args.sync_interval,
        cors_origin: ".*".into(),
        endpoints: args.endpoints.clone(),
        // Not bound: the node's one gRPC port (--grpc-address) carries its roles' services.
        grpc_address: args.grpc_address.clone(),
    }
}

/// The URL a person on this machine opens for `addr`: an unspecified address (0.0.0.0, ::)
/// means every interface, so localhost reaches it.
fn browsable_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod url_tests {
    use super::browsable_url;

    #[test]
    fn unspecified_addresses_are_shown_as_localhost() {
        assert_eq!(
            browsable_url("0.0.0.0:10902".parse().unwrap()),
            "http://localhost:10902"
        );
        assert_eq!(
            browsable_url("[::]:9".parse().unwrap()),
            "http://localhost:9"
        );
        assert_eq!(
            browsable_url("127.0.0.1:80".parse().unwrap()),
            "http://127.0.0.1:80"
        );
    }
}
