//! `RaftNode::linearizable_read`: the leader answers with every acknowledged write, a follower
//! refuses naming the leader, and a leader that lost its majority answers nothing.

mod common;

use std::time::Duration;

use common::{member, secret, TestNode};
use raft::node::read::ReadError;
use raft::{AdminClient, Command, StoreInfo};

const T: Duration = Duration::from_secs(10);

fn any_addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())
}

async fn start_three(root: &std::path::Path) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(TestNode::start(id, &root.join(format!("n{id}")), any_addr()).await);
    }
    let n1 = nodes[0].addr.to_string();
    nodes[0]
        .node
        .initialize(member(1, &n1))
        .await
        .expect("bootstrap");
    for n in &nodes[1..] {
        let me = member(n.node.id(), &n.addr.to_string());
        AdminClient::join(&n1, &secret(), T, &me)
            .await
            .expect("join");
    }
    nodes[0]
        .wait("three voters", |m| {
            m.membership_config.membership().voter_ids().count() == 3
        })
        .await;
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_reads_acknowledged_writes_followers_name_the_leader_minority_leader_times_out() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut nodes = start_three(root.path()).await;
    let leader = nodes[0].node.clone();
    leader
        .client_write(Command::RegisterStore {
            store: StoreInfo {
                address: "wl-1:1".into(),
                node_id: None,
                label_sets: Vec::new(),
                min_time_ms: 0,
                max_time_ms: 1,
            },
            now_ms: 100,
        })
        .await
        .expect("register");

    let read = leader
        .linearizable_read(T, |s| s.stores.keys().cloned().collect::<Vec<_>>())
        .await
        .expect("leader read");
    assert_eq!(read.value, vec!["wl-1:1".to_string()]);
    assert_eq!(read.leader_id, 1);
    assert!(read.read_index.is_some_and(|i| i > 0), "{read:?}");

    let e = nodes[1]
        .node
        .linearizable_read(T, |_| ())
        .await
        .expect_err("a follower does not read");
    match &e {
        ReadError::NotLeader {
            leader_id,
            leader_address,
        } => {
            assert_eq!(*leader_id, Some(1));
            assert_eq!(leader_address.as_deref(), Some(n1_addr(&nodes).as_str()));
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert!(
        e.is_not_leader()
            && e.to_string()
                .starts_with("not the leader; leader is node 1")
    );

    // Both followers gone: the leader cannot confirm it still leads, so it returns no data.
    for n in nodes.drain(1..) {
        n.stop().await;
    }
    let started = std::time::Instant::now();
    let e = leader
        .linearizable_read(Duration::from_secs(3), |_| ())
        .await
        .expect_err("a leader without a majority must not answer");
    assert!(
        matches!(e, ReadError::Timeout { .. } | ReadError::NoQuorum(_)),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    nodes.remove(0).stop().await;
}

fn n1_addr(nodes: &[TestNode]) -> String {
    nodes[0].addr.to_string()
}
