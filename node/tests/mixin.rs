//! The monitoring mixin (`mixin/alerts.yaml`, `mixin/dashboard.json`) refers only to metrics
//! Strata exposes: `promtool check rules` passes, a real Prometheus 2.42 loads and evaluates the
//! rules while scraping a real `strata node`, and every metric the rules and the dashboard name
//! is exposed by that node or documented per role in `mixin/README.md` (and written by the
//! code).

mod self_metrics_common;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use self_metrics_common::{enc, free_port, generate, get, query_ok, wait_for, Proc, Scrape};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Metric names a PromQL expression selects.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let vs = match e {
                Expr::VectorSelector(vs) => Some(vs),
                Expr::MatrixSelector(ms) => Some(&ms.vs),
                _ => None,
            };
            if let Some(vs) = vs {
                let name = vs
                    .name
                    .clone()
                    .ok_or_else(|| format!("a selector without a metric name: {vs}"))?;
                self.0.insert(name);
            }
            Ok(true)
        }
    }
    let ast = parser::parse(expr).map_err(|e| format!("{expr}: {e}"))?;
    let mut v = Names(BTreeSet::new());
    walk_expr(&mut v, &ast)?;
    Ok(v.0)
}

/// The `expr` of every rule in the rule file.
fn rule_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("mixin/alerts.yaml")).expect("alerts.yaml");
    let doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("alerts.yaml is YAML");
    let mut out = Vec::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"]
                .as_str()
                .or(r["record"].as_str())
                .expect("rule name");
            out.push((
                name.to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    out
}

/// Every target expression of the dashboard, with Grafana's variables replaced by values
/// Prometheus would accept.
fn dashboard_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("mixin/dashboard.json")).expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard.json is JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"]
                .as_str()
                .expect("target expr")
                .replace("$__rate_interval", "5m")
                .replace("$job", ".+");
            out.push((p["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }
    out
}

/// Backticked metric names of mixin/README.md's "Metrics by role" section (a name before `{`).
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("mixin/README.md")).expect("README");
    let section = text
        .split("## Metrics by role")
        .nth(1)
        .expect("a Metrics by role section");
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|t| t.split('{').next().unwrap_or(t).to_string())
        .filter(|t| t.contains('_') || t == "up")
        .filter(|t| {
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

/// The family a sample name belongs to (histogram series carry suffixes).
fn family(name: &str) -> &str {
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(f) = name.strip_suffix(suffix) {
            return f;
        }
    }
    name
}

/// All Rust sources of the crates that define metrics, concatenated.
fn sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    let mut s = String::new();
    for c in ["node/src", "storage/src"] {
        walk(&repo().join(c), &mut s);
    }
    s
}

#[test]
fn dashboard_and_rules_parse_and_name_only_documented_metrics() {
    let docs = documented();
    assert!(docs.len() > 60, "documented metrics: {docs:?}");
    // A documented name must be one the code writes (histograms and gRPC names are built
    // from parts, so the side/suffix-free stem is looked for too).
    let src = sources();
    for name in &docs {
        let stem = name.replacen("grpc_server_", "grpc_{side}_", 1).replacen(
            "grpc_client_",
            "grpc_{side}_",
            1,
        );
        assert!(
            name == "up"
                || src.contains(&format!("\"{name}"))
                || src.contains(&format!("\"{stem}")),
            "mixin/README.md documents {name}, which no source writes"
        );
    }
    let mut exprs = rule_exprs();
    assert!(exprs.len() >= 12, "rules: {exprs:?}");
    let dash = dashboard_exprs();
    assert!(dash.len() >= 20, "dashboard targets: {dash:?}");
    exprs.extend(dash);
    for (what, expr) in &exprs {
        let names = metric_names(expr).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!names.is_empty(), "{what}: selects no metric: {expr}");
        for n in names {
            assert!(
                docs.contains(family(&n)),
                "{what}: {n} is not documented in mixin/README.md"
            );
        }
    }
}

#[test]
fn promtool_checks_the_rules() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo().join("mixin/alerts.yaml"))
        .output()
        .expect("promtool (Debian's prometheus package) on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = rule_exprs().len();
    assert!(
        text.contains(&format!("SUCCESS: {n} rules found")),
        "{text}"
    );
}

