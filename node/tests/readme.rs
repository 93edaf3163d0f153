//! README's commands, run as written from a fresh `git clone` of this checkout's HEAD: the
//! single-node run command (then the "from another terminal" block), and the three-node
//! cluster section. The demo data they serve is queried.
//!
//! One substitution, on purpose: README's first step is `cargo build --release -p node --bin
//! strata`, which from a fresh clone is a cold release build (minutes and a gigabyte of disk
//! on the project's machine, far beyond this test's budget). A `cargo` placed first on PATH
//! answers exactly that command by copying the binary this test run already built to
//! `target/release/strata`, and refuses any other; every other word of README runs unchanged.
//! So the test checks README's commands and the binary, not that a release build works.

mod self_metrics_common;

use self_metrics_common::{enc, get, wait_for};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What README's build step is answered with.
const BUILD: &str = "build --release -p node --bin strata";

/// A fresh clone of this checkout's HEAD with the `cargo` stand-in on PATH.
struct Clone {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    path_env: String,
}

impl Clone {
    fn new() -> Clone {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("root");
        let head = git(repo, &["rev-parse", "HEAD"]);
        let dir = tmp.path().join("strata");
        git(
            tmp.path(),
            &[
                "clone",
                "--quiet",
                "--no-checkout",
                &repo.display().to_string(),
                "strata",
            ],
        );
        git(&dir, &["checkout", "--quiet", head.trim()]);
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let shim = bin.join("cargo");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\n\
                 # Stands in for cargo in node/tests/readme.rs: README's build step only.\n\
                 [ \"$*\" = \"{BUILD}\" ] || {{ echo \"readme test: unexpected cargo $*\" >&2; exit 2; }}\n\
                 mkdir -p target/release && cp '{}' target/release/strata\n",
                env!("CARGO_BIN_EXE_strata")
            ),
        )
        .expect("shim");
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&shim)
            .status()
            .expect("chmod");
        assert!(status.success());
        let path_env = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Clone {
            _tmp: tmp,
            dir,
            path_env,
        }
    }

    fn readme(&self) -> String {
        std::fs::read_to_string(self.dir.join("README.md")).expect("README.md in the clone")
    }

    /// Starts `bash -c script` in the clone, in a process group of its own.
    fn spawn(&self, script: &str, log: &str) -> Group {
        let log = self.dir.join(log);
        let child = Command::new("bash")
            .args(["-c", script])
            .current_dir(&self.dir)
            .env("PATH", &self.path_env)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log"),
            )
            .process_group(0)
            .spawn()
            .expect("bash");
        Group { child, log }
    }

    /// Runs `bash -e -c script` in the clone to completion; its stdout, or a panic with both
    /// streams.
    fn run(&self, script: &str) -> String {
        let out = Command::new("bash")
            .args(["-e", "-c", script])
            .current_dir(&self.dir)
            .env("PATH", &self.path_env)
            .output()
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{script}\nfailed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// A shell and everything it started, killed together when dropped.
struct Group {
    child: Child,
    log: PathBuf,
}

impl Group {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The ```sh blocks of README's section `heading` (up to the next `## `), in order.
fn sh_blocks(readme: &str, heading: &str) -> Vec<String> {
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next().map(str::to_string))
        .collect()
}

/// The first sample value of an instant query at `time` (None: now).
fn value_at(address: &str, q: &str, time: Option<i64>) -> Option<f64> {
    let t = time.map(|t| format!("&time={t}")).unwrap_or_default();
    let body = get(address, &format!("/api/v1/query?query={}{t}", enc(q))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The demo data: 10 hosts with one `up` each, over a week up to now.
const HOSTS: f64 = 10.0;

#[test]
fn readme_run_command_serves_a_week_of_demo_data() {
    let clone = Clone::new();
    let blocks = sh_blocks(&clone.readme(), "Run it");
    assert!(blocks.len() >= 2, "Run it: {blocks:?}");
    let run = blocks[0].trim();
    assert!(run.starts_with(&format!("cargo {BUILD} && ")), "{run}");
    let node = clone.spawn(run, "run.log");

    let url = "http://localhost:10902";
    // Generating a week and compacting it takes about 90 s of a debug build on a busy machine.
    wait_for(
        Duration::from_secs(600),
        "the node printing its URL",
        || node.log().contains(url).then_some(()),
    );
    let up = wait_for(
        Duration::from_secs(60),
        "count(up) on localhost:10902",
        || value_at("127.0.0.1:10902", "count(up)", None),
    );
    assert_eq!(up, HOSTS, "{}", node.log());
    // A week of data: six days ago answers too.
    let week_ago = value_at(
        "127.0.0.1:10902",
        "count(up)",
        Some(unix_now() - 6 * 86_400),
    );
    assert_eq!(week_ago, Some(HOSTS), "six days ago:\n{}", node.log());

    // `generate --compact` left compacted blocks and 5m-downsampled ones, which the blocks
    // page's API lists.
    let body = get("127.0.0.1:10902", "/api/v1/blocks").expect("/api/v1/blocks");
    let v: serde_json::Value = serde_json::from_str(&body).expect("blocks JSON");
    let metas = v["data"]["blocks"].as_array().cloned().unwrap_or_default();
    let level = |b: &serde_json::Value| b["compaction"]["level"].as_u64().unwrap_or(0);
    let resolution = |b: &serde_json::Value| {
        b["thanos"]["downsample"]["resolution"]
            .as_i64()
            .unwrap_or(0)
    };
    let span_h = |b: &serde_json::Value| {
        (b["maxTime"].as_i64().unwrap_or(0) - b["minTime"].as_i64().unwrap_or(0)) / 3_600_000
    };
    assert!(
        metas
            .iter()
            .any(|b| resolution(b) == 0 && level(b) >= 3 && span_h(b) >= 40),
        "a raw block compacted to the 2d level among {body}"
    );
    assert!(
        metas.iter().any(|b| resolution(b) == 300_000),
        "a 5m-downsampled block among {body}"
    );
    assert!(
        !metas.iter().any(|b| resolution(b) == 3_600_000),
        "no 1h block from one week: {body}"
    );

    // "Then, from another terminal": every command succeeds, the queries answer with data.
    let out = clone.run(&blocks[1]);
    assert!(out.contains("\"resultType\":\"vector\""), "{out}");
    assert!(out.contains("\"resultType\":\"matrix\""), "{out}");
    assert!(out.contains("\"mode\":\"idle\""), "{out}");
}

#[test]
fn readme_three_node_cluster_forms_and_answers_on_every_node() {
    let clone = Clone::new();
    let blocks = sh_blocks(&clone.readme(), "A three-node cluster on one machine");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    // README builds first ("After cargo build ..."), then runs the blocks.
    clone.run(&format!("cargo {BUILD}"));
    // The block starts the nodes in the background and returns; the group keeps them.
    let nodes = clone.spawn(&blocks[0], "cluster-start.log");
    let https = ["127.0.0.1:10942", "127.0.0.1:10952", "127.0.0.1:10962"];
    let status = wait_for(
        Duration::from_secs(90),
        "three voters under one leader",
        || {
            let body = get(https[0], "/api/v1/status/cluster").ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let v = v.get("data").cloned().unwrap_or(v);
            let voters = v["members"]
                .as_array()?
                .iter()
                .filter(|m| m["raft_role"] == "voter")
                .count();
            (voters == 3 && v["leader_id"].is_u64()).then_some(v)
        },
    );
    let logs = || {
        ["node1", "node2", "node3"]
            .iter()
            .map(|n| {
                std::fs::read_to_string(clone.dir.join(format!("cluster/{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    for http in https {
        let up = wait_for(
            Duration::from_secs(60),
            &format!("count(up) on {http}"),
            || value_at(http, "count(up)", None),
        );
        assert_eq!(
            up,
            HOSTS,
            "{http} (status {status}):\n{}\n{}",
            nodes.log(),
            logs()
        );
    }
    let out = clone.run(&blocks[1]);
    assert!(
        out.contains("\"value\":[") && out.contains(&format!("\"{HOSTS}\"")),
        "{out}"
    );
}

/// Live blocks (meta.json, no deletion mark) per `cluster` label in a FILESYSTEM bucket, as
/// (level, min time, max time).
fn live_blocks(bucket: &Path) -> std::collections::BTreeMap<String, Vec<(u64, i64, i64)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(u64, i64, i64)>> = Default::default();
    for e in std::fs::read_dir(bucket).into_iter().flatten().flatten() {
        let p = e.path();
        if p.join("deletion-mark.json").exists() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(p.join("meta.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let group = m["thanos"]["labels"]["cluster"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let level = m["compaction"]["level"].as_u64().unwrap_or(0);
        let (min, max) = (
            m["minTime"].as_i64().unwrap_or(0),
            m["maxTime"].as_i64().unwrap_or(0),
        );
        out.entry(group).or_default().push((level, min, max));
    }
    for v in out.values_mut() {
        v.sort_by_key(|b| b.1);
    }
    out
}

#[test]
fn readme_compacting_cluster_settles_both_groups() {
    let clone = Clone::new();
    let blocks = sh_blocks(&clone.readme(), "A compacting cluster");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    clone.run(&format!("cargo {BUILD}"));
    let nodes = clone.spawn(&blocks[0], "compacting-start.log");
    let bucket = clone.dir.join("compacting/bucket");
    // Settled: both groups hold compacted blocks and no two live blocks of a group overlap.
    let groups = wait_for(
        Duration::from_secs(240),
        "both groups compacted without overlap",
        || {
            let g = live_blocks(&bucket);
            let ok = g.len() == 2
                && g.values()
                    .all(|v| v.iter().any(|b| b.0 > 1) && v.windows(2).all(|w| w[0].2 <= w[1].1));
            ok.then_some(g)
        },
    );
    assert_eq!(
        groups.keys().collect::<Vec<_>>(),
        ["eu", "us"],
        "{}",
        nodes.log()
    );
    // The sources' deletion waits for the sweep job: verify is clean once it ran.
    let out = wait_for(Duration::from_secs(120), "verify to pass", || {
        let out = Command::new("bash")
            .args(["-e", "-c", &blocks[1]])
            .current_dir(&clone.dir)
            .env("PATH", &clone.path_env)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    });
    assert!(out.contains("no issues found"), "{out}");
    assert!(out.contains("compact:"), "the job table lists jobs: {out}");
    assert!(out.contains("strata_compact_jobs"), "{out}");
}
