//! `strata rule`'s results and rules seen from outside, with real processes: two rulers (HA
//! replicas A and B) behind a real `strata query --store <ruler gRPC>`, a FILESYSTEM bucket
//! they upload their blocks to, and a ruler restarted over its data dir. Every process is
//! killed when its handle drops; every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "cluster_common/mod.rs"]
mod common;

use common::{free_port, http_get, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// A child process killed on drop, its log printed when the test panics.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, dir: &Path, args: &[String]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    /// SIGTERM, then waits for the exit (a clean stop writes the unsealed results).
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        wait_for(WAIT, &format!("{} to exit", self.name), || {
            self.child.try_wait().unwrap()
        });
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- {} log (last lines)", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

struct Ruler {
    proc: Proc,
    http: String,
    grpc: String,
}

fn start_ruler(dir: &Path, name: &str, rules: &Path, extra: &[String]) -> Ruler {
    let http = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "rule".to_string(),
        format!("--rule-file={}", rules.display()),
        "--eval-interval=1s".into(),
        format!("--http-address={http}"),
        format!("--grpc-address={grpc}"),
        format!("--data-dir={}", dir.join(name).display()),
    ];
    args.extend_from_slice(extra);
    let proc = Proc::spawn(name, dir, &args);
    wait_for(WAIT, "ruler ready", || http_get(&http, "/-/ready").ok());
    Ruler { proc, http, grpc }
}

fn get_json(addr: &str, path: &str) -> Option<Value> {
    http_get(addr, path)
        .ok()
        .and_then(|b| serde_json::from_str(&b).ok())
}

fn query(addr: &str, expr: &str) -> Option<Vec<Value>> {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    let v = get_json(addr, &format!("/api/v1/query?query={q}"))?;
    v["data"]["result"].as_array().cloned()
}

