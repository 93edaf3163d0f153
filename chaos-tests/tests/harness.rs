//! Proves the harness with stand-in processes (`chaos-stand-in`): DNS, reachability,
//! partitions, loss, kill/pause/restart, the schedule, and cleanup. Needs root and Debian's
//! iproute2, iptables and dnsmasq-base; otherwise each test prints SKIPPED and returns.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use chaos_tests::env::ready_or_skip;
use chaos_tests::history::{Actor, OpKind};
use chaos_tests::nemesis::{self, FaultKind, Schedule};
use chaos_tests::process::State;
use chaos_tests::{Cluster, CommandSpec, Fault, Grudge, History, NodeId};

const STAND_IN: &str = env!("CARGO_BIN_EXE_chaos-stand-in");
const PORT: u16 = 7000;
const DEADLINE: Duration = Duration::from_secs(10);

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn addr(c: &Cluster, id: NodeId) -> Ipv4Addr {
    c.net()
        .host(id)
        .map(|h| h.addr)
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// Sends `ping` from the test process (root namespace) and returns the answer.
fn ping_from_root(to: Ipv4Addr) -> Option<String> {
    let timeout = Duration::from_millis(500);
    let stream = TcpStream::connect_timeout(&SocketAddr::from((to, PORT)), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    writeln!(&stream, "ping").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line.trim().to_owned()).filter(|l| !l.is_empty())
}

/// Runs `chaos-stand-in probe` inside `from`'s namespace against `to`; true on an answer.
fn reaches(c: &Cluster, from: NodeId, to: NodeId) -> bool {
    let target = format!("{}:{PORT}", addr(c, to));
    let out = c
        .net()
        .exec(from, STAND_IN.as_ref(), &["probe", &target, "1000"]);
    matches!(out, Ok(o) if o.status.success())
}

/// Waits until `from` reaches `to` (a busy 2-core machine may miss one 1 s probe).
fn eventually_reaches(c: &Cluster, from: NodeId, to: NodeId) {
    wait_for(&format!("{from} to reach {to}"), || reaches(c, from, to));
}

/// Waits until node `id` answers the test process with `<node> ping`.
fn eventually_answers(c: &Cluster, id: NodeId) {
    let (a, want) = (addr(c, id), Some(format!("{id} ping")));
    wait_for(&format!("{id} to answer"), || ping_from_root(a) == want);
}

/// A cluster of `n` stand-ins, each answering on `<addr>:7000` with its node name.
fn stand_ins(name: &str, n: u32) -> Cluster {
    let mut c = Cluster::new(name, n).unwrap_or_else(|e| panic!("cluster: {e}"));
    c.start_all(|ctx| {
        CommandSpec::new(STAND_IN).args([
            "serve".to_owned(),
            format!("{}:{PORT}", ctx.addr),
            ctx.id.to_string(),
        ])
    })
    .unwrap_or_else(|e| panic!("start: {e}"));
    for id in c.ids() {
        let a = addr(&c, id);
        wait_for(&format!("{id} to answer"), || ping_from_root(a).is_some());
    }
    c
}

/// `ip`, found even when PATH lacks /usr/sbin.
fn ip_cmd() -> Command {
    Command::new(chaos_tests::env::find_program("ip").unwrap_or_else(|| "ip".into()))
}

fn netns_list() -> String {
    let out = ip_cmd().args(["netns", "list"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn link_exists(name: &str) -> bool {
    ip_cmd()
        .args(["link", "show", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn peers_resolves_to_every_node_inside_each_namespace() {
    if !ready_or_skip("peers_resolves_to_every_node_inside_each_namespace") {
        return;
    }
    let c = Cluster::new("dns", 3).unwrap_or_else(|e| panic!("{e}"));
    let mut all: Vec<Ipv4Addr> = c.ids().iter().map(|id| addr(&c, *id)).collect();
    all.sort();
    assert_eq!(
        c.net().lookup("peers").ok(),
        Some(all.clone()),
        "dnsmasq asked from the root namespace"
    );
    for id in c.ids() {
        assert_eq!(
            c.net().resolve_in(id, "peers").ok(),
            Some(all.clone()),
            "getent ahosts peers in {id}"
        );
        let own = format!("node-{}.peers", id.0);
        assert_eq!(
            c.net().resolve_in(NodeId(1), &own).ok(),
            Some(vec![addr(&c, id)])
        );
    }
    assert_eq!(
        c.net().resolve_in(NodeId(1), "nothing.peers").ok(),
        Some(vec![])
    );
    // The host's /etc/hosts does not leak into a node's namespace.
    let hosts = c
        .net()
        .exec(NodeId(2), "cat".as_ref(), &["/etc/hosts"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    assert_eq!(
        hosts.ok().as_deref(),
        Some("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    );
}

#[test]
fn membership_changes_reach_dns_at_runtime() {
    if !ready_or_skip("membership_changes_reach_dns_at_runtime") {
        return;
    }
    let mut c = Cluster::new("membership", 3).unwrap_or_else(|e| panic!("{e}"));
    let new = c.add_node().unwrap_or_else(|e| panic!("add: {e}"));
    assert_eq!(new, NodeId(4));
    let peers = c.net().resolve_in(NodeId(1), "peers").unwrap_or_default();
    assert_eq!(peers.len(), 4, "{peers:?}");
    assert!(peers.contains(&addr(&c, new)));
    let removed = addr(&c, NodeId(2));
    let gone_ns = c
        .net()
        .host(NodeId(2))
        .map(|h| h.netns.clone())
        .unwrap_or_default();
    c.remove_node(NodeId(2))
        .unwrap_or_else(|e| panic!("remove: {e}"));
    let peers = c.net().resolve_in(NodeId(4), "peers").unwrap_or_default();
    assert_eq!(peers.len(), 3, "{peers:?}");
    assert!(!peers.contains(&removed));
    assert_eq!(
        c.net().resolve_in(NodeId(1), "node-2.peers").ok(),
        Some(vec![])
    );
    assert!(!netns_list().contains(&gone_ns), "{gone_ns} still listed");
}

#[test]
fn nodes_reach_each_other_and_the_test_process_reaches_all() {
    if !ready_or_skip("nodes_reach_each_other_and_the_test_process_reaches_all") {
        return;
    }
    let c = stand_ins("reach", 3);
    for id in c.ids() {
        eventually_answers(&c, id);
        for to in c.ids() {
            eventually_reaches(&c, id, to);
        }
    }
}

#[test]
fn partition_cuts_a_to_b_but_not_a_to_c_and_heal_restores_it() {
    if !ready_or_skip("partition_cuts_a_to_b_but_not_a_to_c_and_heal_restores_it") {
        return;
    }
    let mut c = stand_ins("partition", 3);
    let (a, b, x) = (NodeId(1), NodeId(2), NodeId(3));
    let fault = Fault::Partition {
        grudge: Grudge::split(&[a], &[b]),
    };
    nemesis::apply(&mut c, &fault).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    assert!(!reaches(&c, a, b), "a -> b must time out");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "a timeout, not a refusal"
    );
    assert!(!reaches(&c, b, a), "b -> a must time out");
    eventually_reaches(&c, a, x);
    eventually_reaches(&c, x, b);
    assert!(
        ping_from_root(addr(&c, b)).is_some(),
        "the test process still reaches b"
    );
    nemesis::heal_network(&c).unwrap_or_else(|e| panic!("{e}"));
    eventually_reaches(&c, a, b);
    eventually_reaches(&c, b, a);

    let isolate = Fault::Partition {
        grudge: Grudge::isolate(x, &c.ids()),
    };
    nemesis::apply(&mut c, &isolate).unwrap_or_else(|e| panic!("{e}"));
    assert!(!reaches(&c, a, x) && !reaches(&c, x, b));
    eventually_reaches(&c, a, b);
    nemesis::heal_network(&c).unwrap_or_else(|e| panic!("{e}"));
    eventually_reaches(&c, a, x);
}

#[test]
fn total_packet_loss_blocks_peers_until_healed() {
    if !ready_or_skip("total_packet_loss_blocks_peers_until_healed") {
        return;
    }
    let mut c = stand_ins("loss", 2);
    let fault = Fault::Loss {
        nodes: vec![NodeId(2)],
        probability: 1.0,
    };
    nemesis::apply(&mut c, &fault).unwrap_or_else(|e| panic!("{e}"));
    assert!(!reaches(&c, NodeId(1), NodeId(2)));
    // Loss applies to peers only: a node still reaches itself.
    eventually_reaches(&c, NodeId(2), NodeId(2));
    let bad = Fault::Loss {
        nodes: vec![NodeId(1)],
        probability: 1.5,
    };
    assert!(
        nemesis::apply(&mut c, &bad).is_err(),
        "probability above 1 is refused"
    );
    nemesis::heal_network(&c).unwrap_or_else(|e| panic!("{e}"));
    eventually_reaches(&c, NodeId(1), NodeId(2));
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn kill_pause_resume_restart_and_terminate_behave() {
    if !ready_or_skip("kill_pause_resume_restart_and_terminate_behave") {
        return;
    }
    let mut c = stand_ins("signals", 2);
    let n = NodeId(1);
    let target = addr(&c, n);
    let p = c.process(n).unwrap_or_else(|e| panic!("{e}"));
    let pid = p.pid().unwrap_or_default();
    assert!(
        p.log_tail(5).contains(&format!("pid={pid} listening")),
        "ip netns exec runs the program itself: {}",
        p.log_tail(5)
    );

    c.pause(n).unwrap_or_else(|e| panic!("{e}"));
    wait_for("SIGSTOP to take", || proc_state(pid) == Some('T'));
    assert_eq!(
        ping_from_root(target),
        None,
        "a paused node does not answer"
    );
    c.resume(n).unwrap_or_else(|e| panic!("{e}"));
    eventually_answers(&c, n);

    c.kill(n).unwrap_or_else(|e| panic!("{e}"));
    let p = c.process(n).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.state(), State::Exited);
    assert!(p.last_exit().is_some_and(|s| !s.success()));
    assert_eq!(proc_state(pid), None, "killed and reaped");
    assert_eq!(ping_from_root(target), None);

    c.restart(n).unwrap_or_else(|e| panic!("{e}"));
    wait_for("restarted node to answer", || {
        ping_from_root(target).is_some()
    });
    let p = c.process(n).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.starts(), 2);
    assert_ne!(p.pid(), Some(pid));
    assert!(
        p.log_tail(10).contains("=== start #2"),
        "restarts append to the same log"
    );

    p.terminate().unwrap_or_else(|e| panic!("{e}"));
    let status = p.wait_exit(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    assert!(!status.success(), "SIGTERM ends the stand-in");
    assert!(
        p.wait_exit(Duration::ZERO).is_ok(),
        "waiting again returns the same exit"
    );
}

#[test]
fn schedule_applies_seeded_faults_records_them_and_heals() {
    if !ready_or_skip("schedule_applies_seeded_faults_records_them_and_heals") {
        return;
    }
    let mut c = stand_ins("schedule", 3);
    let history =
        History::with_file(&c.dir().join("history.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let schedule = Schedule {
        interval: Duration::from_millis(300),
        kinds: vec![
            FaultKind::Partition,
            FaultKind::Kill,
            FaultKind::Pause,
            FaultKind::Loss,
        ],
        ..Schedule::new(17)
    };
    let stop = AtomicBool::new(false);
    let faults = schedule
        .run(&mut c, &history, Duration::from_secs(3), &stop)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(faults.len() >= 3, "{faults:?}");
    let nemesis: Vec<_> = history
        .ops()
        .into_iter()
        .filter(|o| o.actor == Actor::Nemesis)
        .collect();
    let infos: Vec<&str> = nemesis
        .iter()
        .filter(|o| o.kind == OpKind::Info)
        .map(|o| o.f.as_str())
        .collect();
    let applied: Vec<&str> = faults.iter().map(Fault::name).collect();
    let recorded: Vec<&str> = infos.iter().copied().filter(|f| *f != "heal").collect();
    assert_eq!(recorded, applied, "every fault is in the history");
    assert_eq!(infos.last(), Some(&"heal"), "the run ends healed");
    assert!(nemesis.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    let on_disk =
        chaos_tests::history::read_jsonl(&c.dir().join("history.jsonl")).unwrap_or_default();
    assert_eq!(on_disk, history.ops());
    for from in c.ids() {
        wait_for(&format!("{from} to answer after healing"), || {
            ping_from_root(addr(&c, from)).is_some()
        });
        for to in c.ids() {
            eventually_reaches(&c, from, to);
        }
    }
}

/// Builds a cluster in a thread that panics, and returns the names it used.
fn names_of_a_panicking_test() -> (Vec<String>, String, std::path::PathBuf) {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let c = stand_ins("panics", 2);
        let _ = tx.send((
            c.net().namespaces(),
            c.net().root_veth().to_owned(),
            c.dir().to_path_buf(),
        ));
        panic!("deliberate failure to prove cleanup");
    })
    .join();
    assert!(joined.is_err());
    rx.recv().unwrap_or_default()
}

#[test]
fn nothing_is_left_after_a_test_even_when_it_panics() {
    if !ready_or_skip("nothing_is_left_after_a_test_even_when_it_panics") {
        return;
    }
    let c = stand_ins("clean", 3);
    let (namespaces, veth, dir) = (
        c.net().namespaces(),
        c.net().root_veth().to_owned(),
        c.dir().to_path_buf(),
    );
    let pids: Vec<u32> = c
        .net()
        .dns_process()
        .and_then(|p| p.pid())
        .into_iter()
        .collect();
    assert!(netns_list().contains(&namespaces[0]) && link_exists(&veth));
    drop(c);
    let (panicked, panicked_veth, kept) = names_of_a_panicking_test();
    assert_eq!(panicked.len(), 3);
    assert!(
        kept.join("node-1.log").exists(),
        "a failing test keeps its logs"
    );
    let _ = std::fs::remove_dir_all(&kept);
    let listed = netns_list();
    for ns in namespaces.iter().chain(&panicked) {
        assert!(!listed.contains(ns.as_str()), "{ns} left behind");
        assert!(
            !chaos_tests::net::etc_dir(ns).exists(),
            "/etc/netns/{ns} left behind"
        );
    }
    assert!(!link_exists(&veth) && !link_exists(&panicked_veth));
    assert!(!dir.exists(), "test directory of a passing test is removed");
    assert!(
        pids.iter().all(|p| proc_state(*p).is_none()),
        "dnsmasq stopped"
    );
}

#[test]
fn leftovers_of_a_killed_run_are_removed() {
    if !ready_or_skip("leftovers_of_a_killed_run_are_removed") {
        return;
    }
    // A pid that certainly belonged to a process which has exited.
    let mut child = Command::new("true")
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let dead = child.id();
    let _ = child.wait();
    let (ns, veth, peer) = (
        format!("stc{dead}-0-br"),
        format!("stc{dead}-0"),
        format!("stc{dead}-9"),
    );
    let ip = |args: &[&str]| ip_cmd().args(args).status().is_ok_and(|s| s.success());
    assert!(ip(&["netns", "add", &ns]));
    assert!(ip(&[
        "link", "add", &veth, "type", "veth", "peer", "name", &peer
    ]));
    let etc = chaos_tests::net::etc_dir(&ns);
    let _ = std::fs::create_dir_all(&etc);
    let _ = std::fs::write(etc.join("resolv.conf"), "nameserver 10.0.0.1\n");

    chaos_tests::cleanup::remove_leftovers().unwrap_or_else(|e| panic!("{e}"));
    assert!(!netns_list().contains(&ns));
    assert!(!link_exists(&veth) && !link_exists(&peer));
    assert!(!etc.exists());
    let mine = format!("stc{}-", std::process::id());
    assert!(
        Cluster::new("after-cleanup", 1).is_ok(),
        "a live test's names ({mine}*) still work"
    );
}

#[test]
fn leftovers_of_a_dead_process_with_our_pid_are_replaced() {
    if !ready_or_skip("leftovers_of_a_dead_process_with_our_pid_are_replaced") {
        return;
    }
    // A dead run whose pid this process now has: liveness cannot tell, the name can.
    let base = format!("stc{}-9999", std::process::id());
    let ns = format!("{base}-br");
    let ok = |args: &[&str]| ip_cmd().args(args).status().is_ok_and(|s| s.success());
    assert!(ok(&["netns", "add", &ns]));
    assert!(ok(&[
        "link",
        "add",
        &base,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{base}-x")
    ]));
    let removed = chaos_tests::cleanup::remove_stale_names(&base).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(removed.namespaces, vec![ns.clone()]);
    assert!(!netns_list().contains(&ns) && !link_exists(&base));
}
