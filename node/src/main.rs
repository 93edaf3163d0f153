//! The `strata` binary: every Strata role and tool behind one command line. It parses the
//! command line, starts logging and the runtime, and hands over to the `node` library.

use clap::{Parser, Subcommand};
use node::{cluster, compact, logging, node as member, query, rule, sidecar, store, tools};
use std::process::ExitCode;

/// jemalloc with background threads that purge freed pages after its decay time (10 s): a
/// heavy query's memory goes back to the OS when it ends, where glibc's per-thread arenas kept
/// it (figures in BENCHMARKS.md, "Memory after heavy queries").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Strata: Prometheus long-term storage and global query.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// Log filtering level: error, warn, info, debug.
    #[arg(long = "log.level", default_value = "info", global = true)]
    log_level: String,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", default_value = "logfmt", global = true)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// PromQL querier with Prometheus' HTTP API (embedded mode: the bucket's blocks).
    Query(Box<query::QueryArgs>),
    /// A symmetric cluster member (Raft group, store registry, and the roles in --role).
    Node(Box<member::NodeArgs>),
    /// Store gateway: serves the bucket's blocks over the StoreAPI (Thanos' `thanos store`).
    Store(Box<store::cli::StoreArgs>),
    /// Compactor: compaction, retention and cleanup of the bucket (Thanos' `thanos compact`).
    Compact(Box<compact::CompactArgs>),
    /// Next to one Prometheus: uploads its blocks, serves its recent data over the StoreAPI.
    Sidecar(Box<sidecar::SidecarArgs>),
    /// Recording and alerting rules, alerts to Alertmanager (Thanos' `thanos rule`).
    Rule(Box<rule::cli::RuleArgs>),
    /// Cluster inspection and administration.
    Cluster {
        #[command(subcommand)]
        command: cluster::cli::ClusterCommand,
    },
    /// Operator tools.
    Tools {
        #[command(subcommand)]
        tool: tools::Tool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log_level, cli.log_format) {
        eprintln!("strata: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Query(args) => query::run(*args).await,
            Command::Node(args) => member::run(*args).await,
            Command::Store(args) => store::cli::run(*args).await,
            Command::Compact(args) => compact::run(*args).await,
            Command::Sidecar(args) => sidecar::run_cli(*args).await,
            Command::Rule(args) => rule::cli::run(*args).await,
            Command::Cluster { command } => command.run().await,
            Command::Tools { tool } => tool.run().await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line for the operator (the log goes to stderr); the chain for debugging.
            tracing::debug!(error = ?e, "error chain");
            tracing::error!("{}", logging::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
