//! Tier 1 of coordinated compaction: three `strata node --role compact` processes, each in its
//! own namespace and formed from `dns+peers:10901`, over one s3s-fs bucket (SigV4) that every
//! namespace reaches at the test's bridge address, holding two groups of generated 2h blocks.
//! A seeded nemesis strikes running jobs (SIGKILL or isolation of the worker, isolation of the
//! leader, a bucket outage for the worker); after healing, the bucket must settle with no
//! overlap and no duplicate output in any group, every group must keep exactly its samples
//! (read back through `storage`), struck jobs must have been reassigned, and no job may ever
//! have had two valid leases.
//!
//! - `bucket`: the s3s-fs server, block generation, reading live blocks and samples
//! - `watch`: polling every node's job table into the history and a shared view
//! - `nemesis`: the seeded faults aimed at running jobs
//! - `check`: the invariants
//! - `run`: one whole run

pub mod bucket;
pub mod check;
pub mod nemesis;
pub mod run;
pub mod watch;
