//! The store registry from a node's side: the [`Announcer`] loop of a node running the store or
//! sidecar role, and the [`RegistryService`] through which a follower's announcement reaches the
//! leader (only the leader commits).
//!
//! Unfinished: a store announces its gRPC address with no external label sets and the whole
//! time range (queriers ask its Info for the real ones); the sidecar serves no StoreAPI yet.

use std::time::Duration;

use raft::network::auth::{ClientAuth, ServerAuth};
use raft::{now_ms, ClusterSecret, Command, RaftNode, StoreInfo, WriteError, PROTOCOL_VERSION};
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

/// The generated store registry protocol (`strata.node.v1`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("strata.node.v1");
}

use pb::store_registry_client::StoreRegistryClient;
use pb::store_registry_server::{StoreRegistry, StoreRegistryServer};

/// Commits an announcement on the leader: a register when the store is new or its label sets
/// changed, else a heartbeat. Returns whether it registered.
async fn commit(node: &RaftNode, info: StoreInfo) -> Result<bool, WriteError> {
    let known = node.local_state().stores.get(&info.address).cloned();
    let now = now_ms();
    let register = known
        .is_none_or(|k| k.info.label_sets != info.label_sets || k.info.node_id != info.node_id);
    let cmd = if register {
        Command::RegisterStore {
            store: info,
            now_ms: now,
        }
    } else {
        Command::StoreHeartbeat {
            address: info.address,
            min_time_ms: info.min_time_ms,
            max_time_ms: info.max_time_ms,
            now_ms: now,
        }
    };
    node.client_write(cmd).await?;
    Ok(register)
}

/// Serves announcements from other members.
#[derive(Clone)]
pub struct RegistryService {
    node: RaftNode,
}

impl RegistryService {
    /// The service, authenticated with the cluster secret, ready for the gRPC server.
    pub fn server(
        node: RaftNode,
        secret: ClusterSecret,
    ) -> InterceptedService<StoreRegistryServer<Self>, ServerAuth> {
        InterceptedService::new(
            StoreRegistryServer::new(RegistryService { node }),
            ServerAuth::new(secret, "store-registry"),
        )
    }
}

#[tonic::async_trait]
impl StoreRegistry for RegistryService {
    async fn announce(
        &self,
        request: Request<pb::AnnounceRequest>,
    ) -> Result<Response<pb::AnnounceReply>, Status> {
        let r = request.into_inner();
        if r.protocol_version == 0 || r.protocol_version > PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "store announcement speaks protocol v{}, this node speaks v{PROTOCOL_VERSION}",
                r.protocol_version
            )));
        }
        let info = StoreInfo {
            address: r.address,
            node_id: Some(r.node_id),
            label_sets: r
                .label_sets
                .into_iter()
                .map(|l| l.labels.into_iter().collect())
                .collect(),
            min_time_ms: r.min_time_ms,
            max_time_ms: r.max_time_ms,
        };
        match commit(&self.node, info).await {
            Ok(registered) => Ok(Response::new(pb::AnnounceReply {
                protocol_version: PROTOCOL_VERSION,
                registered,
            })),
            Err(e @ WriteError::Rejected(_)) => Err(Status::invalid_argument(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

/// Announces this node's StoreAPI to the leader every `interval`.
pub struct Announcer {
    /// The local node.
    pub node: RaftNode,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// What to announce.
    pub info: StoreInfo,
    /// Heartbeat interval.
    pub interval: Duration,
}

impl Announcer {
    /// Runs until `stop`; failures are logged and retried on the next tick.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut registered_once = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            match self.once().await {
                Ok(true) if !registered_once => {
                    registered_once = true;
                    tracing::info!(address = %self.info.address, "store registered in the cluster registry");
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "store heartbeat not delivered; retrying"),
            }
        }
    }

    async fn once(&self) -> Result<bool, String> {
        let m = self.node.metrics().await;
        let Some(leader) = m.leader_id else {
            return Err("no leader".into());
        };
        if leader == self.node.id() {
            return commit(&self.node, self.info.clone())
                .await
                .map_err(|e| e.to_string());
        }
        let addr = m
            .nodes
            .iter()
            .find(|n| n.node_id == leader)
            .map(|n| n.address.clone())
            .ok_or("leader address unknown")?;
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let mut client = StoreRegistryClient::with_interceptor(ch, ClientAuth::new(&self.secret));
        let req = pb::AnnounceRequest {
            protocol_version: PROTOCOL_VERSION,
            node_id: self.node.id(),
            address: self.info.address.clone(),
            label_sets: self
                .info
                .label_sets
                .iter()
                .map(|l| pb::LabelSet {
                    labels: l
                        .clone()
                        .into_iter()
                        .collect::<std::collections::HashMap<_, _>>(),
                })
                .collect(),
            min_time_ms: self.info.min_time_ms,
            max_time_ms: self.info.max_time_ms,
        };
        let r = client
            .announce(req)
            .await
            .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
        Ok(r.into_inner().registered)
    }
}

/// The announcement of a node with no served data yet (see the module's "unfinished").
pub fn placeholder_store(node: &RaftNode) -> StoreInfo {
    StoreInfo {
        address: node.advertise_address().to_string(),
        node_id: Some(node.id()),
        label_sets: Vec::new(),
        min_time_ms: i64::MIN,
        max_time_ms: i64::MAX,
    }
}

/// Logs the registry's live store set whenever it changes (the query role reads the set itself,
/// per query, through `query::remote`).
pub async fn watch_store_set(node: RaftNode, max_age: Duration, mut stop: watch::Receiver<bool>) {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let mut last: Option<Vec<String>> = None;
    loop {
        let state = node.local_state();
        let live: Vec<String> = state
            .live_stores(now_ms(), max_age_ms)
            .iter()
            .map(|s| s.info.address.clone())
            .collect();
        if last.as_ref() != Some(&live) {
            tracing::info!(stores = ?live, "store set from the cluster registry changed");
            last = Some(live);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
    }
}