/// Metas of the blocks in a FILESYSTEM bucket directory.
fn bucket_metas(bucket: &Path) -> Vec<Value> {
    let Ok(rd) = std::fs::read_dir(bucket) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("meta.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

const RULES: &str = "groups:
- name: answers
  rules:
  - record: job:answer:value
    expr: vector(42)
    labels:
      team: a
  - alert: AlwaysOn
    expr: vector(1)
    labels:
      severity: info
";

#[test]
fn recorded_series_and_rules_reach_the_querier_and_blocks_reach_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let objstore = dir.join("objstore.yml");
    std::fs::write(
        &objstore,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        ),
    )
    .unwrap();
    let ruler_flags = |replica: &str| {
        vec![
            format!("--label=replica=\"{replica}\""),
            format!("--objstore.config-file={}", objstore.display()),
            "--tsdb.block-duration=4s".into(),
        ]
    };
    let a = start_ruler(dir, "ruler-a", &rules, &ruler_flags("A"));
    let b = start_ruler(dir, "ruler-b", &rules, &ruler_flags("B"));
    let q_http = format!("127.0.0.1:{}", free_port());
    let _querier = Proc::spawn(
        "querier",
        dir,
        &[
            "query".into(),
            format!("--http-address={q_http}"),
            format!("--grpc-address=127.0.0.1:{}", free_port()),
            format!("--store={}", a.grpc),
            format!("--store={}", b.grpc),
            "--query.replica-label=replica".into(),
        ],
    );
    wait_for(WAIT, "querier ready", || http_get(&q_http, "/-/ready").ok());

    // The recorded series, through the querier's StoreAPI fan-out: once, deduplicated over
    // the replicas' external label, with the rule's label.
    let series = wait_for(WAIT, "the recorded series at the querier", || {
        query(&q_http, "job:answer:value").filter(|r| !r.is_empty())
    });
    assert_eq!(series.len(), 1, "deduplicated: {series:?}");
    assert_eq!(series[0]["metric"]["team"], "a");
    assert_eq!(series[0]["value"][1], "42");
    // Without deduplication each replica's series carries its external label.
    let both = wait_for(WAIT, "both replicas' series", || {
        let q: String = form_urlencoded::byte_serialize(b"job:answer:value").collect();
        let v = get_json(&q_http, &format!("/api/v1/query?query={q}&dedup=false"))?;
        let r = v["data"]["result"].as_array().cloned()?;
        (r.len() == 2).then_some(r)
    });
    let mut replicas: Vec<String> = both
        .iter()
        .map(|s| s["metric"]["replica"].as_str().unwrap().to_string())
        .collect();
    replicas.sort();
    assert_eq!(replicas, ["A", "B"]);
    // ALERTS from the ruler's results too.
    wait_for(WAIT, "ALERTS at the querier", || {
        query(
            &q_http,
            "ALERTS{alertname=\"AlwaysOn\",alertstate=\"firing\"}",
        )
        .filter(|r| !r.is_empty())
    });

    // The Rules API, aggregated: one group, each rule once (replica label ignored).
    let groups = wait_for(WAIT, "rules at the querier", || {
        let v = get_json(&q_http, "/api/v1/rules")?;
        let g = v["data"]["groups"].as_array().cloned()?;
        let healthy = g.len() == 1
            && g[0]["rules"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["health"] == "ok"));
        healthy.then_some(g)
    });
    assert_eq!(groups[0]["name"], "answers");
    assert_eq!(groups[0]["file"], rules.display().to_string());
    let rules_json = groups[0]["rules"].as_array().unwrap();
    assert_eq!(rules_json.len(), 2, "{rules_json:?}");
    assert_eq!(rules_json[0]["type"], "recording");
    assert_eq!(rules_json[0]["name"], "job:answer:value");
    assert_eq!(rules_json[0]["labels"]["team"], "a");
    assert!(
        rules_json[0]["labels"]["replica"].is_string(),
        "rules carry the external labels: {rules_json:?}"
    );
    assert_eq!(rules_json[1]["type"], "alerting");
    let only_alerts = get_json(&q_http, "/api/v1/rules?type=alert").unwrap();
    let r = only_alerts["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["name"], "AlwaysOn");
    let alerts = wait_for(WAIT, "the firing alert at the querier", || {
        let v = get_json(&q_http, "/api/v1/alerts")?;
        let a = v["data"]["alerts"].as_array().cloned()?;
        a.iter().any(|a| a["state"] == "firing").then_some(a)
    });
    assert!(alerts
        .iter()
        .all(|a| a["labels"]["alertname"] == "AlwaysOn"));
    let bad = http_get(&q_http, "/api/v1/rules?type=nope").unwrap_err();
    assert!(bad.contains("400") && bad.contains("bad_data"), "{bad}");

    // Blocks of 4 s are cut and uploaded with source `ruler` and the external labels.
    let metas = wait_for(
        WAIT,
        "ruler blocks from both replicas in the bucket",
        || {
            let m = bucket_metas(&bucket);
            let has = |r: &str| m.iter().any(|m| m["thanos"]["labels"]["replica"] == r);
            (has("A") && has("B")).then_some(m)
        },
    );
    for m in &metas {
        assert_eq!(m["thanos"]["source"], "ruler", "{m}");
        assert_eq!(m["thanos"]["downsample"]["resolution"], 0, "{m}");
        let (min, max) = (
            m["minTime"].as_i64().unwrap(),
            m["maxTime"].as_i64().unwrap(),
        );
        assert!(max - min <= 4_000, "one block range at most: {m}");
        assert!(m["stats"]["numSamples"].as_u64().unwrap() > 0, "{m}");
    }
    let shipped = std::fs::read_to_string(dir.join("ruler-a/thanos.shipper.json")).unwrap();
    assert!(shipped.contains("uploaded"), "{shipped}");
    // The uploaded blocks are readable: `promtool tsdb analyze` and the embedded engine
    // are other tests' business; here the sample count must match what a local block holds.
    drop((a, b));
}

