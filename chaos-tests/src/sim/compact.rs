//! Tier 0 for coordinated compaction: storage's job planner (`storage::compact::jobs`) and the
//! replicated job table (`raft::ClusterState`, applied directly, without Raft) driven over a
//! model bucket behind a seeded fault layer: failed requests, writes that land but whose
//! response is lost, stale listings, and latency as workers that pause (past their lease)
//! and resume. Workers follow the compact role's protocol step by step (`node::compact::
//! worker`): read the sources, upload the output, report completion with the fencing token,
//! and mark the sources only after the completion was accepted; the leader plans from a
//! listing, creates jobs by input-derived id, assigns them under leases and expires them.
//!
//! Checked after every step: at most one worker holds a lease it believes valid per job; no
//! sample is lost (every ingested sample is in a block without a deletion mark); a source is
//! marked "compacted" only after its job's completion was committed; a committed output is
//! still there or covered by a live block. After the faults stop and the cluster settles:
//! no two live blocks of a group overlap, and no job is left unfinished.
//!
//! Blocks are modelled by their metas and their sample sets (series, timestamp), not files:
//! what is tested is the coordination, which does not depend on the bytes.

use std::collections::{BTreeMap, BTreeSet};

use raft::{ClusterState, Command, FencingToken, JobState, Request, Response};
use storage::block::meta::BlockMeta;
use storage::compact::jobs::{plan_jobs, InFlight, JobResult, JobSpec, PlanConfig, KINDS};
use storage::compact::planner::DEFAULT_RANGES;
use storage::compact::retention::Retention;
use ulid::Ulid;

use crate::rng::Rng;

const H: i64 = 3600 * 1000;
const LEASE_MS: i64 = 30_000;
const DELETE_DELAY_MS: i64 = 120_000;
const WORKERS: u64 = 3;

/// A sample: (series, timestamp).
type Sample = (u32, i64);

/// One block in the model bucket.
#[derive(Debug, Clone)]
struct ModelBlock {
    meta: BlockMeta,
    samples: BTreeSet<Sample>,
    /// Deletion mark: (time, reason).
    mark: Option<(i64, &'static str)>,
}

/// The bucket: blocks by ULID, plus past listings for stale reads.
#[derive(Debug, Default)]
struct ModelBucket {
    blocks: BTreeMap<Ulid, ModelBlock>,
    /// Snapshots of (live metas) taken at each listing, newest last.
    history: Vec<Vec<BlockMeta>>,
}

impl ModelBucket {
    fn live_metas(&self) -> Vec<BlockMeta> {
        self.blocks
            .values()
            .filter(|b| b.mark.is_none())
            .map(|b| b.meta.clone())
            .collect()
    }

    fn is_live(&self, id: &Ulid) -> bool {
        self.blocks.get(id).is_some_and(|b| b.mark.is_none())
    }
}

/// What a fault does to one bucket request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The request fails and nothing happens.
    Error,
    /// The write happens but the caller sees an error.
    LostResponse,
}

/// Where a worker is in one job.
#[derive(Debug, Clone)]
enum Stage {
    /// Assigned; next: read sources and upload the output.
    Run,
    /// Output uploaded (or nothing to upload); next: report completion.
    Complete(JobResult),
    /// Completion accepted; next: mark the sources.
    Finish(JobResult),
}

#[derive(Debug, Clone)]
struct WorkerJob {
    token: FencingToken,
    spec: JobSpec,
    stage: Stage,
    /// The lease end this worker believes in (from the assignment or its last renewal).
    believed_end: i64,
}

#[derive(Debug, Default)]
struct Worker {
    jobs: BTreeMap<String, WorkerJob>,
    /// Paused until this time (a GC pause, a slow disk): does nothing meanwhile.
    paused_until: i64,
}

