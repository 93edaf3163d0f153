//! Leadership handover when the leader leaves (Raft's TimeoutNow over openraft 0.9), and the
//! fallback when no voter takes it: three nodes in one process over real tonic on loopback.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{member, secret, TestNode};
use proto::raft_v1 as pb;
use raft::network::auth::{ClientAuth, ClusterSecret, ServerAuth};
use raft::network::server::TransportService;
use raft::{AdminClient, Command, NodeId, RaftNode, StoreInfo, WriteError};
use tonic::{Request, Response, Status};

const T: Duration = Duration::from_secs(10);

fn any_addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())
}

/// Node 1 bootstraps, 2 and 3 join; returns once all three are voters.
async fn form(nodes: &[TestNode]) {
    let n1 = &nodes[0];
    n1.node
        .initialize(member(1, &n1.addr.to_string()))
        .await
        .expect("bootstrap");
    for n in &nodes[1..] {
        let id = n.node.id();
        AdminClient::join(
            &n1.addr.to_string(),
            &secret(),
            T,
            &member(id, &n.addr.to_string()),
        )
        .await
        .unwrap_or_else(|e| panic!("join {id}: {e}"));
    }
    n1.wait("three voters", |m| {
        m.membership_config.membership().voter_ids().count() == 3
    })
    .await;
}

fn store(i: usize) -> StoreInfo {
    StoreInfo {
        address: format!("s{i}:10901"),
        node_id: Some(2),
        label_sets: vec![[("replica".to_string(), format!("r{i}"))].into()],
        min_time_ms: 0,
        max_time_ms: 1000,
    }
}

/// Writes registry entries through `node` until `stop`, recording the acknowledged ones. A
/// write without an answer in time counts as not acknowledged: openraft 0.9 answers a write that
/// a deposed leader had appended only once that leader applies it, which a removed node may
/// never do.
fn writer(
    node: RaftNode,
    acked: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut attempts = 0;
        while !*stop.borrow() {
            attempts += 1;
            let s = store(attempts);
            let address = s.address.clone();
            let cmd = Command::RegisterStore {
                store: s,
                now_ms: 100,
            };
            match tokio::time::timeout(Duration::from_secs(2), node.client_write(cmd)).await {
                Ok(Ok(_)) => acked.lock().expect("lock").push(address),
                Ok(Err(WriteError::ForwardToLeader { .. } | WriteError::NotCommitted(_)))
                | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(Err(e)) => panic!("unexpected write error: {e}"),
            }
        }
        attempts
    })
}

fn voters(n: &TestNode) -> BTreeSet<NodeId> {
    n.node
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_leader_hands_over_to_a_caught_up_voter_in_the_next_term() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(TestNode::start(id, &root.path().join(format!("n{id}")), any_addr()).await);
    }
    form(&nodes).await;
    let term = nodes[0].node.raft().metrics().borrow().current_term;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let w = writer(nodes[0].node.clone(), acked.clone(), stop_rx);
    nodes[0]
        .wait("some writes applied", |m| {
            m.last_applied.map(|l| l.index) >= Some(12)
        })
        .await;
    let out = tokio::time::timeout(T * 3, nodes[0].node.leave())
        .await
        .expect("leave finishes")
        .expect("graceful leave");
    stop.send(true).expect("stop writer");
    tokio::time::timeout(T, w)
        .await
        .expect("writer stops")
        .expect("writer");

    let successor = out
        .handed_over_to
        .unwrap_or_else(|| panic!("the leader removed itself instead of handing over: {out:?}"));
    assert_ne!(successor, 1);
    assert_eq!(
        out.removed_by, successor,
        "the new leader commits the removal"
    );
    let sn = nodes
        .iter()
        .find(|n| n.node.id() == successor)
        .expect("successor node");
    let m = sn
        .wait("membership without node 1", |m| {
            !m.membership_config.membership().voter_ids().any(|v| v == 1)
        })
        .await;
    assert_eq!(
        (m.current_leader, m.current_term),
        (Some(successor), term + 1),
        "the successor won the very next term (one election, no timeout in between)"
    );
    assert_eq!(voters(sn), BTreeSet::from([2, 3]));
    assert!(!nodes[0].node.is_leader());

    let state = sn.node.read_state().await.expect("read on the new leader");
    assert_eq!(
        state.members.keys().copied().collect::<Vec<_>>(),
        vec![2, 3]
    );
    let acked = acked.lock().expect("lock").clone();
    assert!(!acked.is_empty(), "the writer got nothing acknowledged");
    for a in &acked {
        assert!(
            state.stores.contains_key(a),
            "acknowledged write {a} lost after the handover"
        );
    }
    // The new leader takes writes, and the other survivor applies them.
    let (log_id, _) = sn
        .node
        .client_write_logged(Command::RegisterStore {
            store: store(10_000),
            now_ms: 200,
        })
        .await
        .expect("write through the new leader");
    let other = nodes
        .iter()
        .find(|n| n.node.id() != 1 && n.node.id() != successor)
        .expect("other survivor");
    other
        .wait("the new leader's write applied", |m| {
            m.last_applied >= Some(log_id)
        })
        .await;
    assert!(other.node.local_state().stores.contains_key("s10000:10901"));
    for n in nodes {
        n.stop().await;
    }
}

