//! One tier-1 run: start `strata node` on every node of a [`Cluster`], wait for one settled
//! cluster, then run the seeded nemesis while the observer watches every node, the workload
//! writes registry entries and a reader reads them linearizably; heal, wait for convergence,
//! read every node's registry, and judge
//! the history. The test that calls [`run`] keeps the cluster, so a failed assertion keeps the
//! test directory (history and logs) and prints the logs' tails.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::checkers::{CommitNeverRegresses, MembershipStable, Renamed};
use super::nemesis::{StrataFault, StrataSchedule};
use super::node::NodeOptions;
use super::observer::{record, snapshot, targets, LeaderHint, Observer};
use super::reads::{LinearReads, ReadStats};
use super::wait::{wait_settled, Settled};
use super::workload::{read_all, RegistryWorkload, WorkloadStats};
use crate::checker::converge::ConvergesAfterHeal;
use crate::checker::leader::OneLeaderPerTerm;
use crate::checker::linear_set::LinearizableSet;
use crate::checker::set::AckedAddsSurvive;
use crate::checker::Report;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::history::History;
use crate::nemesis::Fault;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Tier1Config {
    /// Nemesis seed.
    pub seed: u64,
    /// How long the nemesis runs.
    pub time_limit: Duration,
    /// How long the first formation may take.
    pub form_deadline: Duration,
    /// The convergence deadline the checker enforces after the last heal (the issue: 10 s).
    pub converge_within: Duration,
    /// How long the run waits for convergence before giving up (longer, to report how long
    /// it actually took when it misses the deadline).
    pub converge_wait: Duration,
    /// The fault kinds the nemesis draws from.
    pub nemesis: Vec<StrataFault>,
}

impl Tier1Config {
    /// `TIER1_SECONDS` (default `default_secs`) of nemesis with seed `TIER1_SEED` (default: from
    /// the clock, printed so a failure can be replayed).
    pub fn from_env(default_secs: u64) -> Tier1Config {
        let secs = std::env::var("TIER1_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_secs);
        let seed = std::env::var("TIER1_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64 % 1_000_000)
                    .unwrap_or(1)
            });
        Tier1Config {
            seed,
            time_limit: Duration::from_secs(secs),
            form_deadline: Duration::from_secs(60),
            converge_within: Duration::from_secs(10),
            converge_wait: Duration::from_secs(40),
            nemesis: StrataFault::CORE.to_vec(),
        }
    }
}

/// What a run saw.
#[derive(Debug)]
pub struct Tier1Outcome {
    /// The checkers' verdicts.
    pub report: Report,
    /// The cluster as it first settled.
    pub formed: Settled,
    /// The faults applied, in order.
    pub faults: Vec<Fault>,
    /// The workload's figures.
    pub workload: WorkloadStats,
    /// The linearizable reader's figures.
    pub reads: ReadStats,
    /// How long the cluster took to settle after the last heal (`None`: it did not).
    pub converged: Option<Duration>,
    /// The JSON-lines history.
    pub history: PathBuf,
}

impl Tier1Outcome {
    /// What a run did, for people: one line per fault, then the workload's figures.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.faults.iter().enumerate() {
            out.push_str(&format!(
                "fault {i}: {}\n",
                serde_json::to_string(f).unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "workload: {} adds, {} acknowledged; {} linearizable reads, {} returned, {} refused \
             by followers; converged {} after the last heal",
            self.workload.invoked,
            self.workload.acked,
            self.reads.invoked,
            self.reads.ok,
            self.reads.refused,
            self.converged
                .map_or("never".to_string(), |d| format!("{:.1}s", d.as_secs_f64()))
        ));
        out
    }
}

