//! gRPC metrics with go-grpc-prometheus' names, which Thanos' dashboards and alerts read:
//! `grpc_server_started_total`, `grpc_server_handled_total`, `grpc_server_handling_seconds` by
//! `grpc_type`, `grpc_service`, `grpc_method` (and `grpc_code` once handled), and the same
//! for the client side (`grpc_client_*`), which the querier records per StoreAPI call.
//!
//! The server side is a tower layer over the process' one gRPC server ([`GrpcMetricsLayer`]).
//! A call counts as handled when its status is known: from the response headers for an
//! immediate error, else from the trailers that end the body, so a streamed `Series` counts
//! when its last frame is out; a body dropped before its trailers (the client went away) counts
//! as `Canceled`.
//!
//! As go-grpc-prometheus' `InitializeMetrics` (which Thanos calls), [`init_server`] creates
//! every series of the services a process serves at start, at 0 (`grpc_server_handled_total`
//! for every code), so that rates and error ratios exist before the first call.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// go-grpc-prometheus' default buckets for handling-time histograms.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// One side's (server or client) three families.
#[derive(Debug, Clone)]
pub struct GrpcMetrics {
    started: IntCounterVec,
    handled: IntCounterVec,
    seconds: HistogramVec,
}

impl GrpcMetrics {
    fn new(side: &str) -> Result<Self, prometheus::Error> {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let what = if side == "server" {
            "RPCs started on the server."
        } else {
            "RPCs started on the client."
        };
        Ok(GrpcMetrics {
            started: IntCounterVec::new(
                Opts::new(format!("grpc_{side}_started_total"), format!("Total number of {what}")),
                &labels,
            )?,
            handled: IntCounterVec::new(
                Opts::new(
                    format!("grpc_{side}_handled_total"),
                    format!("Total number of RPCs completed on the {side}, regardless of success or failure."),
                ),
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            )?,
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    format!("grpc_{side}_handling_seconds"),
                    format!("Histogram of response latency (seconds) of gRPC that had been application-level handled by the {side}."),
                )
                .buckets(BUCKETS.to_vec()),
                &labels,
            )?,
        })
    }

    /// Registers the three families in `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.started.clone()))?;
        registry.register(Box::new(self.handled.clone()))?;
        registry.register(Box::new(self.seconds.clone()))
    }

    /// Starts timing a call of `service`/`method`.
    pub fn start(&'static self, service: &'static str, method: &'static str) -> Call {
        let kind = grpc_type(service, method);
        self.started
            .with_label_values(&[kind, service, method])
            .inc();
        Call {
            metrics: self,
            labels: [kind, service, method],
            started: Instant::now(),
            done: false,
        }
    }
}

/// Server-side metrics of this process; the registry of each process registers them.
pub static SERVER: LazyLock<Result<GrpcMetrics, prometheus::Error>> =
    LazyLock::new(|| GrpcMetrics::new("server"));

/// Client-side metrics of this process.
pub static CLIENT: LazyLock<Result<GrpcMetrics, prometheus::Error>> =
    LazyLock::new(|| GrpcMetrics::new("client"));

/// A call being timed; recorded once, by [`Call::finish`] or as `Canceled` when dropped.
#[derive(Debug)]
pub struct Call {
    metrics: &'static GrpcMetrics,
    labels: [&'static str; 3],
    started: Instant,
    done: bool,
}

impl Call {
    /// Records the call as handled with `code`.
    pub fn finish(mut self, code: tonic::Code) {
        self.record(code);
    }

