use super::*;
use std::process::{Child, Command, Stdio};

#[test]
fn endpoint_specs_parse_as_thanos_reads_them() {
    let ok = |s: &str| s.parse::<StoreSpec>().expect(s);
    assert_eq!(
        ok("10.0.0.1:10901"),
        StoreSpec::Static("10.0.0.1:10901".into())
    );
    assert_eq!(ok("[::1]:10901"), StoreSpec::Static("[::1]:10901".into()));
    assert_eq!(
        ok("dns+stores.example:10901"),
        StoreSpec::Dns {
            name: "stores.example".into(),
            port: 10901
        }
    );
    assert_eq!(
        ok("dnssrv+_grpc._tcp.stores.example"),
        StoreSpec::Srv {
            name: "_grpc._tcp.stores.example".into(),
            port: None,
            no_a: false
        }
    );
    assert_eq!(
        ok("dnssrvnoa+_grpc._tcp.stores.example:9000"),
        StoreSpec::Srv {
            name: "_grpc._tcp.stores.example".into(),
            port: Some(9000),
            no_a: true
        }
    );
}

#[test]
fn bad_endpoint_specs_are_refused_naming_what_is_wrong() {
    for (bad, why) in [
        ("dns+stores.example", "missing port"),
        ("dns+:10901", "empty host"),
        ("stores.example", "missing port"),
        ("h:notaport", "invalid port"),
        (":1", "empty host"),
        ("dnssrv+", "empty host"),
        ("consul+svc:1", "unknown discovery scheme"),
        ("dnssrv+_x._tcp.y:99999", "invalid port"),
    ] {
        let e = bad.parse::<StoreSpec>().expect_err(bad).to_string();
        assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn file_sd_reads_yaml_and_json_and_refuses_bad_targets() {
    let yaml = "- targets: ['a:1', 'b:2']\n  labels: {dc: x}\n- targets: ['c:3']\n";
    assert_eq!(
        parse_sd_file(Path::new("s.yaml"), yaml).expect("yaml"),
        vec!["a:1", "b:2", "c:3"]
    );
    let json = r#"[{"targets": ["a:1"]}, {"targets": [], "labels": {}}]"#;
    assert_eq!(
        parse_sd_file(Path::new("s.json"), json).expect("json"),
        vec!["a:1"]
    );
    assert_eq!(
        parse_sd_file(Path::new("s.yml"), "").expect("empty"),
        Vec::<String>::new()
    );
    let e = parse_sd_file(Path::new("s.yml"), "- targets: ['nohost']\n").expect_err("no port");
    assert!(e.to_string().contains("nohost"), "{e}");
    let e = parse_sd_file(Path::new("s.json"), "{").expect_err("bad json");
    assert!(e.to_string().contains("s.json"), "{e}");
    let e = parse_sd_file(Path::new("s.yml"), "- targets: ['dns+x:1']\n").expect_err("dns");
    assert!(e.to_string().contains("host:port"), "{e}");
}

fn discovery(specs: &[&str], files: Vec<PathBuf>, ns: Option<SocketAddr>) -> StoreDiscovery {
    StoreDiscovery::new(DiscoveryConfig {
        specs: specs.iter().map(|s| s.parse().expect("spec")).collect(),
        files,
        dns_interval: Duration::ZERO,
        nameserver: ns,
    })
    .expect("discovery")
}

#[tokio::test]
async fn sd_files_are_reloaded_when_they_change_and_keep_targets_when_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.yml");
    std::fs::write(&a, "- targets: ['127.0.0.1:1']\n").expect("write");
    let d = discovery(&["127.0.0.1:9"], vec![dir.path().join("*.yml")], None);
    assert_eq!(d.addresses().await, vec!["127.0.0.1:1", "127.0.0.1:9"]);

    std::fs::write(&a, "- targets: ['127.0.0.1:2', '127.0.0.1:3']\n").expect("rewrite");
    std::fs::write(dir.path().join("b.yml"), "- targets: ['127.0.0.1:4']\n").expect("write b");
    std::fs::write(
        dir.path().join("c.json"),
        r#"[{"targets":["127.0.0.1:5"]}]"#,
    )
    .expect("c");
    assert_eq!(
        d.addresses().await,
        vec!["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:9"]
    );

    // A broken edit keeps the last good targets; a removed file drops its own.
    std::fs::write(&a, "- targets: [unterminated\n").expect("break");
    std::fs::remove_file(dir.path().join("b.yml")).expect("rm");
    assert_eq!(
        d.addresses().await,
        vec!["127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:9"]
    );
}

/// A dnsmasq on loopback, killed when dropped.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq(records: &[String]) -> Dnsmasq {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    dnsmasq_on(port, records)
}

