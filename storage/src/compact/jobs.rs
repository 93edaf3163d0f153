//! A compaction pass split into jobs that several workers can run, for a coordinator (the
//! Raft leader of `strata node`) to hand out: one group's next compaction step, one block's
//! downsampling, or one sweep (retention and superseded blocks marked, marked blocks deleted
//! after the delay, partial uploads removed, the bucket index written).
//!
//! Planning is a pure function of the bucket's metas ([`plan_jobs`]); a job's id is derived
//! from its inputs, so planning the same work twice gives the same id and a coordinator can
//! refuse to run it twice. Nothing here knows who coordinates: the caller says which blocks
//! are inputs of unfinished jobs (never planned again, never marked) and which outputs were
//! committed (kept when a duplicate output exists).

use super::group::group_metas;
use super::planner::{plan, superseded_keeping};
use super::retention::{expired, Retention};
use crate::block::meta::BlockMeta;
use crate::downsample::plan_downsampling;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use ulid::Ulid;

/// Job kind of a compaction step.
pub const KIND_COMPACT: &str = "compact";
/// Job kind of a downsampling.
pub const KIND_DOWNSAMPLE: &str = "downsample";
/// Job kind of a sweep.
pub const KIND_SWEEP: &str = "compact-sweep";
/// Every kind this module plans (a job table may hold other kinds, e.g. rule groups).
pub const KINDS: [&str; 3] = [KIND_COMPACT, KIND_DOWNSAMPLE, KIND_SWEEP];

/// One unit of compaction work, as handed to a worker (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobSpec {
    /// Merge `sources` (one group, sorted by ULID) into one block.
    Compact {
        /// The group's resolution (ms).
        resolution: i64,
        /// The group's external labels (replica labels removed).
        labels: BTreeMap<String, String>,
        /// The blocks to merge.
        sources: Vec<Ulid>,
    },
    /// Downsample `block` to `to_resolution`.
    Downsample {
        /// The input block.
        block: Ulid,
        /// The output's resolution (ms).
        to_resolution: i64,
    },
    /// Mark `retention` and `superseded` blocks for deletion, delete blocks whose delete delay
    /// passed, remove stale partial uploads, write the bucket index.
    Sweep {
        /// Blocks past their resolution's retention.
        retention: Vec<Ulid>,
        /// Blocks whose sources another block holds (crash leftovers, duplicate outputs).
        superseded: Vec<Ulid>,
        /// The planning round (`now / sweep period`): a new sweep at least once a period.
        round: i64,
        /// Hash of every live block id, so a changed bucket gets a new sweep (and index).
        view: u64,
    },
}

impl JobSpec {
    /// The job table kind.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Compact { .. } => KIND_COMPACT,
            JobSpec::Downsample { .. } => KIND_DOWNSAMPLE,
            JobSpec::Sweep { .. } => KIND_SWEEP,
        }
    }

    /// The id, derived from the inputs only: the same work planned again has the same id.
    pub fn id(&self) -> String {
        match self {
            JobSpec::Compact {
                resolution,
                labels,
                sources,
            } => {
                let mut h = Fnv::default();
                for (k, v) in labels {
                    h.write(k.as_bytes());
                    h.write(&[0]);
                    h.write(v.as_bytes());
                    h.write(&[0]);
                }
                let first = sources.first().map(|u| u.to_string()).unwrap_or_default();
                format!(
                    "compact:{resolution}:{:016x}:{first}+{}:{:016x}",
                    h.0,
                    sources.len(),
                    hash_ids(sources)
                )
            }
            JobSpec::Downsample {
                block,
                to_resolution,
            } => format!("downsample:{block}:{to_resolution}"),
            JobSpec::Sweep {
                retention,
                superseded,
                round,
                view,
            } => {
                let marks = hash_ids(retention.iter().chain(superseded));
                format!("sweep:{round}:{view:016x}:{marks:016x}")
            }
        }
    }

    /// Blocks the job reads or marks: no other job may be planned over them meanwhile.
    pub fn inputs(&self) -> Vec<Ulid> {
        match self {
            JobSpec::Compact { sources, .. } => sources.clone(),
            JobSpec::Downsample { block, .. } => vec![*block],
            JobSpec::Sweep {
                retention,
                superseded,
                ..
            } => retention.iter().chain(superseded).copied().collect(),
        }
    }

    /// The JSON the job table stores.
    pub fn encode(&self) -> String {
        // A JobSpec is plain data (strings, integers, ULIDs): serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a job table spec; the error names what is wrong.
    pub fn decode(spec: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(spec)
    }
}

