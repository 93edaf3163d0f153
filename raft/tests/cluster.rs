//! Three Raft nodes in one process over real tonic on loopback: election, replication of
//! member and registry commands, leader failure, restart from the same sled directories,
//! graceful leave, refused bootstrap, and refused credentials and versions.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{member, secret, TestNode};
use proto::raft_v1 as pb;
use raft::network::auth::{ClientAuth, ClusterSecret};
use raft::{AdminClient, AdminError, ClusterState, Command, NodeId, RaftNodeError, StoreInfo};

const T: Duration = Duration::from_secs(10);

fn any_addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())
}

async fn start_three(root: &std::path::Path) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(TestNode::start(id, &root.join(format!("n{id}")), any_addr()).await);
    }
    let n1 = &nodes[0];
    n1.node
        .initialize(member(1, &n1.addr.to_string()))
        .await
        .expect("bootstrap");
    // Node 2 joins through the leader, node 3 through a follower (which redirects).
    let j2 = AdminClient::join(
        &n1.addr.to_string(),
        &secret(),
        T,
        &member(2, &nodes[1].addr.to_string()),
    )
    .await;
    assert!(j2.expect("join 2").voter);
    let j3 = AdminClient::join(
        &nodes[1].addr.to_string(),
        &secret(),
        T,
        &member(3, &nodes[2].addr.to_string()),
    )
    .await;
    let j3 = j3.expect("join 3 via a follower");
    assert_eq!((j3.leader_id, j3.voter), (1, true));
    nodes[0]
        .wait("three voters", |m| {
            m.membership_config.membership().voter_ids().count() == 3
        })
        .await;
    nodes
}

fn store(addr: &str, node: NodeId) -> StoreInfo {
    StoreInfo {
        address: addr.to_string(),
        node_id: Some(node),
        label_sets: vec![[("replica".to_string(), "a".to_string())].into()],
        min_time_ms: 0,
        max_time_ms: 1000,
    }
}

async fn wait_applied(n: &TestNode, index: u64) {
    n.wait(&format!("applied index >= {index}"), move |m| {
        m.last_applied.map(|l| l.index) >= Some(index)
    })
    .await;
}