#[test]
fn results_survive_a_clean_restart_from_the_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let flags = ["--tsdb.block-duration=1h".to_string()];
    // No bucket flag and no --query: the embedded engine reads an empty bucket directory.
    std::fs::create_dir_all(dir.join("ruler/bucket")).unwrap();
    let first = start_ruler(dir, "ruler", &rules, &flags);
    let count = |addr: &str| -> Option<f64> {
        let r = query(addr, "count_over_time(job:answer:value[1h])")?;
        r.first()?["value"][1].as_str()?.parse().ok()
    };
    let before = wait_for(WAIT, "five recorded samples", || {
        count(&first.http).filter(|c| *c >= 5.0)
    });
    first.proc.stop();
    let blocks: Vec<_> = std::fs::read_dir(dir.join("ruler"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("meta.json").exists())
        .collect();
    // One block, or two when the run crossed an hour boundary.
    assert!(
        !blocks.is_empty(),
        "the clean stop wrote the unsealed results as a block"
    );

    // The restarted ruler records something else: the old series must come from the block.
    let other = dir.join("other.yml");
    std::fs::write(
        &other,
        "groups:\n- name: other\n  rules:\n  - record: other\n    expr: vector(1)\n",
    )
    .unwrap();
    let second = start_ruler(dir, "ruler", &other, &flags);
    let after = count(&second.http).expect("the old series after the restart");
    assert!(
        after >= before,
        "{after} samples after the restart, {before} before"
    );
}

fn available(bin: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn query_sd_files_and_dns_alertmanagers_from_a_config_file_are_followed() {
    if !available("prometheus-alertmanager") {
        eprintln!("SKIPPED: prometheus-alertmanager not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let am_port = free_port();
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let am_log = dir.join("alertmanager.log");
    let out = std::fs::File::create(&am_log).unwrap();
    let mut am = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let am_addr = format!("127.0.0.1:{am_port}");
    let guard = scopeguard(&mut am);
    wait_for(WAIT, "alertmanager ready", || {
        http_get(&am_addr, "/-/ready").ok()
    });

    // Ruler A records; ruler B reads A's query API, found through a file-SD file only.
    let rules_a = dir.join("a.yml");
    std::fs::write(&rules_a, RULES).unwrap();
    std::fs::create_dir_all(dir.join("ruler-a/bucket")).unwrap();
    let a = start_ruler(dir, "ruler-a", &rules_a, &[]);
    let sd = dir.join("query-sd.yml");
    std::fs::write(&sd, "- targets: ['127.0.0.1:1']\n").unwrap();
    let rules_b = dir.join("b.yml");
    std::fs::write(
        &rules_b,
        "groups:\n- name: b\n  rules:\n  - record: doubled\n    expr: job:answer:value * 2\n  - alert: DoubledHigh\n    expr: job:answer:value * 2 > 80\n",
    )
    .unwrap();
    let am_file = dir.join("alertmanagers.yml");
    std::fs::write(
        &am_file,
        format!("alertmanagers:\n- static_configs: ['dns+localhost:{am_port}']\n  scheme: http\n  timeout: 5s\n  api_version: v2\n"),
    )
    .unwrap();
    let b = start_ruler(
        dir,
        "ruler-b",
        &rules_b,
        &[
            format!("--query.sd-files={}", sd.display()),
            format!("--alertmanagers.config-file={}", am_file.display()),
            "--resend-delay=1s".into(),
        ],
    );
    // Nothing answers at the first target: the rule fails until the file names ruler A.
    wait_for(WAIT, "a failing evaluation", || {
        let v = get_json(&b.http, "/api/v1/rules")?;
        (v["data"]["groups"][0]["rules"][0]["health"] == "err").then_some(())
    });
    std::fs::write(&sd, format!("- targets: ['{}']\n", a.http)).unwrap();
    let doubled = wait_for(WAIT, "ruler B's recorded series", || {
        query(&b.http, "doubled").filter(|r| !r.is_empty())
    });
    assert_eq!(doubled[0]["value"][1], "84");
    let received = wait_for(WAIT, "the alert at Alertmanager", || {
        let v = get_json(&am_addr, "/api/v2/alerts")?;
        let a = v.as_array()?.clone();
        (!a.is_empty()).then_some(a)
    });
    assert_eq!(received[0]["labels"]["alertname"], "DoubledHigh");
    drop(guard);
}

/// Kills the child when dropped (the Alertmanager of a test).
fn scopeguard(child: &mut Child) -> impl Drop + '_ {
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Kill(child)
}
