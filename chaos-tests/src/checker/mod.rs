//! Judging a history: each [`Checker`] tests one named invariant and explains what it found.
//!
//! Generic pieces for the Raft checks live here: [`set::AckedAddsSurvive`] (a value whose write
//! was acknowledged is seen by every later read), [`linear_set::LinearizableSet`] (reads of a
//! grow-only set are linearizable), [`leader::OneLeaderPerTerm`] (over leader observations) and
//! [`converge::ConvergesAfterHeal`]. A general linearizability checker for registers
//! (WGL/Porcupine style) is not written: the workload is a grow-only set, which needs none.

pub mod converge;
pub mod leader;
pub mod linear_set;
pub mod set;

use std::fmt;

use crate::history::History;

/// The verdict on one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The invariant held.
    Valid,
    /// The invariant was violated.
    Invalid,
    /// The history does not let us tell (e.g. no reads after the writes).
    Unknown,
}

/// One checker's result.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The invariant's name.
    pub name: String,
    /// The verdict.
    pub outcome: Outcome,
    /// One line of figures (e.g. "120 acknowledged, 0 lost").
    pub summary: String,
    /// Each anomaly (or the reason for Unknown), readable on its own.
    pub details: Vec<String>,
}

impl CheckResult {
    /// A result with no details.
    pub fn new(name: &str, outcome: Outcome, summary: impl Into<String>) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            outcome,
            summary: summary.into(),
            details: Vec::new(),
        }
    }
}

/// An invariant over a history.
pub trait Checker {
    /// The invariant's name.
    fn name(&self) -> &str;
    /// Checks it.
    fn check(&self, history: &History) -> CheckResult;
}

/// The results of several checkers; prints a report ending in `N passed, N failed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// One result per checker, in order.
    pub results: Vec<CheckResult>,
}

/// How many anomalies a report prints per checker.
const MAX_DETAILS: usize = 20;

impl Report {
    /// Runs every checker over `history`.
    pub fn run(history: &History, checkers: &[&dyn Checker]) -> Report {
        Report {
            results: checkers.iter().map(|c| c.check(history)).collect(),
        }
    }

    /// Checkers that were valid.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome == Outcome::Valid)
            .count()
    }

    /// Checkers that were invalid or could not tell.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// True when every checker was valid.
    pub fn is_valid(&self) -> bool {
        self.failed() == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            let verdict = match r.outcome {
                Outcome::Valid => "PASS",
                Outcome::Invalid => "FAIL",
                Outcome::Unknown => "UNKNOWN",
            };
            writeln!(f, "{verdict:<7} {}: {}", r.name, r.summary)?;
            for d in r.details.iter().take(MAX_DETAILS) {
                writeln!(f, "          {d}")?;
            }
            if r.details.len() > MAX_DETAILS {
                writeln!(
                    f,
                    "          ... and {} more",
                    r.details.len() - MAX_DETAILS
                )?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}
