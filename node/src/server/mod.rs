//! One process, one HTTP server and one gRPC server, assembled from the roles it runs.
//!
//! Every role (query, store, sidecar; compact and rule later) and the cluster membership of
//! `strata node` is a [`Component`]: it contributes gRPC services, HTTP routes, a readiness
//! check, a task that runs until told to stop, and optionally a reload hook. [`Server`] binds
//! the two ports, serves `/metrics` (one registry), `/-/healthy`, `/-/ready` (200 only when
//! every component is ready) and `POST /-/reload` (every component's hook) next to the
//! components' routes, and stops everything on SIGTERM/SIGINT: first the components' tasks,
//! then the servers, so a component may still use the gRPC port while it stops (a leaving node
//! hands over leadership through it). Adding a role is one new component plus one enum arm.
//!
//! - `probes`: the process-wide HTTP routes (the web UI, `crate::ui`, is served next
//!   to them)
//! - `self_metrics`: the families every process exposes about itself (`registry()`)
//! - `process_metrics`, `grpc_metrics`: process metrics from `/proc`, gRPC server and client
//!   metrics (the server's as a tower layer)

pub mod grpc_metrics;
mod probes;
pub mod process_metrics;
pub mod self_metrics;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::RoutesBuilder;
use tracing::Instrument as _;