async fn leader_among(nodes: &[&TestNode], not: Option<NodeId>) -> NodeId {
    let m = nodes[0]
        .wait("a leader", move |m| {
            m.current_leader.is_some() && m.current_leader != not
        })
        .await;
    m.current_leader.unwrap_or_else(|| unreachable!())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_elects_replicates_survives_leader_loss_and_restarts() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = start_three(root.path()).await;

    let leader = &nodes[0].node;
    leader
        .client_write(Command::RegisterStore {
            store: store("s1:10901", 2),
            now_ms: 100,
        })
        .await
        .expect("register");
    let hb = Command::StoreHeartbeat {
        address: "s1:10901".into(),
        min_time_ms: 0,
        max_time_ms: 2000,
        now_ms: 200,
    };
    leader.client_write(hb).await.expect("heartbeat");
    let last = leader.raft().metrics().borrow().last_log_index.unwrap_or(0);
    for n in &nodes {
        wait_applied(n, last).await;
    }
    let expected = leader
        .read_state()
        .await
        .expect("linearizable read on the leader");
    assert_eq!(expected.members.len(), 3);
    assert_eq!(expected.stores["s1:10901"].last_heartbeat_ms, 200);
    for n in &nodes {
        assert_eq!(
            n.node.local_state(),
            expected,
            "node {} diverged",
            n.node.id()
        );
    }
    // A follower does not serve linearizable reads: it names the leader.
    let e = nodes[1].node.read_state().await.expect_err("follower read");
    assert!(e.to_string().contains("node 1"), "{e}");

    // Kill the leader: a new one is elected among the other two, with every entry intact.
    let old = nodes.remove(0);
    let old_addr = old.addr;
    old.stop().await;
    let new_leader = leader_among(&[&nodes[0], &nodes[1]], Some(1)).await;
    let nl = nodes
        .iter()
        .find(|n| n.node.id() == new_leader)
        .expect("leader is a live node");
    let state = nl.node.read_state().await.expect("read on new leader");
    assert_eq!(
        state, expected,
        "committed state lost or changed across fail-over"
    );
    nl.node
        .client_write(Command::DeregisterStore {
            address: "s1:10901".into(),
        })
        .await
        .expect("write on new leader");
    let last = nl
        .node
        .raft()
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);

    // The old leader restarts from its sled directory on its old address and catches up.
    let back = TestNode::start(1, &root.path().join("n1"), old_addr).await;
    wait_applied(&back, last).await;
    assert!(
        back.node.local_state().stores.is_empty(),
        "restarted node missed the deregistration"
    );
    assert_eq!(back.node.local_state().members.len(), 3);
    assert!(matches!(
        back.node.initialize(member(1, &old_addr.to_string())).await,
        Err(RaftNodeError::AlreadyInitialized { node_id: 1 })
    ));
    nodes.push(back);

    // Everything stops and restarts from disk: a leader is elected and the state is there.
    let addrs: Vec<_> = nodes.iter().map(|n| (n.node.id(), n.addr)).collect();
    for n in nodes {
        n.stop().await;
    }
    let mut again = Vec::new();
    for (id, addr) in addrs {
        again.push(TestNode::start(id, &root.path().join(format!("n{id}")), addr).await);
    }
    let l = leader_among(&[&again[0]], None).await;
    let ln = again
        .iter()
        .find(|n| n.node.id() == l)
        .expect("leader among restarted nodes");
    let s = ln.node.read_state().await.expect("read after full restart");
    assert_eq!(s.members.len(), 3);
    assert!(s.stores.is_empty());
    for n in again {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_leaves_gracefully_and_another_takes_over() {
    let root = tempfile::tempdir().expect("tempdir");
    let nodes = start_three(root.path()).await;
    nodes[0].node.leave().await.expect("graceful leave");
    let l = leader_among(&[&nodes[1]], Some(1)).await;
    let ln = nodes.iter().find(|n| n.node.id() == l).expect("leader");
    let m = ln
        .wait("membership without node 1", |m| {
            !m.membership_config.membership().voter_ids().any(|v| v == 1)
        })
        .await;
    let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
    assert_eq!(voters, BTreeSet::from([2, 3]));
    let s: ClusterState = ln.node.read_state().await.expect("read");
    assert_eq!(s.members.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_unknown_version_and_second_bootstrap_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let n1 = TestNode::start(1, &root.path().join("n1"), any_addr()).await;
    n1.node
        .initialize(member(1, &n1.addr.to_string()))
        .await
        .expect("bootstrap");
    let addr = n1.addr.to_string();

    let wrong = ClusterSecret::from_bytes(b"not the cluster secret at all").expect("secret");
    let e = AdminClient::join(&addr, &wrong, T, &member(9, "127.0.0.1:1"))
        .await
        .expect_err("wrong secret");
    assert!(matches!(e, AdminError::Unauthenticated { .. }), "{e}");
    assert!(e.to_string().contains("wrong cluster secret"), "{e}");
    assert!(!n1.node.local_state().members.contains_key(&9));

    // No credential at all, on the Raft transport itself.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect_lazy();
    let mut raw = pb::raft_transport_client::RaftTransportClient::new(ch.clone());
    let req = pb::RaftRequest {
        protocol_version: 1,
        from_node: 9,
        payload: b"{}".to_vec(),
    };
    let s = raw.vote(req).await.expect_err("unauthenticated vote");
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");

    // Authenticated but from a newer protocol: refused naming both versions.
    let mut admin = pb::cluster_admin_client::ClusterAdminClient::with_interceptor(
        ch.clone(),
        ClientAuth::new(&secret()),
    );
    let s = admin
        .status(pb::StatusRequest {
            protocol_version: 99,
        })
        .await
        .expect_err("newer version");
    assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    assert!(
        s.message().contains("v99") && s.message().contains("speaks v1"),
        "{}",
        s.message()
    );

    // Authenticated garbage payload: a clear InvalidArgument, and the node keeps running.
    let mut authed = pb::raft_transport_client::RaftTransportClient::with_interceptor(
        ch,
        ClientAuth::new(&secret()),
    );
    let req = pb::RaftRequest {
        protocol_version: 1,
        from_node: 9,
        payload: b"not json".to_vec(),
    };
    let s = authed.append_entries(req).await.expect_err("garbage");
    assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}");

    let status = AdminClient::new(&addr, &secret(), T)
        .expect("client")
        .status()
        .await
        .expect("status");
    assert_eq!((status.node_id, status.leader_id), (1, Some(1)));
    assert_eq!(status.members.len(), 1);

    let again = n1.node.initialize(member(1, &addr)).await;
    assert!(
        matches!(again, Err(RaftNodeError::AlreadyInitialized { node_id: 1 })),
        "{again:?}"
    );
    n1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_catches_up_from_a_snapshot_over_the_transport() {
    let root = tempfile::tempdir().expect("tempdir");
    let n1 = TestNode::start(1, &root.path().join("n1"), any_addr()).await;
    n1.node
        .initialize(member(1, &n1.addr.to_string()))
        .await
        .expect("bootstrap");
    n1.node
        .client_write(Command::RegisterStore {
            store: store("s:1", 1),
            now_ms: 1,
        })
        .await
        .expect("register");
    for t in 2..60 {
        let hb = Command::StoreHeartbeat {
            address: "s:1".into(),
            min_time_ms: 0,
            max_time_ms: t,
            now_ms: t,
        };
        n1.node.client_write(hb).await.expect("heartbeat");
    }
    // snapshot_every is 20 in tests: the log start has been purged, so a joiner needs a snapshot.
    let m = n1
        .wait("log purged after a snapshot", |m| {
            m.purged.is_some() && m.snapshot.is_some()
        })
        .await;
    let purged = m.purged.map(|l| l.index).unwrap_or(0);
    assert!(purged > 1, "purged up to {purged}");
    let n2 = TestNode::start(2, &root.path().join("n2"), any_addr()).await;
    AdminClient::join(
        &n1.addr.to_string(),
        &secret(),
        T,
        &member(2, &n2.addr.to_string()),
    )
    .await
    .expect("join");
    let last = n1
        .node
        .raft()
        .metrics()
        .borrow()
        .last_log_index
        .unwrap_or(0);
    wait_applied(&n2, last).await;
    let m2 = n2.node.raft().metrics().borrow().clone();
    assert!(
        m2.snapshot.is_some(),
        "node 2 caught up without installing a snapshot"
    );
    assert_eq!(n2.node.local_state(), n1.node.local_state());
    assert_eq!(n2.node.local_state().stores["s:1"].last_heartbeat_ms, 59);
    n2.stop().await;
    n1.stop().await;
}