/// What a worker reports on completion (JSON in the job table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// "done", "obsolete" (the inputs were gone) or "failed".
    pub status: String,
    /// The uploaded output block, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Ulid>,
    /// Blocks the job marked no-compact (unreadable sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_compact: Vec<Ulid>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl JobResult {
    /// Status of a job that did its work.
    pub const DONE: &'static str = "done";
    /// Status of a job whose inputs were no longer there.
    pub const OBSOLETE: &'static str = "obsolete";
    /// Status of a job that failed (planned again later).
    pub const FAILED: &'static str = "failed";

    /// The JSON the job table stores.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a stored result.
    pub fn decode(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

/// What planning needs besides the metas.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Per-resolution retention.
    pub retention: Retention,
    /// Replica labels (groups ignore them).
    pub replica_labels: Vec<String>,
    /// Compaction levels (ms).
    pub ranges: Vec<i64>,
    /// Whether to plan downsampling.
    pub downsample: bool,
    /// How often a sweep runs even when nothing changed (ms, at least 1).
    pub sweep_period_ms: i64,
}

/// What the coordinator knows that the bucket does not say.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    /// Inputs of jobs not finished yet: never planned again, never marked.
    pub busy: BTreeSet<Ulid>,
    /// Outputs whose completion was committed: kept when a duplicate exists.
    pub committed: BTreeSet<Ulid>,
    /// Blocks that committed jobs marked no-compact: a view of the bucket without these marks
    /// predates the job and would plan it again.
    pub no_compact: BTreeSet<Ulid>,
}

/// The jobs for `live` (metas without deletion marks, past the consistency delay) at `now_ms`.
/// `no_compact` blocks are never compaction sources. At most one compaction per group, none
/// in a group with a busy block, and downsampling only of groups with no compaction left, so
/// a block is never downsampled while it is about to be merged.
pub fn plan_jobs(
    live: &[BlockMeta],
    no_compact: &BTreeSet<Ulid>,
    in_flight: &InFlight,
    config: &PlanConfig,
    now_ms: i64,
) -> Vec<JobSpec> {
    let busy = &in_flight.busy;
    let retention: Vec<Ulid> = expired(live.iter(), &config.retention, now_ms)
        .iter()
        .map(|m| m.ulid)
        .filter(|id| !busy.contains(id))
        .collect();
    let kept: Vec<BlockMeta> = live
        .iter()
        .filter(|m| !retention.contains(&m.ulid))
        .cloned()
        .collect();
    let superseded: Vec<Ulid> = superseded_keeping(&kept, &in_flight.committed)
        .into_iter()
        .filter(|id| !busy.contains(id))
        .collect();
    let remaining: Vec<BlockMeta> = kept
        .into_iter()
        .filter(|m| !superseded.contains(&m.ulid))
        .collect();

    let mut jobs = Vec::new();
    let mut settled: BTreeSet<Ulid> = BTreeSet::new();
    for (key, metas) in group_metas(remaining.iter(), &config.replica_labels) {
        if metas.iter().any(|m| busy.contains(&m.ulid)) {
            continue;
        }
        let chosen = plan(&metas, no_compact, &config.ranges);
        if chosen.is_empty() {
            settled.extend(metas.iter().map(|m| m.ulid));
            continue;
        }
        let mut sources: Vec<Ulid> = chosen.iter().map(|m| m.ulid).collect();
        sources.sort();
        jobs.push(JobSpec::Compact {
            resolution: key.resolution,
            labels: key.labels,
            sources,
        });
    }
    if config.downsample {
        match plan_downsampling(&remaining) {
            Ok(tasks) => jobs.extend(
                tasks
                    .into_iter()
                    .filter(|t| settled.contains(&t.block))
                    .map(|t| JobSpec::Downsample {
                        block: t.block,
                        to_resolution: t.to_resolution,
                    }),
            ),
            Err(e) => tracing::warn!(error = %e, "planning downsampling failed"),
        }
    }
    let round = now_ms.div_euclid(config.sweep_period_ms.max(1));
    jobs.push(JobSpec::Sweep {
        retention,
        superseded,
        round,
        view: hash_ids(live.iter().map(|m| &m.ulid)),
    });
    jobs
}

