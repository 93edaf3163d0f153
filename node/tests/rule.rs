//! `strata rule` with real parts: a real Prometheus 2.42 scraping a target the test controls,
//! `strata rule --query` evaluating against it, and a real Alertmanager 0.25 receiving the
//! alerts. Every process is killed when its handle drops; every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster_common/mod.rs"]
mod common;

mod rule_common;

use common::{free_port, http_get, wait_for};
use rule_common::{
    am_alerts, available, get_json, ruler_alerts, start_alertmanager, start_ruler, unix_ms, Proc,
    WAIT,
};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `/metrics` endpoint serving the lines the test sets.
struct Target {
    port: u16,
    body: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl Target {
    fn start(body: &str) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(body.to_string()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (body.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = c.read(&mut buf);
                let text = b.lock().unwrap().clone();
                let _ = write!(
                    c,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Target { port, body, stop }
    }

    fn set(&self, body: &str) {
        *self.body.lock().unwrap() = body.to_string();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn start_prometheus(dir: &Path, target: u16) -> (Proc, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: target\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
        ),
    )
    .unwrap();
    let p = Proc::spawn(
        "prometheus",
        dir,
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            )),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for(WAIT, "prometheus ready", || {
        http_get(&addr, "/-/ready").ok()
    });
    (p, addr)
}

/// POSTs an empty body; returns the status code and body.
fn http_post(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

fn series_label(a: &Value) -> String {
    a["labels"]["series"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn alerts_arrive_after_for_resolve_when_cleared_and_stay_one_per_labelset() {
    if !available("prometheus") || !available("prometheus-alertmanager") {
        eprintln!("SKIPPED: prometheus or prometheus-alertmanager not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = Target::start("test_value{series=\"a\"} 0\ntest_value{series=\"b\"} 0\n");
    let (_prom, prom) = start_prometheus(dir, target.port);
    let (_am, am) = start_alertmanager(dir);
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: alerts\n  rules:\n  - alert: ValueHigh\n    expr: test_value > 0\n    for: 3s\n    labels:\n      severity: page\n    annotations:\n      summary: '{{ $labels.series }} is {{ $value }}'\n",
    )
    .unwrap();
    let (_ruler, ruler) = start_ruler(
        dir,
        "strata-rule",
        &[
            format!("--query=http://{prom}"),
            format!("--alertmanagers.url=http://{am}"),
            "--resend-delay=1s".into(),
            "--label=replica=\"A\"".into(),
            "--alert.label-drop=replica".into(),
            "--alert.query-url=http://ruler.example:10902".into(),
        ],
    );
    wait_for(WAIT, "a healthy first evaluation", || {
        let v = get_json(&ruler, "/api/v1/rules")?;
        (v["data"]["groups"][0]["rules"][0]["health"] == "ok").then_some(())
    });
    assert!(
        am_alerts(&am).is_empty(),
        "nothing fires while the value is 0"
    );

    target.set("test_value{series=\"a\"} 1\ntest_value{series=\"b\"} 2\n");
    // Until the ruler reports its alerts firing, Alertmanager must have none: whenever the
    // ruler still says pending *after* Alertmanager answered, that answer must be empty.
    let mut saw_pending = false;
    let firing = wait_for(WAIT, "both alerts firing at the ruler", || {
        let at_am = am_alerts(&am);
        let at_ruler = ruler_alerts(&ruler);
        if at_ruler.iter().any(|a| a["state"] == "pending") {
            saw_pending = true;
            assert!(
                at_am.is_empty(),
                "Alertmanager got an alert before `for` passed: {at_am:?}"
            );
        }
        (at_ruler.len() == 2 && at_ruler.iter().all(|a| a["state"] == "firing")).then_some(at_ruler)
    });
    assert!(saw_pending, "the alerts were pending before they fired");

    let received = wait_for(WAIT, "two alerts at Alertmanager", || {
        let a = am_alerts(&am);
        (a.len() == 2).then_some(a)
    });
    for a in &received {
        let s = series_label(a);
        let labels = a["labels"].as_object().unwrap();
        assert_eq!(labels["alertname"], "ValueHigh");
        assert_eq!(labels["severity"], "page");
        assert!(
            !labels.contains_key("replica"),
            "--alert.label-drop removed it: {a}"
        );
        let want_value = if s == "a" { "1" } else { "2" };
        assert_eq!(a["annotations"]["summary"], format!("{s} is {want_value}"));
        assert!(a["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://ruler.example:10902/graph?g0.expr=test_value+%3E+0"));
        let started = unix_ms(a["startsAt"].as_str().unwrap());
        assert!(unix_ms(a["endsAt"].as_str().unwrap()) > started);
        let at_ruler = firing.iter().find(|r| series_label(r) == s).unwrap();
        let active = unix_ms(at_ruler["activeAt"].as_str().unwrap());
        assert!(
            started - active >= 3000,
            "fired {} ms after becoming active, `for` is 3s",
            started - active
        );
    }

    // Resends (every second here) keep one alert per label set at Alertmanager.
    wait_for(WAIT, "several resends", || {
        let m = http_get(&ruler, "/metrics").ok()?;
        let sent: f64 = m
            .lines()
            .find(|l| l.starts_with("prometheus_notifications_sent_total{"))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        (sent >= 8.0).then_some(())
    });
    let now = am_alerts(&am);
    let mut keys: Vec<String> = now.iter().map(series_label).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["a", "b"],
        "exactly one alert per label set: {now:?}"
    );

    target.set("test_value{series=\"a\"} 0\ntest_value{series=\"b\"} 2\n");
    wait_for(WAIT, "alert a resolved at Alertmanager", || {
        let a = am_alerts(&am);
        (a.len() == 1 && series_label(&a[0]) == "b").then_some(())
    });
    assert_eq!(ruler_alerts(&ruler).len(), 1);
}

#[test]
fn recorded_samples_equal_prometheus_evaluation_at_the_same_timestamps() {
    if !available("prometheus") {
        eprintln!("SKIPPED: prometheus not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = Target::start("test_value{series=\"a\"} 3\ntest_value{series=\"b\"} 5\n");
    let (_prom, prom) = start_prometheus(dir, target.port);
    let expr = "sum by (series) (test_value) * 1000 + time()";
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        format!("groups:\n- name: rec\n  rules:\n  - record: series:test_value:scaled\n    expr: {expr}\n    labels:\n      source: ruler\n"),
    )
    .unwrap();
    let (_ruler, ruler) = start_ruler(dir, "strata-rule", &[format!("--query=http://{prom}")]);
    let path = "/api/v1/query?query=series%3Atest_value%3Ascaled%5B1m%5D";
    let recorded = wait_for(WAIT, "5 recorded samples per series", || {
        let v = get_json(&ruler, path)?;
        let result = v["data"]["result"].as_array()?.clone();
        (result.len() == 2
            && result
                .iter()
                .all(|s| s["values"].as_array().is_some_and(|p| p.len() >= 5)))
        .then_some(result)
    });
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let mut compared = 0;
    for s in &recorded {
        let series = s["metric"]["series"].as_str().unwrap();
        assert_eq!(s["metric"]["source"], "ruler");
        for p in s["values"].as_array().unwrap() {
            let t = p[0].as_f64().unwrap();
            let want = get_json(&prom, &format!("/api/v1/query?query={q}&time={t}")).unwrap();
            let at_prom = want["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["metric"]["series"] == series)
                .unwrap_or_else(|| panic!("Prometheus has series {series} at {t}: {want}"));
            assert_eq!(at_prom["value"][0].as_f64(), Some(t));
            assert_eq!(at_prom["value"][1], p[1], "series {series} at {t}");
            compared += 1;
        }
    }
    assert!(compared >= 10);
}

#[test]
fn reload_keeps_old_rules_on_error_and_sighup_loads_new_ones() {
    if !available("prometheus") {
        eprintln!("SKIPPED: prometheus not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = Target::start("test_value 1\n");
    let (_prom, prom) = start_prometheus(dir, target.port);
    let rules = dir.join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: first\n  rules:\n  - record: r1\n    expr: test_value\n",
    )
    .unwrap();
    let (ruler_proc, ruler) = start_ruler(dir, "strata-rule", &[format!("--query=http://{prom}")]);
    let group_names = || -> Vec<String> {
        get_json(&ruler, "/api/v1/rules")
            .and_then(|v| v["data"]["groups"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|g| g["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(group_names(), vec!["first"]);

    std::fs::write(
        &rules,
        "groups:\n- name: second\n  rules:\n  - record: r2\n",
    )
    .unwrap();
    let (code, body) = http_post(&ruler, "/-/reload");
    assert_eq!(code, 500);
    assert!(body.contains("field 'expr' must be set in rule"), "{body}");
    assert_eq!(group_names(), vec!["first"], "the old rules keep running");

    std::fs::write(
        &rules,
        "groups:\n- name: second\n  rules:\n  - record: r2\n    expr: test_value * 2\n",
    )
    .unwrap();
    ruler_proc.signal("-HUP");
    wait_for(WAIT, "the new group after SIGHUP", || {
        (group_names() == vec!["second"]).then_some(())
    });
}

#[test]
fn a_bad_rule_file_at_start_is_refused_with_promtools_message() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("bad.yml");
    std::fs::write(&rules, "groups:\n- name: g\n  rules:\n  - record: a\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("rule")
        .arg(format!("--rule-file={}", rules.display()))
        .arg("--query=127.0.0.1:1")
        .arg("--http-address=127.0.0.1:0")
        .arg(format!("--data-dir={}", tmp.path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: 0:0: group \"g\", rule 1, \"a\": field 'expr' must be set in rule",
            rules.display()
        )),
        "{err}"
    );
}
