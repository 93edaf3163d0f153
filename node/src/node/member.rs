//! The cluster membership of `strata node` as a component: the store registry's gRPC service,
//! `/api/v1/status/cluster` and `/api/v1/stores` of the cluster, readiness once the node is in
//! a cluster with a leader, and as its task the joiner, the leader's duties, the Raft gauges,
//! the registry heartbeats of the roles that serve a StoreAPI, and the graceful leave on stop.

use std::sync::Arc;
use std::time::Duration;

use raft::{ClusterSecret, Member, RaftNode};
use tokio::sync::watch;
use tonic::service::RoutesBuilder;
use tracing::Instrument as _;

use crate::cluster::discovery::Discovery;
use crate::cluster::http::{status_routes, NodeHttp};
use crate::cluster::join::Joiner;
use crate::cluster::leader::LeaderDuties;
use crate::cluster::metrics::RaftGauges;
use crate::cluster::registry::{placeholder_store, watch_store_set, Announcer, RegistryService};
use crate::server::{BoxFuture, Component};

/// The node's membership and the cluster duties that go with it.
pub struct ClusterMember {
    /// The local Raft node.
    pub node: RaftNode,
    /// This node's member record, as the joiner announces it.
    pub me: Member,
    /// Where peers are.
    pub discovery: Arc<Discovery>,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// `--cluster.bootstrap`.
    pub bootstrap: bool,
    /// The node's HTTP handlers' state (its readiness is the cluster's).
    pub http: Arc<NodeHttp>,
    /// Raft gauges, updated by the task.
    pub gauges: RaftGauges,
    /// Whether a role serves a StoreAPI on the gRPC port, to be announced in the registry.
    pub announce_store: bool,
    /// Whether the query role runs (the store set from the registry is then logged).
    pub watch_stores: bool,
    /// `--cluster.store-heartbeat-interval`.
    pub store_heartbeat: Duration,
    /// `--cluster.store-expiry`.
    pub store_expiry: Duration,
    /// `--cluster.leave-timeout`.
    pub leave_timeout: Duration,
}

impl Component for ClusterMember {
    fn name(&self) -> &str {
        "cluster"
    }

    fn grpc(&self, routes: &mut RoutesBuilder) {
        routes.add_service(RegistryService::server(
            self.node.clone(),
            self.secret.clone(),
        ));
        routes.add_service(crate::cluster::jobs::JobReportService::server(
            self.node.clone(),
            self.secret.clone(),
        ));
    }

    fn grpc_services(&self) -> Vec<&'static str> {
        vec![
            crate::server::grpc_metrics::STORE_REGISTRY,
            crate::server::grpc_metrics::NODE_JOB_REPORTS,
        ]
    }

    fn http(&self) -> axum::Router {
        status_routes(self.http.clone())
    }

    fn is_ready(&self) -> bool {
        self.http.is_ready()
    }

    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(async move {
            let tasks = self.spawn_duties(&stop);
            let mut stop = stop;
            let _ = stop.wait_for(|s| *s).await;
            // The joiner and registry heartbeats stop first, so nothing re-adds this node while
            // it leaves; the gRPC server still runs (the server stops it after every role).
            for t in tasks {
                let _ = t.await;
            }
            super::leave_on_shutdown(&self.node, self.leave_timeout).await;
            Ok(())
        })
    }
}

impl ClusterMember {
    fn spawn_duties(&self, stop: &watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let span = tracing::Span::current();
        let node = &self.node;
        let mut tasks = vec![
            tokio::spawn(
                self.gauges
                    .clone()
                    .run(node.clone(), stop.clone())
                    .instrument(span.clone()),
            ),
            tokio::spawn(
                Joiner {
                    node: node.clone(),
                    me: self.me.clone(),
                    discovery: self.discovery.clone(),
                    secret: self.secret.clone(),
                    bootstrap: self.bootstrap,
                }
                .run(stop.clone())
                .instrument(span.clone()),
            ),
            tokio::spawn(
                LeaderDuties {
                    interval: Duration::from_secs(1),
                    store_max_age: self.store_expiry,
                }
                .run(node.clone(), stop.clone())
                .instrument(span.clone()),
            ),
        ];
        if self.watch_stores {
            tasks.push(tokio::spawn(
                watch_store_set(node.clone(), self.store_expiry, stop.clone())
                    .instrument(span.clone()),
            ));
        }
        if self.announce_store {
            tasks.push(tokio::spawn(
                Announcer {
                    node: node.clone(),
                    secret: self.secret.clone(),
                    info: placeholder_store(node),
                    interval: self.store_heartbeat,
                }
                .run(stop.clone())
                .instrument(span),
            ));
        }
        tasks
    }
}