/// Figures of one seed's run.
#[derive(Debug, Default, Clone)]
pub struct CompactFigures {
    /// Compaction jobs completed with an output.
    pub compactions: u64,
    /// Completions refused (stale token or lapsed lease).
    pub refused: u64,
    /// Leases that lapsed and were reassigned.
    pub reassigned: u64,
    /// Faults injected.
    pub faults: u64,
    /// Blocks ingested.
    pub ingested: u64,
    /// Duplicate outputs removed by a sweep.
    pub duplicates_removed: u64,
    /// Blocks live at the end.
    pub final_blocks: usize,
}

/// An invariant broken, with the seed and step.
#[derive(Debug, thiserror::Error)]
#[error("compaction sim seed {seed}, step {step}: {what}")]
pub struct CompactViolation {
    /// The seed.
    pub seed: u64,
    /// The step.
    pub step: usize,
    /// What broke.
    pub what: String,
}

struct Sim {
    seed: u64,
    step: usize,
    rng: Rng,
    now: i64,
    term: u64,
    state: ClusterState,
    bucket: ModelBucket,
    workers: BTreeMap<u64, Worker>,
    ingested: BTreeSet<Sample>,
    next_ulid: u128,
    /// Next 2h slot per group.
    next_slot: [i64; 2],
    faults_on: bool,
    figures: CompactFigures,
    /// Sources whose job completion was committed (for the "compacted" mark check).
    committed_sources: BTreeSet<Ulid>,
    last_assignee: BTreeMap<String, u64>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut workers = BTreeMap::new();
        for id in 1..=WORKERS {
            workers.insert(id, Worker::default());
        }
        Sim {
            seed,
            step: 0,
            rng: Rng::new(seed),
            now: 1_000_000,
            term: 1,
            state: ClusterState::default(),
            bucket: ModelBucket::default(),
            workers,
            ingested: BTreeSet::new(),
            next_ulid: 1 << 80,
            next_slot: [0, 0],
            faults_on: true,
            figures: CompactFigures::default(),
            committed_sources: BTreeSet::new(),
            last_assignee: BTreeMap::new(),
        }
    }

    fn violation(&self, what: impl Into<String>) -> CompactViolation {
        CompactViolation {
            seed: self.seed,
            step: self.step,
            what: what.into(),
        }
    }

    fn apply(&mut self, command: Command) -> Response {
        self.state.apply(self.term, &Request::new(command))
    }

    fn fault(&mut self, write: bool) -> Fault {
        if !self.faults_on {
            return Fault::None;
        }
        let r = self.rng.unit();
        let f = if r < 0.08 {
            Fault::Error
        } else if write && r < 0.14 {
            Fault::LostResponse
        } else {
            Fault::None
        };
        if f != Fault::None {
            self.figures.faults += 1;
        }
        f
    }

    fn new_ulid(&mut self) -> Ulid {
        self.next_ulid += 1 + self.rng.below(3) as u128;
        Ulid(self.next_ulid)
    }

    /// A sidecar uploads the next 2h block of a group: 2 series, a sample every 15 minutes
    /// (few, so that checking every step stays cheap); now and then a replica's copy
    /// overlapping it (vertical compaction).
    fn ingest(&mut self) {
        let g = self.rng.below(2);
        let start = self.next_slot[g];
        self.next_slot[g] += 2 * H;
        let replicas = if self.rng.below(5) == 0 { 2 } else { 1 };
        for r in 0..replicas {
            let id = self.new_ulid();
            let mut meta = BlockMeta::new_level1(id, start, start + 2 * H);
            let t = meta.thanos_mut();
            t.labels = [("group".to_string(), g.to_string())].into();
            t.labels.insert("replica".to_string(), r.to_string());
            t.source = "sidecar".into();
            let mut samples = BTreeSet::new();
            for s in 0..2u32 {
                for ts in (start..start + 2 * H).step_by(900_000) {
                    samples.insert((s + 10 * g as u32, ts));
                }
            }
            self.ingested.extend(samples.iter().copied());
            self.bucket.blocks.insert(
                id,
                ModelBlock {
                    meta,
                    samples,
                    mark: None,
                },
            );
            self.figures.ingested += 1;
        }
    }

    /// A listing: usually now, sometimes one of the last few listings (a stale view).
    fn list(&mut self) -> Option<Vec<BlockMeta>> {
        if self.fault(false) == Fault::Error {
            return None;
        }
        let fresh = self.bucket.live_metas();
        let view = if self.faults_on && !self.bucket.history.is_empty() && self.rng.below(4) == 0 {
            let back = self.rng.below(self.bucket.history.len().min(3)) + 1;
            self.bucket.history[self.bucket.history.len() - back].clone()
        } else {
            fresh.clone()
        };
        self.bucket.history.push(fresh);
        if self.bucket.history.len() > 8 {
            self.bucket.history.remove(0);
        }
        Some(view)
    }

    fn in_flight(&self) -> InFlight {
        let mut f = InFlight::default();
        for job in self
            .state
            .jobs
            .values()
            .filter(|j| KINDS.contains(&j.kind.as_str()))
        {
            match &job.state {
                JobState::Done { result, .. } => {
                    if let Some(out) = JobResult::decode(result).ok().and_then(|r| r.output) {
                        f.committed.insert(out);
                    }
                }
                _ => {
                    if let Ok(spec) = JobSpec::decode(&job.spec) {
                        f.busy.extend(spec.inputs());
                    }
                }
            }
        }
        f
    }

    fn plan_config() -> PlanConfig {
        PlanConfig {
            retention: Retention::default(),
            replica_labels: vec!["replica".to_string()],
            ranges: DEFAULT_RANGES.to_vec(),
            downsample: false,
            sweep_period_ms: 60_000,
        }
    }

    /// The leader: plan from a listing, create jobs, expire leases, assign, drop old jobs.
    fn lead(&mut self) {
        if let Some(view) = self.list() {
            let jobs = plan_jobs(
                &view,
                &BTreeSet::new(),
                &self.in_flight(),
                &Self::plan_config(),
                self.now,
            );
            let sweeping = self.state.jobs.values().any(|j| {
                j.kind == storage::compact::jobs::KIND_SWEEP
                    && !matches!(j.state, JobState::Done { .. })
            });
            for spec in jobs {
                let id = spec.id();
                if self.state.jobs.contains_key(&id)
                    || (sweeping && spec.kind() == storage::compact::jobs::KIND_SWEEP)
                {
                    continue;
                }
                self.apply(Command::CreateJob {
                    job_id: id,
                    kind: spec.kind().to_string(),
                    spec: spec.encode(),
                    now_ms: self.now,
                });
            }
        }
        if let Response::Expired { ids } = self.apply(Command::ExpireLeases { now_ms: self.now }) {
            self.figures.reassigned += ids.len() as u64;
        }
        let mut load: BTreeMap<u64, usize> = (1..=WORKERS).map(|w| (w, 0)).collect();
        let mut pending = Vec::new();
        for job in self.state.jobs.values() {
            match &job.state {
                JobState::Assigned { node_id, .. } => *load.entry(*node_id).or_default() += 1,
                JobState::Pending => pending.push(job.id.clone()),
                JobState::Done { .. } => {}
            }
        }
        for id in pending {
            // Prefer a worker other than the one that let the lease lapse.
            let prev = self.last_assignee.get(&id).copied();
            let to = load
                .iter()
                .filter(|(w, l)| **l < 2 && Some(**w) != prev)
                .min_by_key(|(w, l)| (**l, **w))
                .map(|(w, _)| *w)
                .or(prev.filter(|p| load.get(p).is_some_and(|l| *l < 2)));
            let Some(to) = to else { break };
            let r = self.apply(Command::AssignJob {
                job_id: id.clone(),
                node_id: to,
                lease_expiry_ms: self.now + LEASE_MS,
                now_ms: self.now,
            });
            if let Response::Assigned { token } = r {
                *load.entry(to).or_default() += 1;
                self.last_assignee.insert(id.clone(), to);
                let spec = self
                    .state
                    .jobs
                    .get(&id)
                    .and_then(|j| JobSpec::decode(&j.spec).ok());
                if let Some(spec) = spec {
                    if let Some(w) = self.workers.get_mut(&to) {
                        w.jobs.insert(
                            id,
                            WorkerJob {
                                token,
                                spec,
                                stage: Stage::Run,
                                believed_end: self.now + LEASE_MS,
                            },
                        );
                    }
                }
            }
        }
        let old: Vec<String> = self
            .state
            .jobs
            .values()
            .filter_map(|j| match &j.state {
                JobState::Done {
                    completed_at_ms,
                    result,
                    ..
                } => {
                    let failed =
                        JobResult::decode(result).map_or(true, |r| r.status == JobResult::FAILED);
                    let keep = if failed { 60_000 } else { 600_000 };
                    (self.now - completed_at_ms >= keep).then(|| j.id.clone())
                }
                _ => None,
            })
            .collect();
        for id in old {
            self.apply(Command::DeleteJob { job_id: id });
        }
    }

    /// One step of one worker on one of its jobs.
    fn work(&mut self, w: u64) {
        let Some(worker) = self.workers.get(&w) else {
            return;
        };
        if worker.paused_until > self.now {
            return;
        }
        let ids: Vec<String> = worker.jobs.keys().cloned().collect();
        let Some(id) = self.rng.pick(&ids).cloned() else {
            return;
        };
        let Some(job) = self.workers.get(&w).and_then(|x| x.jobs.get(&id)).cloned() else {
            return;
        };
        // Renew first, as the worker's lease keeper does on its own timer.
        if self.rng.below(2) == 0 {
            let r = self.apply(Command::RenewLease {
                token: job.token.clone(),
                node_id: w,
                lease_expiry_ms: self.now + LEASE_MS,
                now_ms: self.now,
            });
            match r {
                Response::Rejected { .. } => {
                    // Another node owns it now: abandon (nothing was accepted from us).
                    self.drop_job(w, &id);
                    return;
                }
                _ => self.set_believed(w, &id, self.now + LEASE_MS),
            }
        }
        let next = match job.stage.clone() {
            Stage::Run => Some(Stage::Complete(self.run_job(&job.spec))),
            Stage::Complete(result) => {
                let r = self.apply(Command::CompleteJob {
                    token: job.token.clone(),
                    node_id: w,
                    result: result.encode(),
                    now_ms: self.now,
                });
                match r {
                    Response::Rejected { .. } => {
                        self.figures.refused += 1;
                        self.drop_job(w, &id);
                        None
                    }
                    _ => {
                        if let JobSpec::Compact { sources, .. } = &job.spec {
                            if result.status == JobResult::DONE && result.no_compact.is_empty() {
                                self.committed_sources.extend(sources.iter().copied());
                                self.figures.compactions += 1;
                            }
                        }
                        Some(Stage::Finish(result))
                    }
                }
            }
            Stage::Finish(result) => {
                if let JobSpec::Compact { sources, .. } = &job.spec {
                    if result.status == JobResult::DONE && result.no_compact.is_empty() {
                        for s in sources {
                            self.mark(*s, "compacted");
                        }
                    }
                }
                self.drop_job(w, &id);
                None
            }
        };
        if let Some(stage) = next {
            if let Some(j) = self.workers.get_mut(&w).and_then(|x| x.jobs.get_mut(&id)) {
                j.stage = stage;
            }
        }
    }

    fn set_believed(&mut self, w: u64, id: &str, end: i64) {
        if let Some(j) = self.workers.get_mut(&w).and_then(|x| x.jobs.get_mut(id)) {
            j.believed_end = end;
        }
    }

    fn drop_job(&mut self, w: u64, id: &str) {
        if let Some(x) = self.workers.get_mut(&w) {
            x.jobs.remove(id);
        }
    }

    /// Writes a deletion mark on a live block (a fault may drop it, or lose the response).
    fn mark(&mut self, id: Ulid, reason: &'static str) -> bool {
        match self.fault(true) {
            Fault::Error => false,
            f => {
                if let Some(b) = self.bucket.blocks.get_mut(&id) {
                    if b.mark.is_none() {
                        b.mark = Some((self.now, reason));
                    }
                }
                f == Fault::None
            }
        }
    }

    /// The job's bucket work, as `storage::compact::worker` does it.
    fn run_job(&mut self, spec: &JobSpec) -> JobResult {
        let failed = |e: &str| JobResult {
            status: JobResult::FAILED.into(),
            error: e.into(),
            ..JobResult::default()
        };
        match spec {
            JobSpec::Compact { sources, .. } => {
                if self.fault(false) == Fault::Error {
                    return failed("reading a source failed");
                }
                if sources.iter().any(|s| !self.bucket.is_live(s)) {
                    return JobResult {
                        status: JobResult::OBSOLETE.into(),
                        ..JobResult::default()
                    };
                }
                let metas: Vec<&BlockMeta> = sources
                    .iter()
                    .filter_map(|s| self.bucket.blocks.get(s).map(|b| &b.meta))
                    .collect();
                let compaction = storage::compact::merge::lineage(&metas);
                let min = metas.iter().map(|m| m.min_time).min().unwrap_or(0);
                let max = metas.iter().map(|m| m.max_time).max().unwrap_or(0);
                let mut labels = metas
                    .first()
                    .map(|m| m.external_labels())
                    .unwrap_or_default();
                labels.remove("replica");
                let samples: BTreeSet<Sample> = sources
                    .iter()
                    .filter_map(|s| self.bucket.blocks.get(s))
                    .flat_map(|b| b.samples.iter().copied())
                    .collect();
                let id = self.new_ulid();
                let mut meta = BlockMeta::new_level1(id, min, max);
                meta.compaction = compaction;
                let t = meta.thanos_mut();
                t.labels = labels;
                t.source = "compactor".into();
                let fault = self.fault(true);
                if fault != Fault::Error {
                    self.bucket.blocks.insert(
                        id,
                        ModelBlock {
                            meta,
                            samples,
                            mark: None,
                        },
                    );
                }
                if fault != Fault::None {
                    return failed("uploading the output failed");
                }
                JobResult {
                    status: JobResult::DONE.into(),
                    output: Some(id),
                    ..JobResult::default()
                }
            }
            JobSpec::Downsample { .. } => failed("downsampling is not simulated"),
            JobSpec::Sweep {
                retention,
                superseded,
                ..
            } => {
                for (ids, reason) in [(retention, "retention"), (superseded, "superseded")] {
                    for id in ids {
                        if self.bucket.is_live(id)
                            && self.mark(*id, reason)
                            && reason == "superseded"
                        {
                            let dup = self.bucket.blocks.get(id).is_some_and(|b| {
                                b.meta
                                    .thanos
                                    .as_ref()
                                    .is_some_and(|t| t.source == "compactor")
                            });
                            if dup {
                                self.figures.duplicates_removed += 1;
                            }
                        }
                    }
                }
                let due: Vec<Ulid> = self
                    .bucket
                    .blocks
                    .iter()
                    .filter(|(_, b)| b.mark.is_some_and(|(t, _)| self.now - t >= DELETE_DELAY_MS))
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    if self.fault(true) != Fault::Error {
                        self.bucket.blocks.remove(&id);
                    }
                }
                JobResult {
                    status: JobResult::DONE.into(),
                    ..JobResult::default()
                }
            }
        }
    }

    fn check(&self) -> Result<(), CompactViolation> {
        // At most one worker believes it holds a valid lease on a job.
        let mut holders: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (w, worker) in &self.workers {
            for (id, j) in &worker.jobs {
                if j.believed_end > self.now {
                    holders.entry(id.as_str()).or_default().push(*w);
                }
            }
        }
        if let Some((id, ws)) = holders.iter().find(|(_, ws)| ws.len() > 1) {
            return Err(self.violation(format!("job {id}: workers {ws:?} all hold a valid lease")));
        }
        // A worker's believed lease never outlives the table's for its token.
        for (w, worker) in &self.workers {
            for (id, j) in &worker.jobs {
                if j.believed_end <= self.now {
                    continue;
                }
                let current = self.state.jobs.get(id).map(|job| &job.state);
                let ok = match current {
                    Some(JobState::Assigned {
                        token,
                        lease_expiry_ms,
                        ..
                    }) => *token == j.token && *lease_expiry_ms >= j.believed_end,
                    Some(JobState::Done { token, .. }) => *token == j.token,
                    _ => false,
                };
                if !ok {
                    return Err(self.violation(format!(
                        "worker {w} believes it holds job {id} under {} until {}, the table says {current:?}",
                        j.token, j.believed_end
                    )));
                }
            }
        }
        // No sample lost.
        let mut have: BTreeSet<Sample> = BTreeSet::new();
        for b in self.bucket.blocks.values().filter(|b| b.mark.is_none()) {
            have.extend(b.samples.iter().copied());
        }
        if let Some(s) = self.ingested.difference(&have).next() {
            return Err(self.violation(format!("sample {s:?} is in no live block")));
        }
        // Sources are marked "compacted" only after their job's completion was committed.
        for (id, b) in &self.bucket.blocks {
            if let Some((_, "compacted")) = b.mark {
                if !self.committed_sources.contains(id) {
                    return Err(self.violation(format!(
                        "block {id} marked compacted without a committed completion"
                    )));
                }
            }
        }
        // A committed output is live, or its sources are covered by a live block.
        for job in self.state.jobs.values() {
            let JobState::Done { result, .. } = &job.state else {
                continue;
            };
            let Some(out) = JobResult::decode(result).ok().and_then(|r| r.output) else {
                continue;
            };
            if self.bucket.is_live(&out) {
                continue;
            }
            let Some(sources) = self
                .bucket
                .blocks
                .get(&out)
                .map(|b| &b.meta.compaction.sources)
            else {
                // Deleted after its delete delay: it was marked, hence covered when marked.
                continue;
            };
            let covered = self.bucket.blocks.values().any(|b| {
                b.mark.is_none()
                    && sources
                        .iter()
                        .all(|s| b.meta.compaction.sources.contains(s))
            });
            if !covered {
                return Err(self.violation(format!(
                    "committed output {out} of job {} is marked and nothing live covers it",
                    job.id
                )));
            }
        }
        Ok(())
    }

    /// After settling: no overlap within a group, no unfinished job.
    fn check_settled(&self) -> Result<(), CompactViolation> {
        let mut groups: BTreeMap<String, Vec<&BlockMeta>> = BTreeMap::new();
        for b in self.bucket.blocks.values().filter(|b| b.mark.is_none()) {
            let g = b
                .meta
                .external_labels()
                .get("group")
                .cloned()
                .unwrap_or_default();
            groups.entry(g).or_default().push(&b.meta);
        }
        for (g, mut metas) in groups {
            metas.sort_by_key(|m| (m.min_time, m.ulid));
            for pair in metas.windows(2) {
                if pair[1].min_time < pair[0].max_time {
                    let desc = |m: &BlockMeta| {
                        format!(
                            "{} [{}, {}) level {} sources {:?}",
                            m.ulid,
                            m.min_time,
                            m.max_time,
                            m.compaction.level,
                            m.compaction.sources
                        )
                    };
                    let jobs: Vec<String> = self
                        .state
                        .jobs
                        .values()
                        .filter(|j| {
                            j.spec.contains(&pair[0].ulid.to_string())
                                || j.spec.contains(&pair[1].ulid.to_string())
                        })
                        .map(|j| format!("{} {:?}", j.id, j.state))
                        .collect();
                    return Err(self.violation(format!(
                        "group {g}: blocks {} and {} overlap after settling; jobs {jobs:?}",
                        desc(pair[0]),
                        desc(pair[1])
                    )));
                }
            }
        }
        if let Some(j) = self.state.jobs.values().find(|j| {
            j.kind != storage::compact::jobs::KIND_SWEEP
                && !matches!(j.state, JobState::Done { .. })
        }) {
            return Err(self.violation(format!("job {} unfinished after settling", j.id)));
        }
        Ok(())
    }

    fn one_step(&mut self) {
        self.now += 1_000 + self.rng.below(4_000) as i64;
        let r = self.rng.below(100);
        match r {
            0..=9 if self.faults_on => self.ingest(),
            10..=24 => self.lead(),
            25..=27 if self.faults_on => {
                // A pause longer than a lease: the worker is deposed meanwhile.
                let w = self.rng.below(WORKERS as usize) as u64 + 1;
                let until = self.now + LEASE_MS + self.rng.below(60_000) as i64;
                if let Some(x) = self.workers.get_mut(&w) {
                    x.paused_until = until;
                }
            }
            28 if self.faults_on => {
                // A crash: the worker forgets its jobs; their leases lapse.
                let w = self.rng.below(WORKERS as usize) as u64 + 1;
                if let Some(x) = self.workers.get_mut(&w) {
                    x.jobs.clear();
                }
            }
            29 if self.faults_on => self.term += 1,
            _ => {
                let w = self.rng.below(WORKERS as usize) as u64 + 1;
                self.work(w);
            }
        }
        self.step += 1;
    }
}