fn dnsmasq_on(port: u16, records: &[String]) -> Dnsmasq {
    let child = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=",
            &format!("--port={port}"),
        ])
        .args(records)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq is installed");
    Dnsmasq {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// Asks `d` until it answers `want` or 20 s pass (dnsmasq needs a moment to listen).
async fn wait_for(d: &StoreDiscovery, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = d.addresses().await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {want:?}, last saw {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn srv_and_a_names_resolve_against_a_real_dns_server() {
    let dns = dnsmasq(&[
        "--srv-host=_grpc._tcp.stores.test,store1.test,10901".into(),
        "--srv-host=_grpc._tcp.stores.test,store2.test,10902".into(),
        "--host-record=store1.test,127.0.0.2".into(),
        "--host-record=store2.test,127.0.0.3".into(),
        "--host-record=both.test,127.0.0.4".into(),
    ]);
    let ns = Some(dns.addr);
    let srv = discovery(&["dnssrv+_grpc._tcp.stores.test"], vec![], ns);
    wait_for(&srv, &["127.0.0.2:10901", "127.0.0.3:10902"]).await;
    let noa = discovery(&["dnssrvnoa+_grpc._tcp.stores.test"], vec![], ns);
    wait_for(&noa, &["store1.test:10901", "store2.test:10902"]).await;
    let port = discovery(&["dnssrv+_grpc._tcp.stores.test:7000"], vec![], ns);
    wait_for(&port, &["127.0.0.2:7000", "127.0.0.3:7000"]).await;
    let a = discovery(&["dns+both.test:10901", "127.0.0.1:1"], vec![], ns);
    wait_for(&a, &["127.0.0.1:1", "127.0.0.4:10901"]).await;

    // The server goes away: the names keep their last addresses instead of vanishing.
    drop(dns);
    assert_eq!(
        srv.addresses().await,
        vec!["127.0.0.2:10901", "127.0.0.3:10902"]
    );
}

#[tokio::test]
async fn names_are_re_resolved_after_the_interval() {
    // The record lives in a hosts file that dnsmasq re-reads on SIGHUP, so the answer changes
    // on the same server (restarting one on the same port could lose the port to another test).
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.5 moving.test\n").expect("hosts");
    let dns = dnsmasq(&[format!("--addn-hosts={}", hosts.display())]);
    let d = StoreDiscovery::new(DiscoveryConfig {
        specs: vec!["dns+moving.test:1".parse().expect("spec")],
        files: vec![],
        dns_interval: Duration::from_millis(200),
        nameserver: Some(dns.addr),
    })
    .expect("discovery");
    wait_for(&d, &["127.0.0.5:1"]).await;
    // The server now answers differently; the cached answer is replaced once the interval has
    // passed.
    std::fs::write(&hosts, "127.0.0.6 moving.test\n").expect("hosts");
    let hup = Command::new("kill")
        .args(["-HUP", &dns.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(hup.success(), "SIGHUP to dnsmasq");
    wait_for(&d, &["127.0.0.6:1"]).await;
}

#[test]
fn hosts_file_names_answer_alone_as_in_go() {
    let hosts = "# comment\n127.0.0.1 localhost vm\n::1 ip6-localhost # v6\n10.0.0.7 Store.Example\nbad line\n";
    let ips = |n: &str| -> Vec<String> {
        hosts_file_addrs(hosts, n)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(ips("localhost"), ["127.0.0.1"]);
    assert_eq!(ips("localhost."), ["127.0.0.1"]);
    assert_eq!(ips("store.example"), ["10.0.0.7"]);
    assert_eq!(ips("ip6-localhost"), ["::1"]);
    assert!(ips("comment").is_empty() && ips("v6").is_empty() && ips("line").is_empty());
    assert!(ips("elsewhere.example").is_empty());
}
