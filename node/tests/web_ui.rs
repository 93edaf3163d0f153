//! The web UI in a real headless chromium (Debian's, driven by chromedriver): the query page
//! completes metric names, label names and values, graphs a range query over demo data, shows
//! Prometheus' error text for a malformed one and a loading state with a cancel for a slow
//! answer; the stores page shows a live and a dead endpoint; the blocks page shows every block
//! of the bucket (also under `strata tools bucket web`); the cluster page shows a single-node
//! cluster with its job table, and says plainly when the process has none; the rules and
//! alerts pages show a node's rule group and its firing alert. Screenshots go to
//! `target/ui-screenshots/`. Skips (with a message) only when chromium is missing and
//! STRATA_REQUIRE_BROWSER is unset.

mod cluster_common;
mod query_common;
mod web_ui_common;

use query_common::{enc, get, StrataQuery};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use web_ui_common::Browser;

/// Demo data: 6 hours of node-exporter-like series for 3 hosts in a FILESYSTEM bucket.
fn demo_data(data_dir: &Path) {
    let out = cluster_common::run_strata(&[
        "tools",
        "bucket",
        "generate",
        "--hours",
        "6",
        "--instances",
        "3",
        &format!("--data-dir={}", data_dir.display()),
    ]);
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Blocks in the FILESYSTEM bucket under `data_dir`: directories with a meta.json.
fn bucket_blocks(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("bucket"))
        .expect("bucket dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("meta.json").exists())
        .count()
}

fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

#[test]
fn query_page_graphs_a_range_query_and_shows_prometheus_errors() {
    if !web_ui_common::available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    demo_data(&data);
    let q = StrataQuery::start_ready(work.path(), &data);
    let base = format!("http://127.0.0.1:{}", q.port);
    let b = Browser::start();

    // `/` leads to the query page; completion offers metric names from the API.
    b.goto(&format!("{base}/"));
    b.wait_for(
        "the query page",
        "return location.pathname === '/graph' && document.getElementById('expr')",
    );
    b.type_into("#expr", "node_lo");
    let offered = b.wait_for(
        "metric name completion",
        "const li = document.querySelector('#completions li'); return li && li.dataset.text",
    );
    assert_eq!(offered, "node_load1");

    // A shorter prefix lists every metric name starting with it, and nothing else.
    b.clear("#expr");
    b.type_into("#expr", "node_");
    let names = b.wait_for(
        "every node_ metric",
        "const t = [...document.querySelectorAll('#completions li')].map((li) => li.dataset.text); \
         return t.includes('node_network_receive_bytes_total') && t",
    );
    let names: Vec<&str> = names
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for want in [
        "node_cpu_seconds_total",
        "node_load1",
        "node_memory_MemAvailable_bytes",
        "node_network_receive_bytes_total",
    ] {
        assert!(names.contains(&want), "{want} offered in {names:?}");
    }
    assert!(
        names.iter().all(|n| n.starts_with("node_")),
        "only names with the prefix: {names:?}"
    );
    b.screenshot("completion-names");

    // Inside braces, label names; Tab takes the first; then its values.
    b.clear("#expr");
    b.type_into("#expr", "node_load1{ins");
    let label = b.wait_for(
        "label name completion",
        "const li = document.querySelector('#completions li'); \
         return li && li.querySelector('.kind').innerText === 'label' && li.dataset.text",
    );
    assert_eq!(label, "instance");
    b.screenshot("completion-labels");
    b.type_into("#expr", "\u{E004}");
    assert_eq!(
        b.eval("return document.getElementById('expr').value"),
        "node_load1{instance"
    );
    b.type_into("#expr", "=\"host-0");
    let values = b.wait_for(
        "label value completion",
        "const t = [...document.querySelectorAll('#completions li')].map((li) => li.dataset.text); \
         return t.length === 3 && t",
    );
    assert_eq!(
        values,
        serde_json::json!(["host-00:9100", "host-01:9100", "host-02:9100"])
    );
    b.clear("#expr");

    // A range query through the form draws one line per series the API returns.
    let expr = "node_load1";
    let api = get(q.port, &format!("/api/v1/query?query={}", enc(expr))).json();
    let expected = api["data"]["result"].as_array().map_or(0, Vec::len);
    assert_eq!(expected, 3, "three demo hosts: {api}");
    b.eval(&format!(
        "document.getElementById('expr').value = {}; return 0",
        js_str(expr)
    ));
    b.click("#execute");
    let drawn = b.wait_for(
        "the graph",
        "const s = document.getElementById('chart-svg'); return s && Number(s.dataset.series)",
    );
    assert_eq!(drawn.as_u64(), Some(expected as u64));
    let paths = b.eval("return document.querySelectorAll('#chart-svg path.series').length");
    assert_eq!(paths.as_u64(), Some(expected as u64));
    let legend = b.eval("return document.getElementById('legend').innerText");
    assert!(
        legend.as_str().is_some_and(|l| l.contains("host-02:9100")),
        "{legend}"
    );
    let axis_labels = b.eval("return document.querySelectorAll('#chart-svg .axis text').length");
    assert!(
        axis_labels.as_u64().is_some_and(|n| n >= 4),
        "axes have ticks: {axis_labels}"
    );
    // The URL now holds the query in Prometheus' parameters.
    let url = b.eval("return location.search");
    assert!(
        url.as_str()
            .is_some_and(|u| u.contains("g0.expr=node_load1") && u.contains("g0.tab=0")),
        "{url}"
    );
    b.screenshot("graph");

    // A malformed query shows Prometheus' error text next to the box, and no stale graph.
    let bad = "sum(rate(node_load1[5m])";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let range = format!(
        "/api/v1/query_range?query={}&start={}&end={now}&step=14",
        enc(bad),
        now - 3600
    );
    let api = get(q.port, &range).json();
    let error = api["error"].as_str().expect("an error").to_string();
    assert!(error.contains("parse error"), "{api}");
    b.eval(&format!(
        "document.getElementById('expr').value = {}; return 0",
        js_str(bad)
    ));
    b.click("#execute");
    let shown = b.wait_for(
        "the error",
        "return document.getElementById('error').innerText || null",
    );
    assert!(
        shown.as_str().is_some_and(|s| s.contains(&error)),
        "shown {shown}, API said {error}"
    );
    assert_eq!(
        b.eval("return document.getElementById('chart-svg') === null"),
        true
    );
    b.screenshot("graph-error");

    // While the API is slow the page shows it is loading, and Cancel aborts the request.
    b.eval(
        "window.fetch = (url, opts) => new Promise((_, reject) => opts.signal.addEventListener('abort', \
           () => reject(new DOMException('aborted', 'AbortError')))); \
         document.getElementById('expr').value = 'up'; return 0",
    );
    b.click("#execute");
    b.wait_for(
        "the loading state",
        "return !document.getElementById('loading').hidden",
    );
    b.screenshot("graph-loading");
    b.click("#cancel");
    let cancelled = b.wait_for(
        "the cancel",
        "const l = document.getElementById('loading'); return l.hidden && document.getElementById('error').innerText",
    );
    assert_eq!(cancelled, "Query cancelled.");
    assert_eq!(
        b.eval("return document.getElementById('execute').disabled"),
        false
    );

    // A shared Prometheus link opens the Table tab with its query and runs it.
    b.goto(&format!(
        "{base}/graph?g0.expr={}&g0.tab=1&g0.range_input=30m",
        enc("up")
    ));
    let rows = b.wait_for(
        "the table",
        "const t = document.getElementById('result-table'); return t && t.querySelectorAll('tr').length - 1",
    );
    assert_eq!(rows.as_u64(), Some(3));
    assert_eq!(
        b.eval("return document.getElementById('range').value"),
        "30m"
    );
    b.screenshot("table");

    // The blocks page shows every block of the bucket; a click shows its meta.json.
    b.goto(&format!("{base}/blocks"));
    let count = b.wait_for(
        "the blocks",
        "const c = document.getElementById('block-count'); return c && Number(c.innerText)",
    );
    let blocks = bucket_blocks(&data);
    assert!(
        blocks >= 3,
        "6 hours make at least 3 blocks, found {blocks}"
    );
    assert_eq!(count.as_u64(), Some(blocks as u64));
    let drawn = b.eval("return document.querySelectorAll('.timeline .block').length");
    assert_eq!(drawn.as_u64(), Some(blocks as u64));
    b.click(".timeline .block");
    let meta = b.wait_for(
        "meta.json",
        "const m = document.getElementById('meta'); return !m.hidden && m.innerText",
    );
    let meta: Value = serde_json::from_str(meta.as_str().unwrap_or("")).expect("meta.json as JSON");
    assert_eq!(meta["thanos"]["labels"]["cluster"], "demo");
    b.screenshot("blocks");

    // Without a cluster, the cluster page says so plainly.
    b.goto(&format!("{base}/cluster"));
    let said = b.wait_for(
        "the cluster page",
        "const n = document.getElementById('not-served'); return n && n.innerText",
    );
    assert!(
        said.as_str()
            .is_some_and(|s| s.contains("not part of a cluster")),
        "{said}"
    );
}

#[test]
fn stores_page_shows_a_live_and_a_dead_endpoint() {
    if !web_ui_common::available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    demo_data(&data);
    let live_grpc = format!("127.0.0.1:{}", cluster_common::free_port());
    let dead = format!("127.0.0.1:{}", cluster_common::free_port());
    let store_http = format!("127.0.0.1:{}", cluster_common::free_port());
    let _store = Process::spawn(&[
        "store",
        &format!("--data-dir={}", data.display()),
        &format!("--grpc-address={live_grpc}"),
        &format!("--http-address={store_http}"),
    ]);
    cluster_common::wait_for(Duration::from_secs(60), "the store gateway ready", || {
        cluster_common::http_get(&store_http, "/-/ready").ok()
    });
    let mut q = StrataQuery::spawn(
        work.path(),
        &[
            &format!("--endpoint={live_grpc}"),
            &format!("--endpoint={dead}"),
        ],
    );
    q.wait_until(
        "the live endpoint answered Info",
        Duration::from_secs(60),
        |q| {
            query_common::request(q.port, "GET", "/api/v1/stores", None).is_ok_and(|r| {
                let v = r.json();
                let all: Vec<&Value> = v["data"]
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.values())
                    .flat_map(|l| l.as_array().into_iter().flatten())
                    .collect();
                all.iter()
                    .any(|s| s["name"] == live_grpc.as_str() && s["lastError"].is_null())
                    && all
                        .iter()
                        .any(|s| s["name"] == dead.as_str() && s["lastError"].is_string())
            })
        },
    );
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/stores", q.port));
    b.wait_for(
        "the stores table",
        "return document.querySelectorAll('#stores tr[data-endpoint]').length === 2",
    );
    let row = |name: &str, what: &str| {
        b.eval(&format!(
            "const r = document.querySelector('tr[data-endpoint=' + JSON.stringify({}) + ']'); return r && {what}",
            js_str(name)
        ))
    };
    assert_eq!(row(&live_grpc, "r.className"), "healthy");
    assert_eq!(row(&live_grpc, "r.cells[1].innerText"), "UP");
    assert_eq!(row(&dead, "r.className"), "unhealthy");
    assert_eq!(row(&dead, "r.cells[1].innerText"), "DOWN");
    let err = row(&dead, "r.cells[7].innerText");
    assert!(
        err.as_str().is_some_and(|e| !e.trim().is_empty()),
        "the dead store's error is shown: {err}"
    );
    let labels = row(&live_grpc, "r.cells[3].innerText");
    assert!(
        labels
            .as_str()
            .is_some_and(|l| l.contains("cluster=\"demo\"")),
        "{labels}"
    );
    b.screenshot("stores");
}

