//! The Thanos tutorial with Strata binaries, every part a real process: s3s-fs with SigV4 and
//! the tutorial's MinIO keys, two Prometheus 2.42 replicas (external labels region, monitor,
//! replica A/B; 30 s blocks), `strata sidecar` beside each, `strata store`, and `strata query
//! --store <sidecar A> --store <sidecar B> --store dns+localhost:<store> --query.replica-label
//! replica`. Also what goes wrong in it: a Prometheus not yet up, an S3 outage in the middle of
//! an upload, a stopped store, wrong S3 credentials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;
mod tutorial_common;

use query_common::{enc, get, Reply};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use storage::testing::prometheus::free_port;
use storage::testing::s3::{S3Server, BUCKET};
use tutorial_common::*;

/// Scrape targets of each Prometheus: both Prometheus, both sidecars, the store, the querier.
const TARGETS: i64 = 6;

fn port() -> u16 {
    free_port().expect("free port")
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The single value of an instant vector with one sample, as an integer.
fn single_value(r: &Reply) -> Option<i64> {
    let j: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    j["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Milliseconds as the API's decimal seconds.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn sidecar_spec(name: &str, http: u16, grpc: u16, prom: u16, tsdb: &Path, bucket: &Path) -> Spec {
    Spec::strata(
        name,
        &[
            "sidecar".into(),
            format!("--tsdb.path={}", tsdb.display()),
            format!("--prometheus.url=http://127.0.0.1:{prom}"),
            format!("--objstore.config-file={}", bucket.display()),
            format!("--grpc-address={}", loopback(grpc)),
            format!("--http-address={}", loopback(http)),
            "--prometheus.get_config_interval=1s".into(),
            "--shipper.sync-interval=1s".into(),
        ],
    )
}

fn store_spec(http: u16, grpc: u16, bucket: &Path, data: &Path) -> Spec {
    Spec::strata(
        "store",
        &[
            "store".into(),
            format!("--objstore.config-file={}", bucket.display()),
            format!("--data-dir={}", data.display()),
            format!("--grpc-address={}", loopback(grpc)),
            format!("--http-address={}", loopback(http)),
            "--sync-block-duration=1s".into(),
        ],
    )
}

/// Ports of every process, known up front so each Prometheus can scrape all of them.
struct Ports {
    prom_a: u16,
    prom_b: u16,
    side_a: (u16, u16),
    side_b: (u16, u16),
    store: (u16, u16),
    query: (u16, u16),
}

impl Ports {
    fn new() -> Ports {
        Ports {
            prom_a: port(),
            prom_b: port(),
            side_a: (port(), port()),
            side_b: (port(), port()),
            store: (port(), port()),
            query: (port(), port()),
        }
    }

    fn targets(&self) -> Vec<(&'static str, Vec<String>)> {
        vec![
            (
                "prometheus",
                vec![loopback(self.prom_a), loopback(self.prom_b)],
            ),
            (
                "sidecar",
                vec![loopback(self.side_a.0), loopback(self.side_b.0)],
            ),
            ("store", vec![loopback(self.store.0)]),
            ("query", vec![loopback(self.query.0)]),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thanos_tutorial_runs_with_strata_binaries() {
    if !prometheus_available() {
        eprintln!("SKIPPED: prometheus not on PATH");
        return;
    }
    let s3 = S3Server::start_with_credentials(ACCESS_KEY, SECRET_KEY)
        .await
        .expect("start s3s-fs");
    // Everything blocking runs off the runtime's threads, which serve the S3 server.
    tokio::task::spawn_blocking(move || tutorial(s3))
        .await
        .unwrap();
}

fn tutorial(s3: S3Server) {
    let began = std::time::Instant::now();
    let step = |what: &str| eprintln!("tutorial: {what} after {:?}", began.elapsed());
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bucket = s3.bucket_dir();
    let p = Ports::new();
    // Sidecar B reaches S3 through a proxy the test cuts for an outage.
    let proxy = CutProxy::start(s3.port);
    let bucket_yml = work.join("bucket.yml");
    std::fs::write(&bucket_yml, bucket_yaml(s3.port, BUCKET, SECRET_KEY)).unwrap();
    let bucket_b_yml = work.join("bucket-b.yml");
    std::fs::write(&bucket_b_yml, bucket_yaml(proxy.port, BUCKET, SECRET_KEY)).unwrap();
    let (data_a, data_b) = (work.join("prometheus-a"), work.join("prometheus-b"));
    let (config_a, config_b) = (work.join("prometheus-a.yml"), work.join("prometheus-b.yml"));
    for (data, config, replica) in [(&data_a, &config_a, "A"), (&data_b, &config_b, "B")] {
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(config, prometheus_config(replica, &p.targets())).unwrap();
    }

    // Sidecars first: with their Prometheus down they wait, not ready.
    let mut side_a = Proc::start(
        work,
        sidecar_spec(
            "sidecar-a",
            p.side_a.0,
            p.side_a.1,
            p.prom_a,
            &data_a,
            &bucket_yml,
        ),
    );
    let mut side_b = Proc::start(
        work,
        sidecar_spec(
            "sidecar-b",
            p.side_b.0,
            p.side_b.1,
            p.prom_b,
            &data_b,
            &bucket_b_yml,
        ),
    );
    for (side, http) in [(&mut side_a, p.side_a.0), (&mut side_b, p.side_b.0)] {
        side.wait_until(
            "/-/ready 503 while Prometheus is down",
            Duration::from_secs(30),
            |_| ready_status(http) == Some(503),
        );
    }
    let store_data = work.join("store-data");
    let mut store = Proc::start(
        work,
        store_spec(p.store.0, p.store.1, &bucket_yml, &store_data),
    );
    let store_addr = loopback(p.store.1);
    let mut query = Proc::start(
        work,
        Spec::strata(
            "query",
            &[
                "query".into(),
                format!("--http-address={}", loopback(p.query.0)),
                format!("--grpc-address={}", loopback(p.query.1)),
                format!("--store={}", loopback(p.side_a.1)),
                format!("--store={}", loopback(p.side_b.1)),
                format!("--store=dns+localhost:{}", p.store.1),
                "--query.replica-label=replica".into(),
                "--store.response-timeout=10s".into(),
            ],
        ),
    );
    let mut prom_a = Proc::start(
        work,
        prometheus_spec("prometheus-a", p.prom_a, &config_a, &data_a),
    );
    let mut prom_b = Proc::start(
        work,
        prometheus_spec("prometheus-b", p.prom_b, &config_b, &data_b),
    );
    for (prom, port) in [(&mut prom_a, p.prom_a), (&mut prom_b, p.prom_b)] {
        prom.wait_until("ready", Duration::from_secs(60), |_| ready(port));
    }
    for (side, http) in [(&mut side_a, p.side_a.0), (&mut side_b, p.side_b.0)] {
        side.wait_until(
            "ready once Prometheus is up",
            Duration::from_secs(60),
            |_| ready(http),
        );
    }
    store.wait_until("ready", Duration::from_secs(60), |_| ready(p.store.0));
    query.wait_until("ready", Duration::from_secs(60), |_| ready(p.query.0));

    step("all processes ready");
    check_dedup(&mut query, p.query.0);
    step("count(up) halved by dedup");
    check_uploads(&mut side_a, &mut side_b, &bucket, &data_a, &data_b);
    step("blocks of both replicas uploaded");
    // The next index upload of sidecar B cuts the S3 connection: meta.json is not in.
    proxy.cut_on(b"/index HTTP/1");
    check_restart_uploads_nothing_twice(&mut side_a, p.side_a.0, &bucket, &data_a);
    step("restarted sidecar uploaded nothing twice");
    check_stopped_store(&mut store, &mut query, p.query.0, &store_addr);
    store.restart();
    store.wait_until("ready again", Duration::from_secs(60), |_| ready(p.store.0));
    step("stopped store checked and restarted");
    let view = StoreView {
        store_http: p.store.0,
        store_addr: &store_addr,
        query_http: p.query.0,
    };
    check_s3_outage(&mut side_b, &proxy, &bucket, &data_b, &view);
    step("block cut by the S3 outage uploaded whole");

    // Old data: a time inside blocks both replicas uploaded, answered by the store alone once
    // both Prometheus and both sidecars are stopped.
    let t = common_block_time(&bucket);
    let at = |extra: &str| {
        get(
            p.query.0,
            &format!(
                "/api/v1/query?query={}&time={}{extra}",
                enc("count(up)"),
                secs(t)
            ),
        )
    };
    let both = |_: &Proc| {
        single_value(&at("")) == Some(TARGETS)
            && single_value(&at("&dedup=false")) == Some(2 * TARGETS)
    };
    query.wait_until(
        "old data answered with everything up",
        Duration::from_secs(60),
        both,
    );
    for proc in [&mut side_a, &mut side_b, &mut prom_a, &mut prom_b] {
        let status = proc.terminate(Duration::from_secs(30));
        assert!(status.success(), "clean exit on SIGTERM: {status}");
    }
    query.wait_until(
        "old data from the store with Prometheus and sidecars stopped",
        Duration::from_secs(60),
        both,
    );
    let j = at("").json();
    assert_eq!(j["status"], "success", "{j}");
    step("old data answered by the store alone");
    let status = store.terminate(Duration::from_secs(30));
    assert!(status.success(), "store: clean exit on SIGTERM: {status}");
    let status = query.terminate(Duration::from_secs(30));
    assert!(status.success(), "query: clean exit on SIGTERM: {status}");
    drop(proxy);
    drop(s3);
}

/// `count(up)` counts each target once with dedup and once per replica without.
fn check_dedup(query: &mut Proc, port: u16) {
    let ask = |q: &str, extra: &str| get(port, &format!("/api/v1/query?query={}{extra}", enc(q)));
    query.wait_until(
        "count(up) deduplicated and per replica",
        Duration::from_secs(60),
        |_| {
            single_value(&ask("count(up)", "&dedup=false")) == Some(2 * TARGETS)
                && single_value(&ask("count(up)", "")) == Some(TARGETS)
        },
    );
    let series = |extra: &str| -> Vec<serde_json::Value> {
        let j = ask("up", extra).json();
        j["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{j}"))
            .iter()
            .map(|s| s["metric"].clone())
            .collect()
    };
    // Every store answers: no warnings (dns+localhost names the store's one address).
    let j = ask("count(up)", "").json();
    assert_eq!(j["warnings"], serde_json::Value::Null, "{j}");
    let deduped = series("");
    assert_eq!(deduped.len() as i64, TARGETS, "{deduped:?}");
    for m in &deduped {
        assert_eq!(
            m["replica"],
            serde_json::Value::Null,
            "replica label dropped: {m}"
        );
        assert_eq!(
            (&m["region"], &m["monitor"]),
            (&"eu-west".into(), &"prometheus".into()),
            "{m}"
        );
    }
    let all = series("&dedup=false");
    for replica in ["A", "B"] {
        let n = all.iter().filter(|m| m["replica"] == replica).count() as i64;
        assert_eq!(n, TARGETS, "replica {replica}: {all:?}");
    }
}

/// Both sidecars upload blocks with the external labels, meta.json in Thanos' shape.
fn check_uploads(
    side_a: &mut Proc,
    side_b: &mut Proc,
    bucket: &Path,
    data_a: &Path,
    data_b: &Path,
) {
    // Prometheus cuts its first 30 s block after about a minute.
    for (side, replica, data) in [(side_a, "A", data_a), (side_b, "B", data_b)] {
        side.wait_until(
            &format!("a block of replica {replica} in the bucket"),
            Duration::from_secs(150),
            |_| !complete_blocks_of(bucket, replica).is_empty(),
        );
        for b in complete_blocks_of(bucket, replica) {
            let meta = b.meta.as_ref().expect("complete");
            let want = serde_json::json!({"monitor": "prometheus", "region": "eu-west", "replica": replica});
            assert_eq!(meta["thanos"]["labels"], want, "{meta}");
            assert_eq!(meta["thanos"]["source"], "sidecar", "{meta}");
            assert!(
                data.join(&b.ulid).join("index").exists(),
                "{} comes from Prometheus {replica}",
                b.ulid
            );
            let dir = bucket.join(&b.ulid);
            assert!(
                dir.join("index").exists() && dir.join("chunks/000001").exists(),
                "{}",
                b.ulid
            );
        }
    }
}

/// A sidecar restarted on the same Prometheus writes none of its uploaded objects again.
fn check_restart_uploads_nothing_twice(side: &mut Proc, http: u16, bucket: &Path, data: &Path) {
    let shipper_file = data.join("thanos.shipper.json");
    let shipped = |ids: &[String]| {
        let text = std::fs::read_to_string(&shipper_file).unwrap_or_default();
        ids.iter().all(|id| text.contains(id.as_str()))
    };
    let ids: Vec<String> = complete_blocks_of(bucket, "A")
        .into_iter()
        .map(|b| b.ulid)
        .collect();
    side.wait_until(
        "the shipper file lists the uploads",
        Duration::from_secs(30),
        |_| shipped(&ids),
    );
    let before: Vec<_> = ids.iter().map(|id| objects(&bucket.join(id))).collect();
    let status = side.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let file_written = std::fs::metadata(&shipper_file)
        .unwrap()
        .modified()
        .unwrap();
    side.restart();
    side.wait_until("ready after restart", Duration::from_secs(60), |_| {
        ready(http)
    });
    side.wait_until(
        "a shipper round after restart",
        Duration::from_secs(60),
        |_| {
            std::fs::metadata(&shipper_file)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > file_written)
        },
    );
    let after: Vec<_> = ids.iter().map(|id| objects(&bucket.join(id))).collect();
    assert_eq!(
        before, after,
        "objects of uploaded blocks (name, size, mtime) unchanged"
    );
    assert!(
        shipped(&ids),
        "the shipper file still lists every uploaded block"
    );
    let log = side.log();
    for id in &ids {
        assert!(
            !log.contains(&format!("block={id}")),
            "restarted sidecar touched {id}:\n{log}"
        );
    }
}

/// With the store stopped, answers carry a warning naming it; with `partial_response=false`
/// the query fails naming it.
fn check_stopped_store(store: &mut Proc, query: &mut Proc, port: u16, store_addr: &str) {
    let status = store.terminate(Duration::from_secs(30));
    assert!(status.success(), "store: clean exit on SIGTERM: {status}");
    let ask = |extra: &str| {
        get(
            port,
            &format!("/api/v1/query?query={}{extra}", enc("count(up)")),
        )
    };
    query.wait_until(
        "a warning naming the stopped store",
        Duration::from_secs(60),
        |_| {
            let r = ask("");
            r.status == 200
                && single_value(&r) == Some(TARGETS)
                && r.json()["warnings"].to_string().contains(store_addr)
        },
    );
    let r = ask("&partial_response=false");
    let j = r.json();
    assert_eq!(j["status"], "error", "{j}");
    assert!(r.status >= 400, "{} {j}", r.status);
    assert!(
        j["error"].as_str().is_some_and(|e| e.contains(store_addr)),
        "{j}"
    );
}

/// S3 cut during an upload: the block stays invisible (no meta.json) and is uploaded whole once
/// S3 is back.
/// Where the test reads what the store serves: its HTTP port (metrics), its StoreAPI address as
/// the querier names it, and the querier's HTTP port.
struct StoreView<'a> {
    store_http: u16,
    store_addr: &'a str,
    query_http: u16,
}

impl StoreView<'_> {
    /// Successful bucket syncs of the store so far.
    fn syncs(&self) -> u64 {
        let metrics = get(self.store_http, "/metrics").body;
        metrics
            .lines()
            .filter(|l| l.starts_with("strata_store_block_syncs_total{result=\"success\"}"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// `count(up{replica="B"})` over `[min_t, max_t)` (ms) as the store alone answers it: the
    /// number of series, 0 when it has no data there.
    fn replica_b_series(&self, min_t: i64, max_t: i64) -> Option<i64> {
        let expr = format!(
            "count(count_over_time(up{{replica=\"B\"}}[{}ms]))",
            max_t - min_t - 2
        );
        let only = enc(&format!("{{__address__=\"{}\"}}", self.store_addr));
        let r = get(
            self.query_http,
            &format!(
                "/api/v1/query?query={}&time={}&dedup=false&storeMatch[]={only}",
                enc(&expr),
                secs(max_t - 1)
            ),
        );
        let j: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        if j["status"] != "success" {
            return None;
        }
        match j["data"]["result"].as_array()?.len() {
            0 => Some(0),
            _ => single_value(&r),
        }
    }
}

fn check_s3_outage(
    side: &mut Proc,
    proxy: &CutProxy,
    bucket: &Path,
    data: &Path,
    store: &StoreView,
) {
    side.wait_until(
        "S3 cut in the middle of an upload",
        Duration::from_secs(120),
        |_| proxy.tripped(),
    );
    // The block being shipped when the cut came: B's oldest local block without meta.json in
    // the bucket (the shipper goes oldest first and stops its round at a failure). Its data
    // files go up concurrently, so the cut may leave some, all or none of them in the bucket.
    let mut unshipped: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| data.join(name).join("meta.json").exists())
        .filter(|name| !bucket.join(name).join("meta.json").exists())
        .collect();
    unshipped.sort();
    assert!(
        !unshipped.is_empty(),
        "a block of B left unshipped by the cut: {:?}",
        bucket_blocks(bucket)
    );
    let cut = unshipped[0].clone();
    let dir = bucket.join(&cut);
    eprintln!(
        "tutorial: S3 cut while uploading block {cut}; in the bucket: index {}, chunks {}",
        dir.join("index").exists(),
        dir.join("chunks/000001").exists()
    );
    let failures = |p: &Proc| p.log().matches("shipper round failed").count();
    side.wait_until(
        "a failed shipper round during the outage",
        Duration::from_secs(60),
        |p| failures(p) >= 1,
    );
    assert!(
        !dir.join("meta.json").exists(),
        "no meta.json while S3 is down"
    );
    // The store syncs twice with the cut block's data files (some or none) in the bucket and
    // does not serve it.
    let local_meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join(&cut).join("meta.json")).unwrap()).unwrap();
    let (min_t, max_t) = (
        local_meta["minTime"].as_i64().unwrap(),
        local_meta["maxTime"].as_i64().unwrap(),
    );
    let synced = store.syncs();
    side.wait_until(
        "two store syncs during the outage",
        Duration::from_secs(60),
        |_| store.syncs() >= synced + 2,
    );
    assert_eq!(
        store.replica_b_series(min_t, max_t),
        Some(0),
        "the store serves nothing of the half-uploaded block"
    );
    proxy.restore();
    side.wait_until(
        "the cut block uploaded after the outage",
        Duration::from_secs(60),
        |_| dir.join("meta.json").exists(),
    );
    let local = data.join(&cut);
    for f in ["index", "chunks/000001"] {
        let size = |p: &Path| std::fs::metadata(p.join(f)).unwrap().len();
        assert_eq!(size(&dir), size(&local), "{f} of {cut} uploaded whole");
    }
    side.wait_until(
        "the store serves the completed block",
        Duration::from_secs(60),
        |_| store.replica_b_series(min_t, max_t) == Some(TARGETS),
    );
}

/// The middle of the newest block of replica A whose middle a block of replica B also covers.
fn common_block_time(bucket: &Path) -> i64 {
    let range = |b: &BucketBlock| {
        let m = b.meta.as_ref().expect("complete");
        (
            m["minTime"].as_i64().unwrap(),
            m["maxTime"].as_i64().unwrap(),
        )
    };
    let b_ranges: BTreeSet<(i64, i64)> =
        complete_blocks_of(bucket, "B").iter().map(range).collect();
    complete_blocks_of(bucket, "A")
        .iter()
        .map(range)
        .map(|(lo, hi)| lo + (hi - lo) / 2)
        .filter(|t| b_ranges.iter().any(|(lo, hi)| lo <= t && t < hi))
        .max()
        .unwrap_or_else(|| {
            panic!(
                "no time covered by blocks of both replicas: {:?}",
                bucket_blocks(bucket)
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_secret_is_named_by_store_and_sidecar() {
    if !prometheus_available() || !storage::testing::promtool_available() {
        eprintln!("SKIPPED: prometheus or promtool not on PATH");
        return;
    }
    let s3 = S3Server::start_with_credentials(ACCESS_KEY, SECRET_KEY)
        .await
        .expect("start s3s-fs");
    tokio::task::spawn_blocking(move || wrong_secret(s3))
        .await
        .unwrap();
}

fn wrong_secret(s3: S3Server) {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let wrong = work.join("bucket.yml");
    std::fs::write(&wrong, bucket_yaml(s3.port, BUCKET, "not-the-secret")).unwrap();
    let refused = |p: &Proc| {
        let log = p.log();
        log.contains("refused the credentials") && log.contains(ACCESS_KEY)
    };

    let (http, grpc) = (port(), port());
    // As Thanos' store does, `strata store` exits non-zero on refused credentials at its first
    // sync, with one error line naming them (retrying cannot fix a wrong secret).
    let mut store = Proc::start(work, store_spec(http, grpc, &wrong, &work.join("store")));
    let start = std::time::Instant::now();
    while !(refused(&store) && store.log().contains("ERROR")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no error naming the refused credentials:\n{}",
            store.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = store.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", store.log());

    // A Prometheus with one block (backfilled by promtool) for the sidecar to upload.
    let data = work.join("prometheus");
    std::fs::create_dir_all(work.join("blocks")).unwrap();
    let blocks = query_common::make_blocks(&work.join("blocks"));
    query_common::copy_blocks(&blocks[..1], &data);
    let prom_port = port();
    let config = work.join("prometheus.yml");
    let targets = [("prometheus", vec![loopback(prom_port)])];
    std::fs::write(&config, prometheus_config("A", &targets)).unwrap();
    let mut prom = Proc::start(
        work,
        prometheus_spec("prometheus", prom_port, &config, &data),
    );
    prom.wait_until("ready", Duration::from_secs(60), |_| ready(prom_port));
    let (http, grpc) = (port(), port());
    let mut side = Proc::start(
        work,
        sidecar_spec("sidecar", http, grpc, prom_port, &data, &wrong),
    );
    side.wait_until(
        "a log line naming the refused credentials",
        Duration::from_secs(60),
        refused,
    );
    assert!(
        bucket_blocks(&s3.bucket_dir()).is_empty(),
        "nothing reached the bucket: {:?}",
        bucket_blocks(&s3.bucket_dir())
    );
    let metrics = get(http, "/metrics").body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("thanos_shipper_upload_failures_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
