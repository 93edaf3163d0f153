//! `strata cluster status|leave`: inspect and administer a running cluster through one node.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use raft::AdminClient;

use super::status::ClusterStatus;

/// `strata cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Members, roles, leader, term, commit and applied index and lag, as one node sees them.
    Status(StatusArgs),
    /// Removes the node at --grpc-address from the cluster (a leader hands over leadership
    /// first). The node keeps running; SIGTERM to a node leaves and then stops it.
    Leave(LeaveArgs),
}

/// How to reach a node's admin service.
#[derive(Debug, clap::Args)]
pub struct AdminFlags {
    /// The node's gRPC host:port.
    #[arg(long = "grpc-address", value_name = "HOST:PORT")]
    pub grpc_address: Option<String>,
    /// The cluster's secret (needed for --grpc-address).
    #[arg(long = "cluster.secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Use the well-known secret of nodes started with --cluster.insecure.
    #[arg(long = "cluster.insecure", conflicts_with = "secret_file")]
    pub insecure: bool,
    /// Per-call timeout.
    #[arg(long = "timeout", default_value = "15s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Flags of `strata cluster status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The node's HTTP host:port (reads /api/v1/status/cluster; no secret needed).
    #[arg(
        long = "http-address",
        value_name = "HOST:PORT",
        conflicts_with = "grpc_address"
    )]
    pub http_address: Option<String>,
    /// The admin connection flags.
    #[command(flatten)]
    pub admin: AdminFlags,
    /// Output: table or json.
    #[arg(short = 'o', long = "output", default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
}

/// Flags of `strata cluster leave`.
#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    /// The admin connection flags.
    #[command(flatten)]
    pub admin: AdminFlags,
}

impl ClusterCommand {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ClusterCommand::Status(a) => status(a).await,
            ClusterCommand::Leave(a) => leave(a).await,
        }
    }
}

impl AdminFlags {
    fn client(&self) -> anyhow::Result<(String, raft::ClusterSecret, AdminClient)> {
        let Some(addr) = &self.grpc_address else {
            bail!("give --grpc-address HOST:PORT of a node");
        };
        let secret = super::load_secret(self.secret_file.as_deref(), self.insecure)?;
        let c = AdminClient::new(addr, &secret, self.timeout)?;
        Ok((addr.clone(), secret, c))
    }
}

async fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let s = if let Some(http) = &a.http_address {
        let body = http_get(http, "/api/v1/status/cluster", a.admin.timeout)
            .with_context(|| format!("reading the cluster status from {http}"))?;
        let v: serde_json::Value = serde_json::from_str(&body).with_context(|| {
            format!("{http} answered with something that is not JSON: {body:.200}")
        })?;
        serde_json::from_value::<ClusterStatus>(v["data"].clone())
            .with_context(|| format!("{http} answered with an unexpected shape"))?
    } else {
        let (_, _, mut c) = a.admin.client()?;
        ClusterStatus::from_reply(&c.status().await?)
    };
    if a.output == "json" {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.table());
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the node from the cluster. A leader hands leadership to a caught-up voter first
/// (the node does it while answering), so that the new leader commits the removal.
async fn leave(a: LeaveArgs) -> anyhow::Result<ExitCode> {
    let (addr, secret, mut c) = a.admin.client()?;
    let id = c.status().await?.node_id;
    let leader = AdminClient::leave(&addr, &secret, a.admin.timeout, id).await?;
    println!("node {id} left the cluster (removal committed by leader {leader})");
    Ok(ExitCode::SUCCESS)
}

/// A minimal HTTP/1.0 GET (the node answers with a length-delimited body and closes), enough
/// for one JSON document from a node without pulling an HTTP client into the binary.
pub fn http_get(address: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut last = None;
    let addrs = std::net::ToSocketAddrs::to_socket_addrs(address)
        .with_context(|| format!("resolving {address}"))?;
    let mut stream = None;
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut s) = stream else {
        return Err(last.map_or_else(
            || anyhow::anyhow!("{address} resolves to nothing"),
            anyhow::Error::from,
        ))
        .with_context(|| format!("connecting to {address}"));
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: application/json\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("HTTP {status}: {body:.200}");
    }
    Ok(body.to_string())
}
