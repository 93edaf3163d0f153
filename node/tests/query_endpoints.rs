//! The querier's endpoint flags against real processes: `--store.sd-files` picked up while
//! running, and `/api/v1/stores` in Thanos' shape with each endpoint's health.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;
mod storeapi_common;

use query_common::{enc, StrataQuery, START};
use std::time::Duration;
use storage::testing::prometheus::free_port;
use storage::testing::promtool_available;
use storeapi_common::*;

macro_rules! need_promtool {
    () => {
        if !promtool_available() {
            eprintln!("SKIPPED: promtool not on PATH");
            return;
        }
    };
}

fn ready(work: &std::path::Path, args: &[&str]) -> StrataQuery {
    let mut q = StrataQuery::spawn(work, args);
    q.wait_until("ready", Duration::from_secs(30), |q| {
        query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    q
}

fn count(port: u16) -> serde_json::Value {
    let (_, j) = ask(port, &instant("count(http_requests_total)", START + 3600));
    j["data"]["result"][0]["value"][1].clone()
}

#[test]
fn sd_file_targets_are_picked_up_while_running_and_stores_show_their_health() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, _) = bucket(tmp.path());
    let mut store = StoreNode::start(tmp.path(), "store", &bucket);
    store.wait_ready();
    let sd = tmp.path().join("stores.yml");
    std::fs::write(&sd, "[]\n").expect("write sd file");
    // Nothing listens on `dead`: it is an endpoint that never answers.
    let dead = format!("127.0.0.1:{}", free_port().expect("port"));
    let mut q = ready(
        tmp.path(),
        &[
            &format!("--store.sd-files={}", sd.display()),
            &format!("--endpoint={dead}"),
        ],
    );
    let (_, j) = ask(q.port, &instant("count(http_requests_total)", START + 3600));
    assert_eq!(j["data"]["result"], serde_json::json!([]), "{j}");

    std::fs::write(&sd, format!("- targets: ['{}']\n", store.grpc)).expect("rewrite sd file");
    q.wait_until(
        "the SD file's store answers",
        Duration::from_secs(30),
        |q| count(q.port) == "24",
    );

    let stores = query_common::get(q.port, "/api/v1/stores").json();
    assert_eq!(stores["status"], "success", "{stores}");
    let ok = &stores["data"]["store"][0];
    assert_eq!(ok["name"], store.grpc.as_str(), "{stores}");
    assert_eq!(ok["lastError"], serde_json::Value::Null, "{stores}");
    assert!(
        ok["lastCheck"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{stores}"
    );
    assert_eq!(ok["labelSets"], serde_json::json!([]), "{stores}");
    assert!(
        ok["minTime"].as_i64().unwrap() <= START * 1000
            && ok["maxTime"].as_i64().unwrap() > START * 1000,
        "{stores}"
    );
    let bad = &stores["data"]["unknown"][0];
    assert_eq!(bad["name"], dead.as_str(), "{stores}");
    assert!(
        bad["lastError"].as_str().is_some_and(|e| e.contains(&dead)),
        "{stores}"
    );

    // The dead endpoint is a warning naming it; `partial_response=false` makes it an error.
    let q_path = instant("count(http_requests_total)", START + 3600);
    let (_, j) = ask(q.port, &q_path);
    let warnings = j["warnings"].to_string();
    assert!(warnings.contains(&dead), "{j}");
    let (r, j) = ask(q.port, &format!("{q_path}&partial_response=false"));
    assert_eq!(j["status"], "error", "{j}");
    assert!(
        r.status >= 400 && j["error"].as_str().is_some_and(|e| e.contains(&dead)),
        "{j}"
    );
    let (r, j) = ask(q.port, &format!("{q_path}&partial_response=perhaps"));
    assert_eq!(
        (r.status, &j["errorType"]),
        (400, &serde_json::json!("bad_data")),
        "{j}"
    );

    // storeMatch[] asks only the endpoints whose address matches.
    let only = |addr: &str| {
        format!(
            "&storeMatch[]={}",
            enc(&format!("{{__address__=\"{addr}\"}}"))
        )
    };
    let (_, j) = ask(
        q.port,
        &format!("{q_path}&partial_response=false{}", only(&store.grpc)),
    );
    assert_eq!(j["data"]["result"][0]["value"][1], "24", "{j}");
    assert!(j.get("warnings").is_none(), "{j}");
    let (_, j) = ask(q.port, &format!("{q_path}{}", only("127.0.0.1:1")));
    assert_eq!(j["data"]["result"], serde_json::json!([]), "{j}");
    let (_, j) = ask(
        q.port,
        &format!(
            "/api/v1/series?match[]=up{}&partial_response=0",
            only(&store.grpc)
        ),
    );
    assert_eq!(j["status"], "success", "{j}");

    // Emptying the file drops the store again.
    std::fs::write(&sd, "[]\n").expect("empty sd file");
    q.wait_until("the store is dropped", Duration::from_secs(30), |q| {
        count(q.port).is_null()
    });
}

/// A TCP endpoint that accepts connections and then says nothing (`junk`: `None`) or writes
/// `junk` and nothing more, holding every connection open; lives as long as the test process.
fn lying_endpoint(junk: Option<&'static [u8]>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut conn in listener.incoming().flatten() {
            if let Some(j) = junk {
                let _ = std::io::Write::write_all(&mut conn, j);
            }
            held.push(conn);
        }
    });
    addr
}