/// A boxed future a component returns from its hooks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What one role contributes to its process.
pub trait Component: Send + Sync + 'static {
    /// The role's name, for logs and errors.
    fn name(&self) -> &str;

    /// Adds the role's gRPC services to the process' one gRPC server.
    fn grpc(&self, _routes: &mut RoutesBuilder) {}

    /// The full names of the services [`Component::grpc`] adds (`grpc_metrics::STORE`, ...),
    /// whose metrics the server creates at start.
    fn grpc_services(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The role's HTTP routes, merged into the process' one HTTP server; no fallback (the
    /// server has one).
    fn http(&self) -> axum::Router {
        axum::Router::new()
    }

    /// Whether the role can serve now; the process is ready only when every role is.
    fn is_ready(&self) -> bool;

    /// The role's work until `stop` turns true. An error stops the whole process (with that
    /// error); returning early without one is allowed (a role with nothing to run).
    fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>>;

    /// Re-reads the role's configuration on `POST /-/reload`.
    fn reload(&self) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// The two listeners of a process, bound before anything starts so a bad address fails fast.
pub struct Listeners {
    /// The HTTP listener (`--http-address`).
    pub http: TcpListener,
    /// The gRPC listener (`--grpc-address`); none for a process without gRPC (`strata
    /// compact`, as `thanos compact`).
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds both addresses; the error names the flag.
    pub async fn bind(http_address: &str, grpc_address: &str) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind(grpc_address)
            .await
            .with_context(|| format!("listening on --grpc-address {grpc_address}"))?;
        let http = TcpListener::bind(http_address)
            .await
            .with_context(|| format!("listening on --http-address {http_address}"))?;
        Ok(Listeners {
            http,
            grpc: Some(grpc),
        })
    }

    /// Binds the HTTP address only.
    pub async fn http_only(http_address: &str) -> anyhow::Result<Self> {
        let http = TcpListener::bind(http_address)
            .await
            .with_context(|| format!("listening on --http-address {http_address}"))?;
        Ok(Listeners { http, grpc: None })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> anyhow::Result<SocketAddr> {
        self.http.local_addr().context("reading the HTTP address")
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> anyhow::Result<SocketAddr> {
        self.grpc
            .as_ref()
            .context("this process serves no gRPC")?
            .local_addr()
            .context("reading the gRPC address")
    }
}

/// A process being assembled: its components and its metrics registry.
pub struct Server {
    components: Vec<Arc<dyn Component>>,
    registry: prometheus::Registry,
    extra_routes: Option<tonic::service::Routes>,
    extra_services: Vec<&'static str>,
}

impl Server {
    /// An empty process exposing `registry` on `/metrics` (the components register in it).
    pub fn new(registry: prometheus::Registry) -> Self {
        Server {
            components: Vec::new(),
            registry,
            extra_routes: None,
            extra_services: Vec::new(),
        }
    }

    /// Adds a component.
    pub fn with(mut self, c: Arc<dyn Component>) -> Self {
        self.components.push(c);
        self
    }

    /// gRPC routes that belong to no component (Raft's transport and admin services), and the
    /// names of their services.
    pub fn with_routes(
        mut self,
        routes: tonic::service::Routes,
        services: &[&'static str],
    ) -> Self {
        self.extra_routes = Some(routes);
        self.extra_services = services.to_vec();
        self
    }

    /// Serves until `shutdown` completes or a component fails, then stops the components,
    /// then the servers. Returns the first component's error, if one failed.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut routes = self
            .extra_routes
            .map(RoutesBuilder::from)
            .unwrap_or_default();
        let mut router = axum::Router::new();
        for c in &self.components {
            c.grpc(&mut routes);
            router = router.merge(c.http());
        }
        let router = router
            .merge(probes::routes(self.components.clone(), self.registry))
            .merge(crate::ui::routes("/graph"))
            .fallback(probes::not_found)
            .layer(axum::middleware::from_fn(crate::http::metrics::instrument));

        let (servers_tx, servers_rx) = watch::channel(false);
        if listeners.grpc.is_some() {
            grpc_metrics::init_server(&self.extra_services);
            for c in &self.components {
                grpc_metrics::init_server(&c.grpc_services());
            }
        }
        let grpc = listeners.grpc.map(|listener| {
            let mut stop = servers_rx.clone();
            let server = tonic::transport::Server::builder()
                .layer(grpc_metrics::GrpcMetricsLayer)
                .add_routes(routes.routes());
            let incoming = crate::node::grpc::incoming(listener);
            tokio::spawn(
                async move {
                    server
                        .serve_with_incoming_shutdown(incoming, async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await
                }
                .in_current_span(),
            )
        });
        let http = {
            let mut stop = servers_rx;
            tokio::spawn(
                crate::http::serve(listeners.http, router, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .in_current_span(),
            )
        };

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for c in self.components {
            let name = c.name().to_string();
            let run = c.run(stop_rx.clone());
            tasks.spawn(async move { (name, run.await) }.in_current_span());
        }
        let failure = supervise(&mut tasks, shutdown).await;
        let _ = stop_tx.send(true);
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = outcome(done) {
                tracing::error!(error = %format!("{e:#}"), "while stopping");
            }
        }
        let _ = servers_tx.send(true);
        if let Some(grpc) = grpc {
            match grpc.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "gRPC server failed"),
                Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
            }
        }
        let served = http.await.context("HTTP server task")?;
        if let Some(e) = failure {
            return Err(e);
        }
        served.context("serving HTTP")
    }
}

type Task = (String, anyhow::Result<()>);

/// Waits for `shutdown` or the first component that fails; `Some(error)` for the latter.
async fn supervise(
    tasks: &mut tokio::task::JoinSet<Task>,
    shutdown: impl Future<Output = ()>,
) -> Option<anyhow::Error> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return None,
            Some(done) = tasks.join_next() => {
                if let Err(e) = outcome(done) {
                    return Some(e);
                }
            }
        }
    }
}

/// A finished component task as a result naming the component.
fn outcome(done: Result<Task, tokio::task::JoinError>) -> anyhow::Result<()> {
    match done {
        Ok((_, Ok(()))) => Ok(()),
        Ok((name, Err(e))) => Err(e.context(format!("role {name}"))),
        Err(e) => Err(anyhow::anyhow!("a role's task failed: {e}")),
    }
}

/// Completes on SIGINT or SIGTERM (the standalone commands' shutdown).
pub async fn signal() {
    crate::query::wait_for_signal().await;
    tracing::info!("signal received: stopping");
}
