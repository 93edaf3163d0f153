//! `strata rule`: Prometheus-exact recording and alerting rules, alerts to Alertmanager.
//!
//! - `yaml`: YAML with node positions (promtool's messages name line:column)
//! - `file`: rule files (Prometheus' format, Thanos' `partial_response_strategy`), validation
//! - `check`: `strata tools rules check`, promtool's `check rules`
//! - `template`, `funcs`: Go text/template subset and Prometheus' template functions
//! - `alert`, `recording`: the two kinds of rules' evaluation; `group`: one group's iteration
//! - `backend`: where queries go (`--query` over HTTP, or the embedded engine)
//! - `for_state`: alert `for` state saved per iteration and restored on start (or takeover)
//! - `manager`: group scheduling and reload; `glob`: `--rule-file` patterns
//! - `notify`: Alertmanager v2 client; `alertmanagers`: where they are (URLs, DNS, config file); `results`: the ruler's own series; `metrics`
//! - `tsdb`: the results as blocks in `--data-dir` (a node's `<data-dir>/rule`), uploaded to
//!   the bucket, deleted after `--tsdb.retention`; `wal`: the results not yet in a block,
//!   replayed after a crash
//! - `labelled`, `grpc`: StoreAPI over the results, Thanos' Rules API (`--grpc-address`);
//!   `with_results`: a node's store role's StoreAPI answering with the rule role's results
//! - `cluster`, `assign`, `lease`: the rule role of `strata node`: groups as Raft jobs, the
//!   leader's assignment, the owner's leases and `for` state hand-over
//! - `api`: `/api/v1/rules`, `/api/v1/alerts`, `/-/reload`; `cli`: `strata rule`

pub mod alert;
pub mod alertmanagers;
pub mod api;
pub mod assign;
pub mod backend;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod file;
pub mod for_state;
pub mod funcs;
pub mod glob;
pub mod group;
pub mod grpc;
pub mod labelled;
pub mod lease;
pub mod manager;
pub mod metrics;
pub mod notify;
pub mod recording;
pub mod results;
pub mod template;
pub mod tsdb;
pub mod wal;
pub mod with_results;
pub mod yaml;

/// `strata tools rules ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Check rule files as `promtool check rules` does (same messages and exit codes).
    Check(check::CheckArgs),
}

impl RulesCommand {
    /// Runs the subcommand.
    pub fn run(self) -> std::process::ExitCode {
        match self {
            RulesCommand::Check(args) => check::run_cli(&args),
        }
    }
}