/// Runs one seed: `steps` steps with faults and ingestion, then up to `settle` steps without
/// faults or ingestion until nothing but sweeps is left to do. Checks after every step.
pub fn run_compaction_seed(
    seed: u64,
    steps: usize,
    settle: usize,
) -> Result<CompactFigures, CompactViolation> {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.one_step();
        sim.check()?;
    }
    sim.faults_on = false;
    for w in sim.workers.values_mut() {
        w.paused_until = 0;
    }
    // Past every lease, so jobs of lost workers are reassigned; then work until quiet.
    sim.now += LEASE_MS;
    let mut quiet = 0;
    for _ in 0..settle {
        sim.one_step();
        sim.check()?;
        // Work is left while a plan over the true bucket holds a compaction, or a sweep with
        // blocks to mark (a duplicate output, unmarked sources).
        let compaction_left = plan_jobs(
            &sim.bucket.live_metas(),
            &BTreeSet::new(),
            &sim.in_flight(),
            &Sim::plan_config(),
            sim.now,
        )
        .iter()
        .any(|j| match j {
            JobSpec::Sweep {
                retention,
                superseded,
                ..
            } => !retention.is_empty() || !superseded.is_empty(),
            _ => true,
        });
        // Sweeps come every round for ever; settled means no other job is left.
        let unfinished = sim.state.jobs.values().any(|j| {
            j.kind != storage::compact::jobs::KIND_SWEEP
                && !matches!(j.state, JobState::Done { .. })
        });
        quiet = if compaction_left || unfinished {
            0
        } else {
            quiet + 1
        };
        if quiet >= 50 {
            break;
        }
    }
    sim.check_settled()?;
    sim.figures.final_blocks = sim.bucket.live_metas().len();
    Ok(sim.figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_identically() {
        // The same seed gives the same run, violation or not: a failing seed can be replayed.
        let a = run_compaction_seed(7, 150, 1500);
        let b = run_compaction_seed(7, 150, 1500);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let c = run_compaction_seed(8, 150, 1500);
        assert_ne!(format!("{a:?}"), format!("{c:?}"), "seeds differ");
    }
}
