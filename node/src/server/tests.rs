//! The assembler with test components: readiness of all roles, reload, metrics, a failing
//! role stopping the process, and the stop order (roles before servers).

use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

struct Fake {
    name: &'static str,
    ready: AtomicBool,
    reloads: AtomicUsize,
    stopped: AtomicBool,
    fail_with: Option<&'static str>,
    reload_error: Option<&'static str>,
}

impl Fake {
    fn new(name: &'static str) -> Fake {
        Fake {
            name,
            ready: AtomicBool::new(false),
            reloads: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            fail_with: None,
            reload_error: None,
        }
    }
}

impl Component for Fake {
    fn name(&self) -> &str {
        self.name
    }

    fn http(&self) -> axum::Router {
        let path = format!("/{}", self.name);
        axum::Router::new().route(&path, axum::routing::get(|| async { "mine" }))
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(async move {
            if let Some(e) = self.fail_with {
                anyhow::bail!(e);
            }
            let _ = stop.wait_for(|s| *s).await;
            self.stopped.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    fn reload(&self) -> BoxFuture<anyhow::Result<()>> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        let e = self.reload_error;
        Box::pin(async move {
            match e {
                Some(e) => Err(anyhow::anyhow!(e)),
                None => Ok(()),
            }
        })
    }
}

async fn start(
    components: Vec<Arc<dyn Component>>,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listeners = Listeners::bind("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listeners.http_addr().expect("address"));
    let registry = prometheus::Registry::new();
    let counter = prometheus::IntCounter::new("strata_test_total", "A test counter.").unwrap();
    registry.register(Box::new(counter.clone())).unwrap();
    counter.inc();
    let mut server = Server::new(registry);
    for c in components {
        server = server.with(c);
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(listeners, async move {
        let _ = rx.await;
    }));
    (base, tx, task)
}

async fn status(client: &reqwest::Client, req: reqwest::RequestBuilder) -> (u16, String) {
    let _ = client;
    let r = req.send().await.expect("request");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn ready_only_when_every_role_is_and_routes_of_all_roles_are_served() {
    let a = Arc::new(Fake::new("alpha"));
    let b = Arc::new(Fake::new("beta"));
    let (base, stop, task) = start(vec![a.clone(), b.clone()]).await;
    let c = reqwest::Client::new();
    assert_eq!(status(&c, c.get(format!("{base}/-/ready"))).await.0, 503);
    a.ready.store(true, Ordering::SeqCst);
    assert_eq!(status(&c, c.get(format!("{base}/-/ready"))).await.0, 503);
    b.ready.store(true, Ordering::SeqCst);
    assert_eq!(status(&c, c.get(format!("{base}/-/ready"))).await.0, 200);
    assert_eq!(status(&c, c.get(format!("{base}/-/healthy"))).await.0, 200);
    assert_eq!(status(&c, c.get(format!("{base}/alpha"))).await.1, "mine");
    assert_eq!(status(&c, c.get(format!("{base}/beta"))).await.1, "mine");
    let (code, body) = status(&c, c.get(format!("{base}/nowhere"))).await;
    assert_eq!(code, 404);
    assert!(body.contains("\"errorType\":\"not_found\""), "{body}");
    let (code, body) = status(&c, c.get(format!("{base}/metrics"))).await;
    assert_eq!(code, 200);
    assert!(body.contains("strata_test_total 1"), "{body}");

    stop.send(()).expect("server running");
    let r = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops within the deadline")
        .expect("task");
    assert!(r.is_ok(), "{r:?}");
    assert!(a.stopped.load(Ordering::SeqCst) && b.stopped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn reload_calls_every_role_and_reports_failures() {
    let a = Arc::new(Fake::new("alpha"));
    let mut failing = Fake::new("beta");
    failing.reload_error = Some("bad rule file x.yml");
    let b = Arc::new(failing);
    let (base, stop, task) = start(vec![a.clone(), b.clone()]).await;
    let c = reqwest::Client::new();
    let (code, body) = status(&c, c.post(format!("{base}/-/reload"))).await;
    assert_eq!(code, 500);
    assert!(body.contains("beta: bad rule file x.yml"), "{body}");
    assert_eq!(a.reloads.load(Ordering::SeqCst), 1);
    assert_eq!(b.reloads.load(Ordering::SeqCst), 1);
    // Prometheus' reload is POST only.
    assert_eq!(status(&c, c.get(format!("{base}/-/reload"))).await.0, 405);
    assert_eq!(a.reloads.load(Ordering::SeqCst), 1);
    stop.send(()).expect("server running");
    let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
}

#[tokio::test]
async fn a_failing_role_stops_the_process_with_its_error() {
    let a = Arc::new(Fake::new("alpha"));
    let mut failing = Fake::new("beta");
    failing.fail_with = Some("no external labels");
    let (_base, _stop, task) = start(vec![a.clone(), Arc::new(failing)]).await;
    let r = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops within the deadline")
        .expect("task");
    let e = format!("{:#}", r.expect_err("the role's error"));
    assert!(
        e.contains("role beta") && e.contains("no external labels"),
        "{e}"
    );
    assert!(
        a.stopped.load(Ordering::SeqCst),
        "the other role was told to stop"
    );
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_the_flag() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = Listeners::bind("127.0.0.1:0", &addr)
        .await
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("--grpc-address"), "{e:#}");
}