#[test]
fn cluster_page_shows_a_single_node_cluster() {
    if !web_ui_common::available() {
        return;
    }
    let mut c = cluster_common::Cluster::new(1);
    c.start(0, &["--cluster.bootstrap"]);
    let leader = c.wait_for_agreement(&[0], 1, Duration::from_secs(60));
    let b = Browser::start();
    b.goto(&format!("http://{}/cluster", c.nodes[0].http));
    b.wait_for(
        "the members table",
        "return document.querySelectorAll('#members tr[data-node]').length === 1",
    );
    let first = b.eval("return document.querySelector('#members tr[data-node]').dataset.node");
    assert_eq!(first, leader.to_string());
    let member = b.eval("return document.querySelector('#members tr[data-node]').innerText");
    assert!(
        member
            .as_str()
            .is_some_and(|m| m.contains("leader") && m.contains(&c.nodes[0].grpc)),
        "{member}"
    );
    let summary = b.eval("return document.getElementById('cluster-summary').innerText");
    let text = summary.as_str().unwrap_or("");
    assert!(text.contains("Leader") && text.contains("Term"), "{text}");
    b.screenshot("cluster");
}

#[test]
fn rules_alerts_and_cluster_jobs_show_a_nodes_rule_group_and_its_firing_alert() {
    if !web_ui_common::available() {
        return;
    }
    let mut c = cluster_common::Cluster::new(1);
    demo_data(&c.nodes[0].data_dir);
    let rules = c.dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n\
         - name: demo\n  interval: 5s\n  rules:\n\
         \x20 - record: instance:node_load1:max\n    expr: max by (instance) (node_load1)\n\
         \x20 - alert: DemoHostUp\n    expr: up == 1\n    labels:\n      severity: info\n\
         \x20   annotations:\n      summary: '{{ $labels.instance }} is up'\n",
    )
    .expect("rules file");
    let rule_file = format!("--rule-file={}", rules.display());
    c.start(0, &["--cluster.bootstrap", &rule_file]);
    let leader = c.wait_for_agreement(&[0], 1, Duration::from_secs(60));
    let http = c.nodes[0].http.clone();
    // The leader assigns the group to the one node, which evaluates it over the demo data.
    cluster_common::wait_for(Duration::from_secs(60), "the alert firing", || {
        let body = cluster_common::http_get(&http, "/api/v1/alerts").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let firing = v["data"]["alerts"]
            .as_array()?
            .iter()
            .filter(|a| a["state"] == "firing")
            .count();
        (firing == 3).then_some(())
    });
    let b = Browser::start();

    b.goto(&format!("http://{http}/rules"));
    let group = b.wait_for(
        "the rule group",
        "const h = document.querySelector('#rules-box .panel h2'); return h && h.innerText",
    );
    assert!(
        group
            .as_str()
            .is_some_and(|g| g.starts_with("demo") && g.contains("every 5s")),
        "{group}"
    );
    let rule = |name: &str, what: &str| {
        b.eval(&format!(
            "const r = document.querySelector('tr[data-rule=' + JSON.stringify({}) + ']'); return r && {what}",
            js_str(name)
        ))
    };
    let record = rule("instance:node_load1:max", "r.cells[0].innerText");
    assert!(
        record
            .as_str()
            .is_some_and(|t| t.contains("record: instance:node_load1:max")
                && t.contains("max by (instance) (node_load1)")),
        "{record}"
    );
    let alert = rule("DemoHostUp", "r.cells[0].innerText");
    assert!(
        alert
            .as_str()
            .is_some_and(|t| t.contains("alert: DemoHostUp") && t.contains("severity=\"info\"")),
        "{alert}"
    );
    let health = b.wait_for(
        "both rules evaluated",
        "const s = [...document.querySelectorAll('#rules-box tr[data-rule]')].map((r) => r.cells[1].innerText); \
         return s.length === 2 && s",
    );
    assert_eq!(health, serde_json::json!(["OK", "OK"]));
    b.screenshot("rules");

    b.goto(&format!("http://{http}/alerts"));
    let heading = b.wait_for(
        "the firing alert",
        "const h = document.querySelector('#alerts-box .panel h2'); return h && h.innerText",
    );
    assert!(
        heading
            .as_str()
            .is_some_and(|h| h.contains("DemoHostUp") && h.contains("3 firing")),
        "{heading}"
    );
    let rows = b.eval(
        "return [...document.querySelectorAll('#alerts-box tr')].slice(1).map((r) => r.innerText)",
    );
    let rows: Vec<&str> = rows
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for host in ["host-00:9100", "host-01:9100", "host-02:9100"] {
        assert!(
            rows.iter().any(|r| r.contains("FIRING")
                && r.contains(host)
                && r.contains(&format!("{host} is up"))),
            "{host} firing with its summary in {rows:?}"
        );
    }
    b.screenshot("alerts");

    // The cluster page's job table: the group, held by the node under a lease.
    b.goto(&format!("http://{http}/cluster"));
    let job = b.wait_for(
        "the rule group job",
        "const r = document.querySelector('#jobs tr[data-kind=\"rule-group\"]'); return r && r.innerText",
    );
    let job = job.as_str().unwrap_or("");
    assert!(
        job.contains(&format!("{};demo", rules.display())),
        "the job names the group: {job}"
    );
    assert!(
        job.contains("assigned") && job.contains(&format!("node {leader}")),
        "held by node {leader}: {job}"
    );
    assert!(job.contains(" left"), "with its lease: {job}");
    let heading = b.eval(
        "return [...document.querySelectorAll('h2')].map((h) => h.innerText).find((t) => t.startsWith('Jobs'))",
    );
    assert!(
        heading.as_str().is_some_and(|h| h != "Jobs (0)"),
        "{heading}"
    );
    b.screenshot("cluster-jobs");
}

/// A `strata` process, killed when dropped.
struct Process(Child);

impl Process {
    fn spawn(args: &[&str]) -> Process {
        Process(
            Command::new(cluster_common::strata())
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start strata"),
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bucket_web_serves_the_blocks_timeline() {
    if !web_ui_common::available() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    demo_data(&data);
    let port = cluster_common::free_port();
    let _web = Process::spawn(&[
        "tools",
        "bucket",
        "web",
        &format!("--http-address=127.0.0.1:{port}"),
        &format!("--data-dir={}", data.display()),
    ]);
    cluster_common::wait_for(Duration::from_secs(30), "bucket web", || {
        cluster_common::http_get(&format!("127.0.0.1:{port}"), "/-/healthy").ok()
    });
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{port}/"));
    let count = b.wait_for(
        "the blocks",
        "const c = document.getElementById('block-count'); return location.pathname === '/blocks' && c && Number(c.innerText)",
    );
    assert_eq!(count.as_u64(), Some(bucket_blocks(&data) as u64));
    b.screenshot("bucket-web");
}