    fn record(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let [kind, service, method] = self.labels;
        self.metrics
            .handled
            .with_label_values(&[kind, service, method, code_name(code)])
            .inc();
        self.metrics
            .seconds
            .with_label_values(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}

/// Starts a client-side call, when the client metrics exist (they always do: their names are
/// constant; `None` only if the prometheus crate refused them).
pub fn client_call(service: &'static str, method: &'static str) -> Option<Call> {
    CLIENT.as_ref().ok().map(|m| m.start(service, method))
}

/// Thanos' StoreAPI.
pub const STORE: &str = "thanos.Store";
/// Thanos' Info service.
pub const INFO: &str = "thanos.info.Info";
/// Thanos' Rules service (the ruler's groups over gRPC).
pub const RULES: &str = "thanos.Rules";
/// Raft's transport between members.
pub const RAFT_TRANSPORT: &str = "strata.raft.v1.RaftTransport";
/// Cluster administration (join, leave, status).
pub const CLUSTER_ADMIN: &str = "strata.raft.v1.ClusterAdmin";
/// The store registry members announce their StoreAPI to.
pub const STORE_REGISTRY: &str = "strata.node.v1.StoreRegistry";
/// Job reports (lease renewals, completions) to the leader, cluster side.
pub const NODE_JOB_REPORTS: &str = "strata.node.v1.JobReports";
/// Job reports of the compact role.
pub const COMPACT_JOB_REPORTS: &str = "strata.jobs.v1.JobReports";

/// Pre-initialises the server families for every method of `services`: started and handling
/// time with no observation, handled at 0 for every code.
pub fn init_server(services: &[&str]) {
    if let Ok(m) = SERVER.as_ref() {
        m.init(services);
    }
}

impl GrpcMetrics {
    fn init(&self, services: &[&str]) {
        for &(service, method, kind) in METHODS.iter().filter(|(s, _, _)| services.contains(s)) {
            let labels = [kind, service, method];
            self.started.with_label_values(&labels);
            self.seconds.with_label_values(&labels);
            for code in ALL_CODES {
                self.handled
                    .with_label_values(&[kind, service, method, code_name(code)]);
            }
        }
    }
}

/// Every gRPC code, as go-grpc-prometheus' `allCodes`.
const ALL_CODES: [tonic::Code; 17] = [
    tonic::Code::Ok,
    tonic::Code::Cancelled,
    tonic::Code::Unknown,
    tonic::Code::InvalidArgument,
    tonic::Code::DeadlineExceeded,
    tonic::Code::NotFound,
    tonic::Code::AlreadyExists,
    tonic::Code::PermissionDenied,
    tonic::Code::ResourceExhausted,
    tonic::Code::FailedPrecondition,
    tonic::Code::Aborted,
    tonic::Code::OutOfRange,
    tonic::Code::Unimplemented,
    tonic::Code::Internal,
    tonic::Code::Unavailable,
    tonic::Code::DataLoss,
    tonic::Code::Unauthenticated,
];

/// The services and methods Strata serves, so that label values stay bounded whatever paths
/// clients send: `(service, method, grpc_type)`.
const METHODS: &[(&str, &str, &str)] = &[
    ("thanos.Store", "Info", "unary"),
    ("thanos.Store", "Series", "server_stream"),
    ("thanos.Store", "LabelNames", "unary"),
    ("thanos.Store", "LabelValues", "unary"),
    ("thanos.info.Info", "Info", "unary"),
    ("strata.raft.v1.RaftTransport", "AppendEntries", "unary"),
    ("strata.raft.v1.RaftTransport", "Vote", "unary"),
    ("strata.raft.v1.RaftTransport", "InstallSnapshot", "unary"),
    ("strata.raft.v1.RaftTransport", "TimeoutNow", "unary"),
    ("strata.raft.v1.ClusterAdmin", "Join", "unary"),
    ("strata.raft.v1.ClusterAdmin", "Leave", "unary"),
    ("strata.raft.v1.ClusterAdmin", "Status", "unary"),
    ("strata.raft.v1.ClusterAdmin", "TriggerElection", "unary"),
    ("strata.node.v1.StoreRegistry", "Announce", "unary"),
    ("strata.node.v1.JobReports", "Report", "unary"),
    ("strata.jobs.v1.JobReports", "Report", "unary"),
    ("thanos.Rules", "Rules", "server_stream"),
];

fn grpc_type(service: &str, method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|(s, m, _)| *s == service && *m == method)
        .map(|(_, _, t)| *t)
        .unwrap_or("unary")
}

/// `/pkg.Service/Method` as static label values; anything not served is `unknown`.
fn split_path(path: &str) -> (&'static str, &'static str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    METHODS
        .iter()
        .find(|(s, m, _)| *s == service && *m == method)
        .map(|(s, m, _)| (*s, *m))
        .unwrap_or(("unknown", "unknown"))
}

/// go-grpc-prometheus' `grpc_code` values (Go's `codes.Code.String()`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// The `grpc-status` of a header or trailer map, if it carries one.
fn status_of(headers: &HeaderMap) -> Option<tonic::Code> {
    let v = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(v))
}

/// The tower layer that records every call of the gRPC server it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService { inner }
    }
}

