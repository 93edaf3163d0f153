//! The `strata node` command line of a node in a test [`Cluster`]: it binds its bridge address,
//! finds its peers only through `dns+peers:10901`, and shares the test's secret file.
//!
//! [`Cluster`]: crate::Cluster

use std::path::{Path, PathBuf};

use crate::cluster::NodeCtx;
use crate::error::{Error, Result};
use crate::nemesis::clock;
use crate::process::CommandSpec;

use super::{GRPC_PORT, HTTP_PORT};

/// How every node of a test is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The `strata` binary.
    pub binary: PathBuf,
    /// The shared `--cluster.secret-file`.
    pub secret_file: PathBuf,
    /// Flags added after the standard ones (e.g. `--raft.election-timeout-min`).
    pub extra: Vec<String>,
    /// libfaketime, when nodes run with a fakeable wall clock (clock nemeses need it).
    pub libfaketime: Option<PathBuf>,
}

impl NodeOptions {
    /// Options with a fresh secret file in `dir`.
    pub fn new(binary: PathBuf, dir: &Path) -> Result<NodeOptions> {
        let secret_file = dir.join("cluster-secret");
        std::fs::write(&secret_file, "tier1-chaos-shared-cluster-secret\n").map_err(|source| {
            Error::Io {
                what: "write",
                path: secret_file.clone(),
                source,
            }
        })?;
        Ok(NodeOptions {
            binary,
            secret_file,
            extra: Vec::new(),
            libfaketime: None,
        })
    }

    /// These options with every node's wall clock under its libfaketime control file (see
    /// [`crate::nemesis::clock`]); fails when libfaketime is not installed.
    pub fn with_fake_clock(mut self) -> Result<NodeOptions> {
        self.libfaketime = Some(clock::libfaketime()?);
        Ok(self)
    }

    /// The command for one node: only `dns+peers` as a peer, no static list, no bootstrap flag.
    pub fn command(&self, n: &NodeCtx) -> CommandSpec {
        let mut spec = CommandSpec::new(&self.binary)
            .arg("node")
            .arg("--data-dir")
            .arg(&n.data_dir)
            .args([
                "--grpc-address".to_string(),
                format!("{}:{GRPC_PORT}", n.addr),
                "--http-address".to_string(),
                format!("{}:{HTTP_PORT}", n.addr),
                "--cluster.peers".to_string(),
                format!("dns+peers:{GRPC_PORT}"),
            ])
            .arg("--cluster.secret-file")
            .arg(&self.secret_file)
            .args(self.extra.iter().cloned())
            .env("RUST_LOG", "info,openraft=warn");
        if let Some(lib) = &self.libfaketime {
            // The cluster directory holds each node's data directory and its control file.
            let cluster_dir = n.data_dir.parent().unwrap_or(&n.data_dir);
            spec.env.extend(clock::faked_env(
                lib,
                &clock::control_file(cluster_dir, n.id),
            ));
        }
        spec
    }
}