/// Prometheus 2.42 on loopback, killed when dropped.
struct Prometheus {
    child: Child,
    address: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_loads_the_rules_while_scraping_a_node() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = generate(work.path(), 2);
    let node = Proc::start(
        work.path(),
        "node",
        &[
            "node",
            &format!("--data-dir={}", data.display()),
            "--cluster.insecure",
            "--cluster.bootstrap",
        ],
    );
    node.wait_ready();
    // A query through the node makes its client and server gRPC families appear (the query
    // role reads the store role of the cluster's registry).
    wait_for(Duration::from_secs(60), "the node answering", || {
        query_ok(&node.http, "count(up)").filter(|n| *n > 0.0)
    });

    let address = format!("127.0.0.1:{}", free_port());
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: ['{}']\n\
             scrape_configs:\n  - job_name: strata\n    static_configs: [{{targets: ['{}']}}]\n",
            repo().join("mixin/alerts.yaml").display(),
            node.http
        ),
    )
    .expect("config");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={address}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            work.path().join("prom").display()
        ))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.path().join("prometheus.log")).expect("log"))
        .spawn()
        .expect("prometheus (Debian's package) on PATH");
    let prom = Prometheus { child, address };

    // Every group evaluated at least once, every rule healthy (an expression Prometheus could
    // not evaluate would be "err").
    let groups = rule_exprs().len();
    let rules = wait_for(Duration::from_secs(60), "every rule evaluated", || {
        let body = get(&prom.address, "/api/v1/rules").ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let rules: Vec<serde_json::Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules.iter().all(|r| {
            r["lastEvaluation"]
                .as_str()
                .is_some_and(|t| !t.starts_with("0001"))
        });
        (rules.len() == groups && evaluated).then_some(rules)
    });
    for r in &rules {
        assert_eq!(r["health"], "ok", "rule {} is unhealthy: {r}", r["name"]);
    }
    // Scraped and up: the node's families are in Prometheus.
    wait_for(Duration::from_secs(30), "the node scraped", || {
        query_ok(&prom.address, "up{job=\"strata\"}").filter(|v| *v == 1.0)
    });
    let leaders = wait_for(
        Duration::from_secs(30),
        "strata_raft_leader in Prometheus",
        || query_ok(&prom.address, "sum by (job) (strata_raft_leader)"),
    );
    assert_eq!(leaders, 1.0, "the node leads its one-node cluster");
    // The cluster has a leader and the node is up: those alerts must not be pending or firing.
    let alerts = get(&prom.address, "/api/v1/alerts").expect("alerts");
    for quiet in ["StrataRaftNoLeader", "StrataNodeDown"] {
        assert!(!alerts.contains(quiet), "{quiet} is active: {alerts}");
    }

    // Every metric a rule names is exposed by the node, or documented for another role.
    let scrape = Scrape::of(&node);
    let exposed: BTreeSet<&str> = scrape.names().into_iter().map(family).collect();
    let docs = documented();
    let mut from_node = 0;
    for (rule, expr) in rule_exprs() {
        for n in metric_names(&expr).expect("parsed above") {
            let f = family(&n);
            if exposed.contains(f) {
                from_node += 1;
                let q = format!("count({{__name__=\"{n}\"}})");
                let path = format!("/api/v1/query?query={}", enc(&q));
                let body = get(&prom.address, &path).expect("query prometheus");
                assert!(
                    body.contains("\"result\":[{"),
                    "{rule}: {n} not in Prometheus: {body}"
                );
            } else {
                assert!(
                    docs.contains(f),
                    "{rule}: {n} neither exposed by a node nor documented"
                );
            }
        }
    }
    assert!(
        from_node >= 10,
        "only {from_node} rule selectors read the node's metrics"
    );
    // And the node exposes the families of every process and of its roles (a label-vector
    // family has series only once used: the query above used these). A node of one makes no
    // gRPC call (its query role reads its own blocks, Raft has no peer), so the gRPC families
    // are checked where calls happen, in self_metrics.rs.
    for f in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "strata_build_info",
        "prometheus_engine_queries",
        "prometheus_engine_queries_concurrent_max",
        "prometheus_engine_query_duration_seconds",
        "strata_objstore_bucket_operations_total",
        "strata_objstore_bucket_operation_duration_seconds",
        "strata_query_blocks_loaded",
        "strata_store_blocks_loaded",
        "strata_raft_term",
        "strata_raft_leader",
        "strata_cluster_members",
        "http_requests_total",
        "http_request_duration_seconds",
    ] {
        assert!(
            exposed.contains(f),
            "node does not expose {f}:\n{}",
            scrape.text
        );
        assert!(docs.contains(f), "{f} is exposed but not documented");
    }
}
