//! An S3 server for benchmarks: s3s-fs over an existing directory on a loopback port, with the
//! test credentials of `storage::testing::s3` (SigV4 enforced).
//!
//! ```sh
//! cargo run --release -p storage --features testing --example s3_server -- ROOT PORT
//! ```
//!
//! ROOT holds one directory per bucket (`ROOT/bkt/<ULID>/...`). Objects copied in by hand
//! rather than PUT have no stored ETag; s3s-fs then hashes the file on each GET, which is cheap
//! for the small blocks the start-up bench uses. Runs until killed.

use storage::testing::s3::{ACCESS_KEY, SECRET_KEY};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(root), Some(port)) = (args.next(), args.next()) else {
        return Err("usage: s3_server ROOT PORT".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port {port}: {e}"))?;
    let fs = s3s_fs::FileSystem::new(&root).map_err(|e| format!("root {root}: {e:?}"))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("s3_server: serving {root} on 127.0.0.1:{port}");
    let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    loop {
        let (sock, _) = listener.accept().await?;
        // As MinIO (Go's default) does: without it each response's body waits for the
        // client's delayed ACK of its headers, about 40 ms per request.
        sock.set_nodelay(true)?;
        let conn = http
            .serve_connection(hyper_util::rt::TokioIo::new(sock), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
