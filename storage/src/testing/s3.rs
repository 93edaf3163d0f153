//! A real S3 server for tests: s3s-fs on loopback with SigV4 credentials enforced.

use tempfile::TempDir;

/// Access key id the server accepts.
pub const ACCESS_KEY: &str = "AKIASTRATATEST";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "strata-secret-123";
/// The one bucket the server holds.
pub const BUCKET: &str = "bkt";

/// An s3s-fs server on 127.0.0.1 with one bucket; stops when dropped.
#[derive(Debug)]
pub struct S3Server {
    root: TempDir,
    access_key: String,
    /// The address it listens on (127.0.0.1 unless started with [`S3Server::start_on`]).
    pub host: std::net::IpAddr,
    /// Port on `host`.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    /// Starts the server on an ephemeral port inside the current tokio runtime.
    pub async fn start() -> std::io::Result<S3Server> {
        Self::start_with_credentials(ACCESS_KEY, SECRET_KEY).await
    }

    /// Starts the server accepting only `access_key`/`secret_key` (e.g. the Thanos tutorial's).
    pub async fn start_with_credentials(
        access_key: &str,
        secret_key: &str,
    ) -> std::io::Result<S3Server> {
        Self::start_on([127, 0, 0, 1].into(), access_key, secret_key).await
    }

    /// Starts the server on an ephemeral port of `host` (e.g. an address that processes in
    /// other network namespaces reach).
    pub async fn start_on(
        host: std::net::IpAddr,
        access_key: &str,
        secret_key: &str,
    ) -> std::io::Result<S3Server> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join(BUCKET))?;
        let fs = s3s_fs::FileSystem::new(root.path())
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind((host, 0)).await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            while let Ok((sock, _)) = listener.accept().await {
                let conn = http
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(S3Server {
            root,
            access_key: access_key.to_string(),
            host,
            port,
            task,
        })
    }

    /// Thanos objstore YAML for this server with `secret` and extra `config:` lines.
    pub fn yaml(&self, secret: &str, extra: &str) -> String {
        format!(
            "type: S3\nconfig:\n  bucket: {BUCKET}\n  endpoint: {}:{}\n  \
             access_key: {}\n  secret_key: {secret}\n  insecure: true\n{extra}",
            self.host, self.port, self.access_key
        )
    }

    /// The directory holding the bucket's objects as files.
    pub fn bucket_dir(&self) -> std::path::PathBuf {
        self.root.path().join(BUCKET)
    }
}
