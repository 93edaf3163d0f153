//! The query role as a component: the query API's routes, readiness once the blocks (if any)
//! are loaded, the block sync loop, and the querier's own StoreAPI where it has the port alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic::service::RoutesBuilder;

use super::remote::serve::QueryStore;
use super::Embedded;
use crate::server::{BoxFuture, Component};

/// The querier, ready to be served.
pub struct QueryRole {
    embedded: Embedded,
    sync_interval: Duration,
    serve_store_api: bool,
}

impl QueryRole {
    /// `serve_store_api`: whether the querier's StoreAPI goes on the process' gRPC port (not
    /// in a node whose store or sidecar role serves one there: one `thanos.Store` per port).
    pub fn new(embedded: Embedded, sync_interval: Duration, serve_store_api: bool) -> Self {
        QueryRole {
            embedded,
            sync_interval,
            serve_store_api,
        }
    }
}

impl Component for QueryRole {
    fn name(&self) -> &str {
        "query"
    }

    fn grpc(&self, routes: &mut RoutesBuilder) {
        if self.serve_store_api {
            let svc = QueryStore::federation(self.embedded.source.clone());
            routes.add_service(svc.store_server());
            routes.add_service(svc.info_server());
        }
    }

    fn grpc_services(&self) -> Vec<&'static str> {
        use crate::server::grpc_metrics::{INFO, STORE};
        if self.serve_store_api {
            vec![STORE, INFO]
        } else {
            Vec::new()
        }
    }

    fn http(&self) -> axum::Router {
        let api = crate::http::api_routes(self.embedded.state.clone());
        let rules = super::remote::rules::routes(
            self.embedded.source.0.clone(),
            self.embedded.state.replica_labels.clone(),
        );
        api.merge(rules)
    }

    fn is_ready(&self) -> bool {
        self.embedded.state.source.is_ready()
    }

    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        let sync = self.embedded.sync_loop(self.sync_interval, stop);
        Box::pin(async move {
            sync.await;
            Ok(())
        })
    }
}