#[test]
fn silent_and_garbage_endpoints_are_warnings_naming_them_within_the_response_timeout() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, _) = bucket(tmp.path());
    let mut store = StoreNode::start(tmp.path(), "store", &bucket);
    store.wait_ready();
    let silent = lying_endpoint(None);
    let garbage = lying_endpoint(Some(b"HTTP/1.1 200 OK\r\n\r\n\x00\xffnot grpc at all"));
    let q = ready(
        tmp.path(),
        &[
            &format!("--endpoint={}", store.grpc),
            &format!("--endpoint={silent}"),
            &format!("--endpoint={garbage}"),
            "--store.response-timeout=1s",
            "--query.timeout=2m",
        ],
    );
    let q_path = instant("count(http_requests_total)", START + 3600);
    let (_, j) = ask(q.port, &q_path);
    assert_eq!(j["data"]["result"][0]["value"][1], "24", "{j}");
    let warnings: Vec<String> = j["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&silent) && w.contains("--store.response-timeout 1s")),
        "{j}"
    );
    assert!(warnings.iter().any(|w| w.contains(&garbage)), "{j}");
    let (_, j) = ask(q.port, &format!("{q_path}&partial_response=false"));
    assert_eq!(j["status"], "error", "{j}");

    let stores = query_common::get(q.port, "/api/v1/stores").json();
    let unknown = stores["data"]["unknown"].to_string();
    assert!(
        unknown.contains(&silent) && unknown.contains(&garbage),
        "{stores}"
    );
}

#[test]
fn a_querier_stacked_over_another_querier_answers_the_same() {
    need_promtool!();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (bucket, _) = bucket(tmp.path());
    let mut store = StoreNode::start(tmp.path(), "store", &bucket);
    store.wait_ready();
    let lower_grpc = format!("127.0.0.1:{}", free_port().expect("port"));
    let lower = ready(
        tmp.path(),
        &[
            &format!("--endpoint={}", store.grpc),
            &format!("--grpc-address={lower_grpc}"),
        ],
    );
    let upper = ready(tmp.path(), &[&format!("--endpoint={lower_grpc}")]);
    assert_eq!(count(upper.port), "24", "upper log:\n{}", upper.log());
    wait_for_same_answers(&lower, upper.port, &queries());

    let stores = query_common::get(upper.port, "/api/v1/stores").json();
    let below = &stores["data"]["query"][0];
    assert_eq!(below["name"], lower_grpc.as_str(), "{stores}");
    assert_eq!(below["lastError"], serde_json::Value::Null, "{stores}");
    assert!(
        below["minTime"].as_i64().unwrap() <= START * 1000,
        "the lower querier advertises its stores' range: {stores}"
    );

    // A lower store that stops is passed up as a warning naming it.
    store.kill();
    let (_, j) = ask(
        upper.port,
        &instant("count(http_requests_total)", START + 3600),
    );
    assert!(j["warnings"].to_string().contains(&store.grpc), "{j}");
}

#[test]
fn bad_endpoint_flags_stop_the_querier_with_the_flag_named() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "query",
            "--http-address=127.0.0.1:0",
            "--grpc-address=127.0.0.1:0",
            "--endpoint=consul+stores:1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start strata query");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata query with a bad --endpoint still runs after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut log)
        .expect("read stderr");
    assert!(!status.success());
    assert!(
        log.contains("--endpoint") && log.contains("consul+stores:1"),
        "{log}"
    );
}
