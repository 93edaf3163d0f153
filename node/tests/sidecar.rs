//! `strata sidecar` next to a real Prometheus 2.42 (30 s blocks, external labels, lifecycle
//! API) with an S3 bucket (s3s-fs with SigV4 on loopback): blocks are uploaded with the external
//! labels and meta.json last, a restarted sidecar uploads nothing twice, `strata query
//! --endpoint <sidecar>` answers from Prometheus' recent data with external labels, a config
//! change reloads Prometheus, and the sidecar is not ready while Prometheus is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::{enc, get, request, StrataQuery};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};
use storage::testing::prometheus::free_port;
use storage::testing::s3::{S3Server, SECRET_KEY};

/// A child process with its log, killed when dropped.
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, work: &Path, cmd: &mut Command) -> Proc {
        let log = work.join(format!("{name}.log"));
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` every 100 ms until it holds; panics with the log on timeout or exit.
    fn wait_until(&mut self, what: &str, deadline: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(s))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited with {s} before {what}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if cond(self) {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "{}: {what} not reached within {deadline:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success()));
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "{} did not stop within {deadline:?} of SIGTERM:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn prometheus_available() -> bool {
    Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn prometheus_config(port: u16, scrape: &str) -> String {
    format!(
        "global:\n  scrape_interval: {scrape}\n  external_labels:\n    region: eu-west\n    \
         monitor: m1\n    replica: A\nscrape_configs:\n  - job_name: self\n    \
         static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
}

fn start_prometheus(work: &Path, port: u16, config: &Path, data: &Path) -> Proc {
    let mut p = Proc::spawn(
        "prometheus",
        work,
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.min-block-duration=30s")
            .arg("--storage.tsdb.max-block-duration=30s")
            .arg("--web.enable-lifecycle"),
    );
    p.wait_until("ready", Duration::from_secs(60), |_| {
        request(port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    p
}

struct SidecarPorts {
    http: u16,
    grpc: u16,
}

fn start_sidecar(
    work: &Path,
    name: &str,
    prom_port: u16,
    tsdb: &Path,
    s3: &S3Server,
    config: &Path,
) -> (Proc, SidecarPorts) {
    let ports = SidecarPorts {
        http: free_port().unwrap(),
        grpc: free_port().unwrap(),
    };
    let p = Proc::spawn(
        name,
        work,
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("sidecar")
            .arg(format!("--http-address=127.0.0.1:{}", ports.http))
            .arg(format!("--grpc-address=127.0.0.1:{}", ports.grpc))
            .arg(format!("--prometheus.url=http://127.0.0.1:{prom_port}"))
            .arg(format!("--tsdb.path={}", tsdb.display()))
            .arg(format!("--objstore.config={}", s3.yaml(SECRET_KEY, "")))
            .arg("--prometheus.get_config_interval=1s")
            .arg("--shipper.sync-interval=1s")
            .arg(format!("--reloader.config-file={}", config.display()))
            .arg("--reloader.watch-interval=1s")
            .env("RUST_LOG", "info"),
    );
    (p, ports)
}

fn ready(port: u16) -> bool {
    request(port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
}

/// Uploaded blocks: bucket directories with a meta.json.
fn uploaded(bucket: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(bucket)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("meta.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_uploads_blocks_once_and_serves_prometheus_over_storeapi() {
    if !prometheus_available() {
        eprintln!("SKIPPED: prometheus not on PATH");
        return;
    }
    let s3 = S3Server::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let work = work.path().to_path_buf();
    let prom_port = free_port().unwrap();
    let config = work.join("prometheus.yml");
    std::fs::write(&config, prometheus_config(prom_port, "1s")).unwrap();
    let tsdb = work.join("prom-data");

    // Everything blocking runs off the runtime's threads, which serve the S3 server.
    tokio::task::spawn_blocking(move || {
        let mut prom = start_prometheus(&work, prom_port, &config, &tsdb);
        let (mut sidecar, ports) =
            start_sidecar(&work, "sidecar-1", prom_port, &tsdb, &s3, &config);
        sidecar.wait_until("ready", Duration::from_secs(60), |_| ready(ports.http));

        // StoreAPI: a querier over the sidecar sees Prometheus' own series with external labels.
        let endpoint = format!("--endpoint=127.0.0.1:{}", ports.grpc);
        let mut q = StrataQuery::spawn(&work, &[&endpoint]);
        q.wait_until("ready", Duration::from_secs(60), |q| ready(q.port));
        q.wait_until("count(up) == 1", Duration::from_secs(30), |q| {
            let r = get(q.port, &format!("/api/v1/query?query={}", enc("count(up)")));
            r.status == 200 && r.json()["data"]["result"][0]["value"][1] == "1"
        });
        let r = get(q.port, &format!("/api/v1/query?query={}", enc("up")));
        assert_eq!(r.status, 200, "{}", r.body);
        let metric = &r.json()["data"]["result"][0]["metric"];
        assert_eq!(metric["region"], "eu-west", "{metric}");
        assert_eq!(metric["monitor"], "m1", "{metric}");
        assert_eq!(metric["replica"], "A", "{metric}");
        assert_eq!(metric["job"], "self", "{metric}");
        // A selector on a foreign external label value matches nothing.
        let r = get(
            q.port,
            &format!("/api/v1/query?query={}", enc("up{region=\"us\"}")),
        );
        assert_eq!(
            r.json()["data"]["result"],
            serde_json::json!([]),
            "{}",
            r.body
        );

        // The StoreAPI directly: Info, label names and values, series without chunks.
        let grpc = format!("http://127.0.0.1:{}", ports.grpc);
        tokio::runtime::Handle::current().block_on(check_grpc(grpc));

        // Reloader: a config change makes Prometheus reload.
        let loads = |p: &Proc| {
            p.log()
                .matches("Completed loading of configuration file")
                .count()
        };
        let before = loads(&prom);
        std::fs::write(&config, prometheus_config(prom_port, "1s") + "# changed\n").unwrap();
        prom.wait_until("config reloaded", Duration::from_secs(30), |p| {
            loads(p) > before
        });

        // Shipper: Prometheus cuts its first 30 s block after about 52 s.
        let bucket = s3.bucket_dir();
        sidecar.wait_until("a block uploaded", Duration::from_secs(150), |_| {
            !uploaded(&bucket).is_empty()
        });
        let first = uploaded(&bucket);
        for id in &first {
            let dir = bucket.join(id);
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
            let t = &meta["thanos"];
            assert_eq!(
                t["labels"],
                serde_json::json!({"monitor": "m1", "region": "eu-west", "replica": "A"}),
                "{meta}"
            );
            assert_eq!(t["source"], "sidecar");
            assert_eq!(t["downsample"]["resolution"], 0);
            assert!(dir.join("index").exists() && dir.join("chunks/000001").exists());
            let meta_written = mtime(&dir.join("meta.json"));
            assert!(
                mtime(&dir.join("index")) <= meta_written,
                "meta.json is written last"
            );
            assert!(mtime(&dir.join("chunks/000001")) <= meta_written);
            assert!(
                tsdb.join(id).join("index").exists(),
                "Prometheus' block is left in place"
            );
        }
        let shipper_file = tsdb.join("thanos.shipper.json");
        sidecar.wait_until(
            "shipper file lists the upload",
            Duration::from_secs(10),
            |_| {
                let text = std::fs::read_to_string(&shipper_file).unwrap_or_default();
                first.iter().all(|id| text.contains(id.as_str()))
            },
        );

        // A restarted sidecar reads the shipper file and uploads nothing twice.
        let status = sidecar.terminate(Duration::from_secs(20));
        assert!(status.success(), "clean exit on SIGTERM: {status}");
        let written: Vec<SystemTime> = first
            .iter()
            .map(|id| mtime(&bucket.join(id).join("meta.json")))
            .collect();
        let file_before = mtime(&shipper_file);
        let (mut sidecar, ports) =
            start_sidecar(&work, "sidecar-2", prom_port, &tsdb, &s3, &config);
        sidecar.wait_until("ready again", Duration::from_secs(60), |_| {
            ready(ports.http)
        });
        sidecar.wait_until("a shipper round", Duration::from_secs(30), |_| {
            mtime(&shipper_file) > file_before
        });
        let again: Vec<SystemTime> = first
            .iter()
            .map(|id| mtime(&bucket.join(id).join("meta.json")))
            .collect();
        assert_eq!(written, again, "uploaded blocks were not written again");
        for id in &first {
            assert!(
                !sidecar.log().contains(&format!("block={id}")),
                "restarted sidecar touched {id}:\n{}",
                sidecar.log()
            );
        }

        // Prometheus down: the sidecar reports not ready, and keeps running.
        prom.kill();
        sidecar.wait_until("not ready", Duration::from_secs(30), |_| !ready(ports.http));
        let metrics = get(ports.http, "/metrics").body;
        assert!(
            metrics.contains("thanos_sidecar_prometheus_up 0"),
            "{metrics}"
        );
        assert!(
            metrics.contains("thanos_shipper_uploads_total"),
            "{metrics}"
        );
        let status = sidecar.terminate(Duration::from_secs(20));
        assert!(
            status.success(),
            "clean exit on SIGTERM while Prometheus is down: {status}"
        );
        drop(q);
        drop(s3);
    })
    .await
    .unwrap();
}

/// Info, LabelNames, LabelValues and Series (skip_chunks) of the sidecar at `url`.
async fn check_grpc(url: String) {
    use proto::thanos::info::info_client::InfoClient;
    use proto::thanos::store_client::StoreClient;
    use proto::thanos::{self as pb, label_matcher, series_response};
    let info = InfoClient::connect(url.clone())
        .await
        .unwrap()
        .info(proto::thanos::info::InfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.component_type, "sidecar");
    let set: Vec<(String, String)> = info.label_sets[0]
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    let want = [("monitor", "m1"), ("region", "eu-west"), ("replica", "A")]
        .map(|(n, v)| (n.to_string(), v.to_string()));
    assert_eq!(set, want);
    let store = info.store.expect("store info");
    assert_eq!(store.max_time, i64::MAX);
    let mut client = StoreClient::connect(url).await.unwrap();
    let names = client
        .label_names(pb::LabelNamesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .names;
    for n in ["__name__", "job", "instance", "region", "replica"] {
        assert!(names.iter().any(|x| x == n), "{n} missing in {names:?}");
    }
    let values = |label: &str| pb::LabelValuesRequest {
        label: label.into(),
        ..Default::default()
    };
    let region = client.label_values(values("region")).await.unwrap();
    assert_eq!(region.into_inner().values, ["eu-west"]);
    let jobs = client.label_values(values("job")).await.unwrap();
    assert_eq!(jobs.into_inner().values, ["self"]);
    let eq = |name: &str, value: &str| pb::LabelMatcher {
        r#type: label_matcher::Type::Eq as i32,
        name: name.into(),
        value: value.into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut stream = client
        .series(pb::SeriesRequest {
            min_time: now - 600_000,
            max_time: now,
            matchers: vec![eq("__name__", "up"), eq("replica", "A")],
            skip_chunks: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut series = Vec::new();
    while let Some(r) = stream.message().await.unwrap() {
        if let Some(series_response::Result::Series(s)) = r.result {
            series.push(s);
        }
    }
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0]
        .labels
        .iter()
        .any(|l| l.name == "region" && l.value == "eu-west"));
    assert!(!series[0].chunks.is_empty());
    // Only external-label matchers: refused like Thanos does.
    let err = client
        .series(pb::SeriesRequest {
            min_time: now - 600_000,
            max_time: now,
            matchers: vec![eq("replica", "A")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
}

#[test]
fn sidecar_refuses_a_prometheus_without_external_labels() {
    if !prometheus_available() {
        eprintln!("SKIPPED: prometheus not on PATH");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let port = free_port().unwrap();
    let config = work.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"),
    )
    .unwrap();
    let _prom = start_prometheus(work, port, &config, &work.join("data"));
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("sidecar")
        .arg(format!("--http-address=127.0.0.1:{}", free_port().unwrap()))
        .arg(format!("--grpc-address=127.0.0.1:{}", free_port().unwrap()))
        .arg(format!("--prometheus.url=http://127.0.0.1:{port}"))
        .arg(format!("--tsdb.path={}", work.join("data").display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no external labels configured"), "{err}");
}

/// `strata node --role query,sidecar`: the sidecar role runs under the cluster, uploads to the
/// node's bucket, announces its StoreAPI in the store registry, and the node's own query role
/// reads Prometheus through it; /-/ready waits for both the cluster and Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_the_sidecar_role_uploads_and_registers_its_storeapi() {
    if !prometheus_available() {
        eprintln!("SKIPPED: prometheus not on PATH");
        return;
    }
    let s3 = S3Server::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let work = work.path().to_path_buf();
    let prom_port = free_port().unwrap();
    let config = work.join("prometheus.yml");
    std::fs::write(&config, prometheus_config(prom_port, "1s")).unwrap();
    let tsdb = work.join("prom-data");

    tokio::task::spawn_blocking(move || {
        let (http, grpc) = (free_port().unwrap(), free_port().unwrap());
        let mut node = Proc::spawn(
            "node",
            &work,
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .arg("node")
                .arg("--role=query,sidecar")
                .arg("--cluster.insecure")
                .arg("--cluster.bootstrap")
                .arg(format!("--data-dir={}", work.join("node").display()))
                .arg(format!("--http-address=127.0.0.1:{http}"))
                .arg(format!("--grpc-address=127.0.0.1:{grpc}"))
                .arg(format!("--prometheus.url=http://127.0.0.1:{prom_port}"))
                .arg(format!("--tsdb.path={}", tsdb.display()))
                .arg(format!("--objstore.config={}", s3.yaml(SECRET_KEY, "")))
                .arg("--prometheus.get_config_interval=1s")
                .arg("--shipper.sync-interval=1s")
                .arg("--cluster.store-heartbeat-interval=1s")
                .env("RUST_LOG", "info"),
        );
        // Without Prometheus the sidecar role is not ready, so neither is the node.
        node.wait_until("cluster formed", Duration::from_secs(60), |_| {
            request(http, "GET", "/api/v1/status/cluster", None)
                .is_ok_and(|r| r.status == 200 && r.json()["data"]["leader_id"].is_u64())
        });
        assert!(!ready(http), "ready before Prometheus runs");

        let _prom = start_prometheus(&work, prom_port, &config, &tsdb);
        node.wait_until("ready", Duration::from_secs(60), |_| ready(http));
        let address = format!("127.0.0.1:{grpc}");
        node.wait_until("StoreAPI in the registry", Duration::from_secs(30), |_| {
            get(http, "/api/v1/cluster/stores").body.contains(&address)
        });
        node.wait_until(
            "count(up) == 1 through the sidecar",
            Duration::from_secs(60),
            |_| {
                let r = get(http, &format!("/api/v1/query?query={}", enc("up")));
                r.status == 200
                    && r.json()["data"]["result"][0]["metric"]["replica"] == "A"
                    && r.json()["data"]["result"].as_array().map(Vec::len) == Some(1)
            },
        );
        let bucket = s3.bucket_dir();
        node.wait_until("a block uploaded", Duration::from_secs(120), |_| {
            !uploaded(&bucket).is_empty()
        });
        let metrics = get(http, "/metrics").body;
        for name in ["thanos_sidecar_prometheus_up 1", "strata_raft_term"] {
            assert!(
                metrics.contains(name),
                "one /metrics has {name}:\n{metrics}"
            );
        }
        let status = node.terminate(Duration::from_secs(30));
        assert!(status.success(), "clean exit on SIGTERM: {status}");
        drop(s3);
    })
    .await
    .unwrap();
}