/// [`GrpcMetricsLayer`]'s service.
#[derive(Debug, Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for GrpcMetricsService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: Body + Unpin,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (service, method) = split_path(req.uri().path());
        let call = SERVER.as_ref().ok().map(|m| m.start(service, method));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            let mut call = call;
            // Trailers-only answer: an error (or OK without a body) known from the headers.
            if let Some(code) = status_of(response.headers()) {
                if let Some(c) = call.take() {
                    c.finish(code);
                }
            }
            Ok(response.map(|inner| MeteredBody { inner, call }))
        })
    }
}

/// A response body that records its call when the trailers carrying the status pass.
#[derive(Debug)]
pub struct MeteredBody<B> {
    inner: B,
    call: Option<Call>,
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    if let Some(c) = self.call.take() {
                        c.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(c) = self.call.take() {
                    c.finish(tonic::Code::Internal);
                }
            }
            // A body that ends without trailers was answered without a gRPC status by a
            // layer below (tonic always sends one); count it as Unknown rather than lose it.
            Poll::Ready(None) => {
                if let Some(c) = self.call.take() {
                    c.finish(tonic::Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_bounded_label_values() {
        assert_eq!(
            split_path("/thanos.Store/Series"),
            ("thanos.Store", "Series")
        );
        assert_eq!(grpc_type("thanos.Store", "Series"), "server_stream");
        assert_eq!(grpc_type("thanos.info.Info", "Info"), "unary");
        assert_eq!(split_path("/evil.Service/x"), ("unknown", "unknown"));
        assert_eq!(split_path(""), ("unknown", "unknown"));
    }

    #[test]
    fn every_named_service_has_methods_and_init_creates_them_at_zero() {
        for s in [
            STORE,
            INFO,
            RULES,
            RAFT_TRANSPORT,
            CLUSTER_ADMIN,
            STORE_REGISTRY,
            NODE_JOB_REPORTS,
            COMPACT_JOB_REPORTS,
        ] {
            assert!(
                METHODS.iter().any(|(m, _, _)| *m == s),
                "{s} has no methods"
            );
        }
        let m = GrpcMetrics::new("server").expect("metrics");
        m.init(&[STORE, INFO]);
        let r = Registry::new();
        m.register(&r).expect("register");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&r.gather())
            .expect("encode");
        let series = |family: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .collect::<Vec<_>>()
        };
        // Store has four methods and Info one; every code of each, all at 0.
        let handled = series("grpc_server_handled_total");
        assert_eq!(handled.len(), 5 * 17, "{text}");
        assert!(handled.iter().all(|l| l.ends_with(" 0")), "{text}");
        assert!(handled.contains(
            &"grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Series\",grpc_service=\"thanos.Store\",grpc_type=\"server_stream\"} 0"
        ), "{text}");
        assert_eq!(series("grpc_server_started_total").len(), 5, "{text}");
        assert!(
            !text.contains("RaftTransport"),
            "only the services asked for: {text}"
        );
    }

    #[test]
    fn a_dropped_call_counts_as_canceled_once() {
        let m: &'static GrpcMetrics =
            Box::leak(Box::new(GrpcMetrics::new("server").expect("metrics")));
        m.start("thanos.Store", "Series").finish(tonic::Code::Ok);
        drop(m.start("thanos.Store", "Series"));
        let handled = |code: &str| {
            m.handled
                .with_label_values(&["server_stream", "thanos.Store", "Series", code])
                .get()
        };
        assert_eq!(handled("OK"), 1);
        assert_eq!(handled("Canceled"), 1);
        assert_eq!(
            m.started
                .with_label_values(&["server_stream", "thanos.Store", "Series"])
                .get(),
            2
        );
        let h = m
            .seconds
            .with_label_values(&["server_stream", "thanos.Store", "Series"]);
        assert_eq!(h.get_sample_count(), 2);
    }
}