/// A Raft transport that serves everything but refuses every handover.
struct RefusesHandover(TransportService);

#[tonic::async_trait]
impl pb::raft_transport_server::RaftTransport for RefusesHandover {
    async fn append_entries(
        &self,
        r: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        pb::raft_transport_server::RaftTransport::append_entries(&self.0, r).await
    }

    async fn vote(&self, r: Request<pb::RaftRequest>) -> Result<Response<pb::RaftReply>, Status> {
        pb::raft_transport_server::RaftTransport::vote(&self.0, r).await
    }

    async fn install_snapshot(
        &self,
        r: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        pb::raft_transport_server::RaftTransport::install_snapshot(&self.0, r).await
    }

    async fn timeout_now(
        &self,
        _: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowReply>, Status> {
        Err(Status::unavailable("test: handover refused"))
    }
}

fn refusing_routes(node: &RaftNode) -> tonic::service::Routes {
    let transport = tonic::service::interceptor::InterceptedService::new(
        pb::raft_transport_server::RaftTransportServer::new(RefusesHandover(
            TransportService::new(node.clone()),
        )),
        ServerAuth::new(secret(), "raft-transport"),
    );
    tonic::service::Routes::new(transport).add_service(node.admin_server())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handover_falls_back_and_the_leave_still_completes() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = vec![TestNode::start(1, &root.path().join("n1"), any_addr()).await];
    for id in 2..=3 {
        let dir = root.path().join(format!("n{id}"));
        nodes.push(TestNode::start_with(id, &dir, any_addr(), refusing_routes).await);
    }
    form(&nodes).await;
    let (log_id, _) = nodes[0]
        .node
        .client_write_logged(Command::RegisterStore {
            store: store(1),
            now_ms: 100,
        })
        .await
        .expect("acknowledged write");

    let out = nodes[0].node.leave().await.expect("leave by the fallback");
    assert_eq!(out.handed_over_to, None, "{out:?}");
    assert_eq!(out.removed_by, 1, "the old leader removed itself");

    let m = nodes[1]
        .wait("a new leader of voters 2 and 3", |m| {
            m.current_leader.is_some_and(|l| l != 1)
                && m.membership_config
                    .membership()
                    .voter_ids()
                    .collect::<BTreeSet<_>>()
                    == BTreeSet::from([2, 3])
        })
        .await;
    let leader = m.current_leader.unwrap_or_else(|| unreachable!());
    let ln = nodes
        .iter()
        .find(|n| n.node.id() == leader)
        .expect("leader node");
    let state = ln.node.read_state().await.expect("read on the new leader");
    assert!(ln.node.raft().metrics().borrow().last_applied >= Some(log_id));
    assert!(
        state.stores.contains_key("s1:10901"),
        "acknowledged write lost"
    );
    assert_eq!(
        state.members.keys().copied().collect::<Vec<_>>(),
        vec![2, 3]
    );
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_now_is_refused_unless_from_the_current_leader_and_authenticated() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(TestNode::start(id, &root.path().join(format!("n{id}")), any_addr()).await);
    }
    form(&nodes).await;
    let m = nodes[1].node.raft().metrics().borrow().clone();
    let (term, last) = (m.current_term, m.last_log_index);
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", nodes[1].addr))
        .expect("url")
        .connect_lazy();
    let ask = |secret: ClusterSecret, from: NodeId, term: u64, last: Option<u64>| {
        let ch = ch.clone();
        async move {
            let mut c = pb::raft_transport_client::RaftTransportClient::with_interceptor(
                ch,
                ClientAuth::new(&secret),
            );
            c.timeout_now(pb::TimeoutNowRequest {
                protocol_version: raft::PROTOCOL_VERSION,
                from_node: from,
                term,
                last_log_index: last,
            })
            .await
        }
    };
    let cases = [
        ("not the leader", 3, term, last),
        ("an older term", 1, term.saturating_sub(1), last),
        ("a longer log", 1, term, last.map(|l| l + 100)),
    ];
    for (what, from, t, l) in cases {
        let s = ask(secret(), from, t, l).await.expect_err(what);
        assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{what}: {s:?}");
        assert!(s.message().contains("handover refused"), "{what}: {s:?}");
    }
    let wrong = ClusterSecret::from_bytes(b"not the cluster secret at all").expect("secret");
    let s = ask(wrong, 1, term, last).await.expect_err("wrong secret");
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
    // Nothing moved: node 1 still leads the same term.
    let m = nodes[1].node.raft().metrics().borrow().clone();
    assert_eq!((m.current_leader, m.current_term), (Some(1), term));
    assert!(nodes[0].node.is_leader());
    for n in nodes {
        n.stop().await;
    }
}
