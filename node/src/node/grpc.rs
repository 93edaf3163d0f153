//! The node's gRPC listener as tonic serves it: every accepted connection gets TCP_NODELAY.
//!
//! tonic's `Server::builder().tcp_nodelay(true)` only applies to `serve(addr)`; a listener
//! handed to `serve_with_incoming` keeps the kernel's default, Nagle on. A unary answer or the
//! last frame of a Series stream is then a small write held back until the client's delayed
//! ACK (about 40 ms on Linux), a fixed stall on every StoreAPI call. The listener is bound by
//! the caller (to report a bad `--grpc-address` before anything starts), so the option is set
//! here on each accepted socket.

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// `listener`'s connections with TCP_NODELAY on, for `serve_with_incoming*`.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn accepted_connections_have_nodelay_on() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = incoming(listener);
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let server_side = tokio::time::timeout(std::time::Duration::from_secs(10), accepted.next())
            .await
            .expect("accepted within the deadline")
            .expect("stream open")
            .expect("accept");
        assert!(server_side.nodelay().expect("read TCP_NODELAY"));
        // The kernel's default, which a plain TcpListenerStream would have left in place.
        assert!(!client.nodelay().expect("read TCP_NODELAY"));
    }
}