/// Sets the flags when dropped, so helper threads stop even when the run fails.
struct StopOnDrop<'a>(&'a [&'a AtomicBool]);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for f in self.0 {
            f.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs the schedule on `cluster` (not started yet) with nodes started as `opts` says.
pub fn run(cluster: &mut Cluster, opts: &NodeOptions, cfg: &Tier1Config) -> Result<Tier1Outcome> {
    let faked;
    let opts = if cfg.nemesis.iter().any(|k| k.needs_fake_clock()) && opts.libfaketime.is_none() {
        faked = opts.clone().with_fake_clock()?;
        &faked
    } else {
        opts
    };
    cluster.start_all(|n| opts.command(n))?;
    let targets = targets(cluster);
    let n = targets.len();
    let formed = wait_settled(&targets, n, cfg.form_deadline)?;
    let history_path = cluster.dir().join("history.jsonl");
    let history = History::with_file(&history_path)?;
    for (id, s) in snapshot(&targets, Duration::from_secs(1)) {
        if let Some(s) = s {
            record(&history, id, &s);
        }
    }
    let secret = raft::ClusterSecret::from_file(&opts.secret_file)
        .map_err(|e| Error::NotReady(format!("cluster secret: {e}")))?;
    let workload = RegistryWorkload {
        secret,
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(3),
    };
    let reader = LinearReads {
        interval: Duration::from_millis(150),
        timeout: Duration::from_secs(3),
        seed: cfg.seed,
    };
    let hint = LeaderHint::default();
    hint.offer(formed.term, formed.leader_node, formed.leader);
    let (stop_observer, stop_workload) = (AtomicBool::new(false), AtomicBool::new(false));
    let never = AtomicBool::new(false);
    let schedule = StrataSchedule {
        kinds: cfg.nemesis.clone(),
        ..StrataSchedule::new(cfg.seed)
    };
    let (faults, stats, read_stats, converged) = std::thread::scope(|s| -> Result<_> {
        let flags = [&stop_observer, &stop_workload];
        let _stop = StopOnDrop(&flags);
        let (t, h, hi) = (&targets, &history, &hint);
        s.spawn(|| Observer::default().run(t, h, hi, &stop_observer));
        let wl = s.spawn(|| workload.run(t, h, hi, &stop_workload));
        let rd = s.spawn(|| reader.run(t, h, hi, &stop_workload));
        let faults = schedule.run(cluster, &history, &hint, cfg.time_limit, &never)?;
        let healed = Instant::now();
        stop_workload.store(true, Ordering::Relaxed);
        let stats = wl.join().unwrap_or_default();
        let read_stats = rd.join().unwrap_or_default();
        let converged = wait_settled(&targets, n, cfg.converge_wait)
            .ok()
            .map(|_| healed.elapsed());
        read_all(&targets, &history, Duration::from_secs(2));
        // The observer must record every node after the reads, or an add acknowledged just
        // before them would look unconverged on the nodes it last saw earlier.
        let after = history.now_ns();
        let observed = Instant::now();
        while !observed_since(&history, &targets, after)
            && observed.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok((faults, stats, read_stats, converged))
    })?;
    let report = judge(&history, &formed.voters, cfg.converge_within);
    Ok(Tier1Outcome {
        report,
        formed,
        faults,
        workload: stats,
        reads: read_stats,
        converged,
        history: history_path,
    })
}

/// Whether every target has a `converge` observation recorded after `after_ns`.
fn observed_since(history: &History, targets: &[super::observer::Target], after_ns: u64) -> bool {
    let ops = history.ops();
    targets.iter().all(|t| {
        ops.iter()
            .rev()
            .take_while(|o| o.time_ns > after_ns)
            .any(|o| o.f == "converge" && o.node == Some(t.id))
    })
}

/// Runs every tier-1 checker over `history`; `voters` is the committed membership every node
/// must keep reporting (no membership change happens during a tier-1 run).
pub fn judge(history: &History, voters: &[u64], converge_within: Duration) -> Report {
    let claims = Renamed {
        name: "at most one leader per term (leaders' own claims)".into(),
        inner: OneLeaderPerTerm::default(),
    };
    let views = Renamed {
        name: "at most one leader per term (every node's view)".into(),
        inner: OneLeaderPerTerm {
            f: "leader_view".into(),
        },
    };
    let commit = CommitNeverRegresses::default();
    let members = MembershipStable {
        voters: voters.to_vec(),
    };
    let converge = Renamed {
        name: format!(
            "all nodes converge on one leader, voters and registry within {converge_within:?} of healing"
        ),
        inner: ConvergesAfterHeal {
            f: "converge".into(),
            within: converge_within,
        },
    };
    let acked = AckedAddsSurvive::default();
    let linear = LinearizableSet::default();
    Report::run(
        history,
        &[
            &claims, &views, &commit, &members, &converge, &acked, &linear,
        ],
    )
}

/// The voters of the first `members` observation (the formed cluster), for re-judging a
/// history read back from its file.
pub fn first_voters(history: &History) -> Vec<u64> {
    history
        .ops()
        .iter()
        .find(|o| o.f == "members")
        .and_then(|o| o.value["voters"].as_array().cloned())
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default()
}
