//! Tier 0: a simulation of Strata's Raft layer with faults, run over many seeds.
//!
//! Each seed runs 3 to 5 real `raft::RaftNode`s (Strata's `TypeConfig`, its sled log store and
//! state machine in directories on tmpfs, its membership code) in one process, on one
//! current-thread tokio runtime with the clock paused: timers are virtual, so seconds of Raft
//! time cost only the CPU they use. The nodes talk through [`net::Router`], which loses, delays,
//! duplicates and partitions messages; the driver ([`driver`]) interleaves client writes
//! (registry and job commands), membership changes (join, promote, remove), crashes and restarts
//! (reopening the same sled directory), snapshots and network faults, all drawn from the seed.
//! After every step it checks the invariants of [`invariants`]; at the end it heals everything
//! and requires that the cluster converges.
//!
//! Determinism is "as practical": the seed fixes the schedule of actions and faults, and the
//! runtime is single-threaded with virtual time, but openraft draws its election timeouts from
//! an unseeded thread RNG and tokio's `select!` picks branches at random, so a replay follows the
//! same schedule and usually, not always, the same interleaving. A failing seed still fails
//! most replays; run it a few times (`TIER0_SEED=N`). (openraft 0.9's `AsyncRuntime` trait
//! supplies that RNG, `thread_rng()`, so a runtime of our own in `raft::TypeConfig` could take it
//! from the seed; `select!`'s randomness would remain.)
//!
//! Virtual time makes timers of different nodes coincide exactly, which real clocks never do;
//! [`phase`] keeps the nodes' Raft ticks apart so that this does not livelock elections.

pub mod compact;
pub mod driver;
pub mod invariants;
pub mod net;
pub mod node;
pub mod oracle;
pub mod phase;
pub mod workload;

use std::time::{Duration, Instant};

pub use driver::SeedOutcome;

/// A harness failure (not an invariant violation): storage that would not open, a node that
/// would not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The sled stores could not be opened.
    #[error(transparent)]
    Open(#[from] raft::store::OpenError),
    /// The Raft node could not start or be initialized.
    #[error(transparent)]
    Node(#[from] raft::RaftNodeError),
    /// Anything else in setting up a run.
    #[error("simulation setup: {0}")]
    Setup(String),
}

/// How much to simulate per seed.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// Steps (actions) per seed after the initial cluster is formed.
    pub steps: usize,
    /// Most nodes in the cluster at once (at most 5 voters).
    pub max_nodes: usize,
    /// How long the healed cluster may take to converge (virtual time).
    pub converge_within: Duration,
    /// Print every action as it happens.
    pub verbose: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            steps: 100,
            max_nodes: 5,
            converge_within: Duration::from_secs(60),
            verbose: false,
        }
    }
}

/// A seed whose run broke an invariant or could not complete.
#[derive(Debug, Clone)]
pub struct SeedFailure {
    /// The seed.
    pub seed: u64,
    /// The step at which the failure was found (`None`: during setup or the final check).
    pub step: Option<usize>,
    /// What went wrong, one line each.
    pub violations: Vec<String>,
    /// The last actions before the failure.
    pub recent: Vec<String>,
}

impl std::fmt::Display for SeedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.step.map_or_else(
            || "setup or final check".to_string(),
            |s| format!("step {s}"),
        );
        writeln!(f, "seed {} failed at {at}:", self.seed)?;
        for v in &self.violations {
            writeln!(f, "  violation: {v}")?;
        }
        writeln!(f, "  last actions:")?;
        for r in &self.recent {
            writeln!(f, "    {r}")?;
        }
        write!(f, "  replay: {}", replay_command(self.seed))
    }
}

/// The command that runs one seed again.
pub fn replay_command(seed: u64) -> String {
    format!("TIER0_SEED={seed} cargo nextest run -p chaos-tests --test tier0")
}

/// Runs one seed on a fresh current-thread runtime with a paused clock.
pub fn run_seed(seed: u64, config: &SimConfig) -> Result<SeedOutcome, SeedFailure> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| SeedFailure {
            seed,
            step: None,
            violations: vec![format!("cannot build a runtime: {e}")],
            recent: Vec::new(),
        })?;
    let mut outcome = rt.block_on(driver::run(seed, *config))?;
    outcome.wall = started.elapsed();
    Ok(outcome)
}
