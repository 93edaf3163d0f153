//! The long tier-1 run, outside the test harness:
//!
//! `cargo run -p chaos-tests -- --time-limit 300 --nemesis all [--nodes 3] [--seed N]
//! [--history-out FILE]` starts `--nodes` `strata node` processes in network namespaces (root
//! and dnsmasq needed), runs the seeded nemesis for `--time-limit` seconds with the observer and
//! the registry workload, heals, judges the history, copies it to `--history-out` (default
//! `chaos-history.jsonl`) and ends with the `N passed, N failed` line; exit status 1 on any
//! violation.
//!
//! `cargo run -p chaos-tests -- --check-history FILE` judges a history written earlier.
//!
//! `--nemesis` is `all` (leader isolation, majority/minority split, kill, pause, bridge,
//! one-way partition, packet loss, clock bump, clock strobe), `core` (as in CI: all but bridge,
//! one-way and loss), `clock` (both clock kinds), or one of `isolate-leader`, `split`, `kill`,
//! `pause`, `bridge`, `one-way`, `loss`, `clock-bump`, `clock-strobe`. Clock kinds need
//! Debian's libfaketime. The `strata` binary is found as the tests find it (`STRATA_BIN`, or
//! the target directory: build it with `cargo build -p node`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos_tests::strata::binary::strata_binary;
use chaos_tests::strata::nemesis::StrataFault;
use chaos_tests::strata::node::NodeOptions;
use chaos_tests::strata::tier1::{first_voters, judge, run, Tier1Config};
use chaos_tests::{Cluster, History};

const USAGE: &str =
    "usage: chaos-tests [--time-limit SECS] [--nemesis all|core|clock|isolate-leader|split|kill|pause|bridge|one-way|loss|clock-bump|clock-strobe] \
[--nodes N] [--seed N] [--history-out FILE] | --check-history FILE";

struct Args {
    cfg: Tier1Config,
    nodes: u32,
    history_out: PathBuf,
    check: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cfg: Tier1Config {
            nemesis: StrataFault::ALL.to_vec(),
            ..Tier1Config::from_env(300)
        },
        nodes: 3,
        history_out: PathBuf::from("chaos-history.jsonl"),
        check: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--time-limit" => a.cfg.time_limit = Duration::from_secs(number(&value)?),
            "--seed" => a.cfg.seed = number(&value)?,
            "--nodes" => {
                a.nodes = u32::try_from(number(&value)?)
                    .ok()
                    .filter(|n| (1..=9).contains(n))
                    .ok_or("--nodes must be 1 to 9")?;
            }
            "--nemesis" => {
                a.cfg.nemesis = StrataFault::parse(&value)
                    .ok_or_else(|| format!("--nemesis {value:?}: unknown\n{USAGE}"))?;
            }
            "--history-out" => a.history_out = PathBuf::from(value),
            "--check-history" => a.check = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match &args.check {
        Some(file) => check(file, &args.cfg),
        None => run_schedule(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos-tests: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(file: &std::path::Path, cfg: &Tier1Config) -> Result<bool, String> {
    let ops = chaos_tests::history::read_jsonl(file).map_err(|e| e.to_string())?;
    let history = History::from_ops(ops);
    let report = judge(&history, &first_voters(&history), cfg.converge_within);
    println!("{report}");
    Ok(report.is_valid())
}

fn run_schedule(args: &Args) -> Result<bool, String> {
    if !chaos_tests::env::ready_or_skip("chaos-tests tier 1") {
        return Err("the harness cannot run here".into());
    }
    let cfg = &args.cfg;
    let bin = strata_binary()?;
    println!(
        "seed {} (replay with --seed {}), {} nodes, {:?} of faults, strata {}",
        cfg.seed,
        cfg.seed,
        args.nodes,
        cfg.time_limit,
        bin.display()
    );
    let mut cluster = Cluster::new("tier1-long", args.nodes).map_err(|e| e.to_string())?;
    let mut opts = NodeOptions::new(bin, cluster.dir()).map_err(|e| e.to_string())?;
    opts.extra = vec!["--cluster.store-expiry".into(), "24h".into()];
    let out = run(&mut cluster, &opts, cfg).map_err(|e| format!("seed {}: {e}", cfg.seed))?;
    println!("{}", out.summary());
    std::fs::copy(&out.history, &args.history_out)
        .map_err(|e| format!("copying the history to {}: {e}", args.history_out.display()))?;
    println!("history: {}", args.history_out.display());
    if !out.report.is_valid() {
        println!("{}", cluster.log_tails(40));
    }
    println!("seed {}\n{}", cfg.seed, out.report);
    Ok(out.report.is_valid())
}
