//! A test cluster: real RaftNodes served by real tonic servers on 127.0.0.1 ephemeral ports.

#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openraft::RaftMetrics;
use raft::{ClusterSecret, Member, NodeId, RaftNode, RaftNodeConfig, Timeouts};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SECRET: &str = "test cluster secret, long enough";

/// Timing for tests: faster than production, still tolerant of a busy 2-core machine.
pub fn timeouts() -> Timeouts {
    Timeouts {
        heartbeat: Duration::from_millis(100),
        election_min: Duration::from_millis(500),
        election_max: Duration::from_millis(1000),
        connect: Duration::from_millis(500),
        join: Duration::from_secs(10),
    }
}

pub fn secret() -> ClusterSecret {
    ClusterSecret::from_bytes(SECRET.as_bytes()).unwrap()
}

pub fn member(id: NodeId, addr: &str) -> Member {
    Member {
        node_id: id,
        grpc_address: addr.to_string(),
        http_address: format!("127.0.0.1:{}", 20000 + id),
        roles: [raft::Role::Store].into(),
        software_version: "test".to_string(),
        protocol_version: raft::PROTOCOL_VERSION,
        joined_at_ms: 0,
    }
}

/// A node and the gRPC server in front of it.
pub struct TestNode {
    pub node: RaftNode,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

fn listener(addr: SocketAddr) -> tokio::net::TcpListener {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_reuseaddr(true).unwrap();
    sock.bind(addr).unwrap();
    sock.listen(128).unwrap()
}

impl TestNode {
    /// Starts node `id` on `addr` (port 0: a new ephemeral port) over `dir`.
    pub async fn start(id: NodeId, dir: &Path, addr: SocketAddr) -> TestNode {
        Self::start_with(id, dir, addr, RaftNode::grpc_routes).await
    }

    /// [`TestNode::start`] serving the routes `routes` makes (a test's own services).
    pub async fn start_with(
        id: NodeId,
        dir: &Path,
        addr: SocketAddr,
        routes: impl FnOnce(&RaftNode) -> tonic::service::Routes,
    ) -> TestNode {
        let l = listener(addr);
        let addr = l.local_addr().unwrap();
        let mut cfg = RaftNodeConfig::new(id, dir.to_path_buf(), addr.to_string(), secret());
        cfg.timeouts = timeouts();
        cfg.snapshot_every = 20;
        let node = RaftNode::open(cfg).await.unwrap();
        let (stop, rx) = oneshot::channel::<()>();
        let routes = routes(&node);
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
            let _ = tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
        });
        TestNode {
            node,
            addr,
            dir: dir.to_path_buf(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server and Raft; the sled directory stays for a restart.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.node.shutdown().await.unwrap();
        if let Some(h) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }

    /// Waits for a condition on this node's metrics, failing with what was seen.
    pub async fn wait(
        &self,
        what: &str,
        f: impl Fn(&RaftMetrics<NodeId, openraft::BasicNode>) -> bool + Send,
    ) -> RaftMetrics<NodeId, openraft::BasicNode> {
        match self
            .node
            .raft()
            .wait(Some(Duration::from_secs(15)))
            .metrics(f, what)
            .await
        {
            Ok(m) => m,
            Err(e) => panic!("node {}: timed out waiting for {what}: {e}", self.node.id()),
        }
    }
}