/// FNV-1a, 64 bits: stable across builds and platforms (job ids must agree between nodes of
/// different versions), unlike `DefaultHasher`.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn hash_ids<'a>(ids: impl IntoIterator<Item = &'a Ulid>) -> u64 {
    let mut sorted: Vec<&Ulid> = ids.into_iter().collect();
    sorted.sort();
    let mut h = Fnv::default();
    for id in sorted {
        h.write(&id.0.to_be_bytes());
    }
    h.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::planner::DEFAULT_RANGES;
    use crate::compact::testutil::meta;

    const H: i64 = 3600 * 1000;

    fn config() -> PlanConfig {
        PlanConfig {
            retention: Retention::default(),
            replica_labels: Vec::new(),
            ranges: DEFAULT_RANGES.to_vec(),
            downsample: true,
            sweep_period_ms: 60_000,
        }
    }

    fn five(labels: &[(&str, &str)], base: u128) -> Vec<BlockMeta> {
        (0..5)
            .map(|i| meta(base + i as u128, i * 2 * H, (i + 1) * 2 * H, labels, 0))
            .collect()
    }

    fn compact_jobs(jobs: &[JobSpec]) -> Vec<&JobSpec> {
        jobs.iter().filter(|j| j.kind() == KIND_COMPACT).collect()
    }

    #[test]
    fn one_compaction_per_group_with_ids_stable_across_plans() {
        let mut live = five(&[("g", "a")], 1);
        live.extend(five(&[("g", "b")], 100));
        let none = BTreeSet::new();
        let a = plan_jobs(&live, &none, &InFlight::default(), &config(), 0);
        let b = plan_jobs(&live, &none, &InFlight::default(), &config(), 1);
        let ids = |j: &[JobSpec]| j.iter().map(|j| j.id()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        let compact = compact_jobs(&a);
        assert_eq!(compact.len(), 2, "{a:?}");
        assert_ne!(compact[0].id(), compact[1].id());
        let JobSpec::Compact { sources, .. } = compact[0] else {
            unreachable!()
        };
        assert_eq!(sources, &vec![Ulid(1), Ulid(2), Ulid(3), Ulid(4)]);
        let back = JobSpec::decode(&compact[0].encode()).expect("round trip");
        assert_eq!(&back, compact[0]);
    }

    #[test]
    fn busy_groups_are_not_planned_again_and_busy_blocks_not_marked() {
        let live = five(&[("g", "a")], 1);
        let in_flight = InFlight {
            busy: [Ulid(1)].into(),
            ..InFlight::default()
        };
        let jobs = plan_jobs(&live, &BTreeSet::new(), &in_flight, &config(), 0);
        assert!(compact_jobs(&jobs).is_empty(), "{jobs:?}");
        let JobSpec::Sweep { superseded, .. } = jobs.last().expect("sweep") else {
            panic!("last job is the sweep: {jobs:?}")
        };
        assert!(superseded.is_empty());
    }

    #[test]
    fn a_duplicate_output_is_swept_keeping_the_committed_one() {
        let mut out = meta(50, 0, 8 * H, &[], 0);
        out.compaction.sources = vec![Ulid(1), Ulid(2), Ulid(3), Ulid(4)];
        let mut dup = out.clone();
        dup.ulid = Ulid(60);
        let mut live = vec![out, dup];
        live.extend(five(&[], 1));
        // Without knowledge of commits the newer duplicate goes, and the merged sources.
        let jobs = plan_jobs(&live, &BTreeSet::new(), &InFlight::default(), &config(), 0);
        let JobSpec::Sweep { superseded, .. } = jobs.last().expect("sweep") else {
            panic!("{jobs:?}")
        };
        assert_eq!(
            superseded,
            &vec![Ulid(1), Ulid(2), Ulid(3), Ulid(4), Ulid(60)]
        );
        // The committed output is kept even when it is the newer one.
        let in_flight = InFlight {
            committed: [Ulid(60)].into(),
            ..InFlight::default()
        };
        let jobs = plan_jobs(&live, &BTreeSet::new(), &in_flight, &config(), 0);
        let JobSpec::Sweep { superseded, .. } = jobs.last().expect("sweep") else {
            panic!("{jobs:?}")
        };
        assert!(superseded.contains(&Ulid(50)) && !superseded.contains(&Ulid(60)));
        // Superseded blocks are not compacted meanwhile.
        assert!(compact_jobs(&jobs).is_empty(), "{jobs:?}");
    }

    #[test]
    fn downsampling_waits_until_the_group_has_no_compaction_left() {
        // Two 48h-wide raw blocks (40h+ qualifies) that no level merges yet: downsampled.
        let big = vec![
            meta(1, 0, 48 * H, &[], 0),
            meta(2, 48 * H, 96 * H, &[], 0),
            meta(3, 96 * H, 98 * H, &[], 0),
        ];
        let jobs = plan_jobs(&big, &BTreeSet::new(), &InFlight::default(), &config(), 0);
        let kinds: Vec<&str> = jobs.iter().map(|j| j.kind()).collect();
        assert_eq!(kinds, vec![KIND_DOWNSAMPLE, KIND_DOWNSAMPLE, KIND_SWEEP]);
        let mut pending = five(&[], 10);
        pending.push(meta(1, 100 * H, 148 * H, &[], 0));
        let jobs = plan_jobs(
            &pending,
            &BTreeSet::new(),
            &InFlight::default(),
            &config(),
            0,
        );
        assert!(jobs.iter().all(|j| j.kind() != KIND_DOWNSAMPLE), "{jobs:?}");
    }

    #[test]
    fn sweeps_change_id_with_the_bucket_and_the_round() {
        let live = five(&[], 1);
        let sweep = |live: &[BlockMeta], now| {
            plan_jobs(live, &BTreeSet::new(), &InFlight::default(), &config(), now)
                .pop()
                .expect("sweep")
                .id()
        };
        assert_eq!(sweep(&live, 0), sweep(&live, 59_999));
        assert_ne!(sweep(&live, 0), sweep(&live, 60_000));
        assert_ne!(sweep(&live, 0), sweep(&live[1..], 0));
    }
}
