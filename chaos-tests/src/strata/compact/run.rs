//! One tier-1 compaction run: nodes with only the compact role over the test bucket, formed
//! from `dns+peers`; the seeded nemesis strikes running jobs while the watcher records the job
//! table; after healing the run waits for the bucket to settle and judges it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::bucket::{GroupSamples, Live, TestBucket};
use super::check::{compacted, exact_samples, no_duplicate_output, no_overlap, LeasesExclusive};
use super::nemesis::{Applied, CompactFault, CompactNemesis, Reassign};
use super::watch::{watch, Views};
use crate::checker::leader::OneLeaderPerTerm;
use crate::checker::{CheckResult, Checker, Outcome, Report};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::history::History;
use crate::rng::Rng;
use crate::strata::node::NodeOptions;
use crate::strata::observer::targets;
use crate::strata::wait::wait_settled;

/// What a run does.
#[derive(Debug, Clone)]
pub struct CompactConfig {
    /// Nemesis seed (`TIER1_SEED`).
    pub seed: u64,
    /// How long the nemesis keeps striking (`TIER1_SECONDS`); at least one fault is applied.
    pub time_limit: Duration,
    /// The fault kinds (`TIER1_COMPACT_FAULTS`, comma-separated names).
    pub faults: Vec<CompactFault>,
    /// Hours of 2h blocks per group.
    pub hours: u32,
    /// The fault point holding every job open this long, so faults meet running jobs.
    pub job_delay: Duration,
    /// `--compact.job-lease`.
    pub lease: Duration,
    /// How long the bucket may take to settle after the last heal.
    pub settle_deadline: Duration,
}

impl CompactConfig {
    /// From the environment, with `default_secs` of nemesis; a malformed variable is an error.
    pub fn from_env(default_secs: u64) -> std::result::Result<CompactConfig, String> {
        let num = |name: &str| -> std::result::Result<Option<u64>, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?} is not a number")),
                Err(_) => Ok(None),
            }
        };
        let seed = num("TIER1_SEED")?.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000)
                .unwrap_or(1)
        });
        let faults = match std::env::var("TIER1_COMPACT_FAULTS") {
            Ok(list) => CompactFault::parse_list(&list)?,
            Err(_) => CompactFault::ALL.to_vec(),
        };
        if faults.is_empty() {
            return Err("TIER1_COMPACT_FAULTS names no fault".into());
        }
        Ok(CompactConfig {
            seed,
            time_limit: Duration::from_secs(num("TIER1_SECONDS")?.unwrap_or(default_secs)),
            faults,
            hours: 24,
            job_delay: Duration::from_secs(5),
            lease: Duration::from_secs(3),
            settle_deadline: Duration::from_secs(180),
        })
    }

    /// The node flags of the compact role over `bucket`.
    pub fn node_flags(&self, bucket: &TestBucket) -> Vec<String> {
        vec![
            "--role=compact".into(),
            "--objstore.config-file".into(),
            bucket.config_file.display().to_string(),
            "--consistency-delay=0s".into(),
            "--delete-delay=0s".into(),
            "--wait-interval=2s".into(),
            format!("--compact.job-lease={}ms", self.lease.as_millis()),
            "--compact.concurrency=1".into(),
            // The samples checker compares raw data; downsampling would add groups.
            "--downsampling.disable".into(),
        ]
    }
}

/// What a run saw.
#[derive(Debug)]
pub struct CompactOutcome {
    /// The checkers' verdicts.
    pub report: Report,
    /// The faults applied, in order.
    pub faults: Vec<Applied>,
    /// Live blocks per group before and after.
    pub blocks: (BTreeMap<String, usize>, BTreeMap<String, usize>),
    /// How long the bucket took to settle after the last heal (`None`: it did not).
    pub settled: Option<Duration>,
    /// The JSON-lines history.
    pub history: std::path::PathBuf,
}

impl CompactOutcome {
    /// One line per fault, then the block counts.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (i, a) in self.faults.iter().enumerate() {
            out.push_str(&format!(
                "fault {i}: {} on {} during {} ({}){}\n",
                a.kind.name(),
                a.victim,
                a.job,
                a.token,
                a.reassigned
                    .as_ref()
                    .map_or(String::new(), |r| format!(": {r:?}"))
            ));
        }
        out.push_str(&format!(
            "blocks per group before {:?}, after {:?}; settled {}",
            self.blocks.0,
            self.blocks.1,
            self.settled.map_or("never".into(), |d| format!(
                "{:.1}s after the last heal",
                d.as_secs_f64()
            ))
        ));
        out
    }
}

fn counts(live: &Live) -> BTreeMap<String, usize> {
    live.groups
        .iter()
        .map(|(g, m)| (g.clone(), m.len()))
        .collect()
}

async fn samples_of(bucket: &TestBucket, live: &Live) -> Result<BTreeMap<String, GroupSamples>> {
    let mut out = BTreeMap::new();
    for (g, metas) in &live.groups {
        out.insert(g.clone(), bucket.samples(metas).await?);
    }
    Ok(out)
}

/// Runs the faults on `cluster` (not started yet) whose bucket `bucket` already holds the
/// groups; `rt` is the runtime serving the bucket.
pub fn run(
    cluster: &mut Cluster,
    opts: &NodeOptions,
    bucket: &TestBucket,
    rt: &tokio::runtime::Handle,
    cfg: &CompactConfig,
) -> Result<CompactOutcome> {
    let before = rt.block_on(bucket.live())?;
    let want = rt.block_on(samples_of(bucket, &before))?;
    let mut opts = opts.clone();
    opts.extra.extend(cfg.node_flags(bucket));
    let delay = cfg.job_delay.as_millis().to_string();
    cluster.start_all(|n| {
        opts.command(n)
            .env("STRATA_FAILPOINT_COMPACT_JOB_DELAY_MS", delay.clone())
            .env("RUST_LOG", "info,openraft=warn")
    })?;
    let targets = targets(cluster);
    wait_settled(&targets, targets.len(), Duration::from_secs(90))?;
    let history_path = cluster.dir().join("history.jsonl");
    let history = History::with_file(&history_path)?;
    let views = Views::default();
    let stop = AtomicBool::new(false);
    let (faults, settled, after) = std::thread::scope(|s| -> Result<_> {
        let (t, h, v, st) = (&targets, &history, &views, &stop);
        s.spawn(move || watch(t, h, v, st));
        let result = strike_and_settle(cluster, &history, &views, bucket, rt, cfg);
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    let got = rt.block_on(samples_of(bucket, &after))?;
    let mut results: Vec<CheckResult> = vec![
        no_overlap(&after),
        no_duplicate_output(&after),
        exact_samples(&want, &got),
        compacted(&before, &after),
        LeasesExclusive.check(&history),
        OneLeaderPerTerm::default().check(&history),
        reassignments(&faults),
    ];
    results.push(CheckResult::new(
        "the bucket settles after healing",
        if settled.is_some() {
            Outcome::Valid
        } else {
            Outcome::Invalid
        },
        format!("{} partial uploads left", after.partial),
    ));
    Ok(CompactOutcome {
        report: Report { results },
        blocks: (counts(&before), counts(&after)),
        faults,
        settled,
        history: history_path,
    })
}

/// Runs the nemesis, then waits for the bucket to settle: the faults, how long settling took
/// after the last heal (`None`: it did not), and the last live state.
fn strike_and_settle(
    cluster: &mut Cluster,
    history: &History,
    views: &Views,
    bucket: &TestBucket,
    rt: &tokio::runtime::Handle,
    cfg: &CompactConfig,
) -> Result<(Vec<Applied>, Option<Duration>, Live)> {
    let mut nemesis = CompactNemesis {
        cluster,
        history,
        views,
        bucket: bucket.endpoint(),
        rng: Rng::new(cfg.seed),
        job_wait: Duration::from_secs(30),
    };
    let faults = nemesis.run(&cfg.faults, cfg.time_limit)?;
    let healed = Instant::now();
    let (live, settled) = wait_bucket_settled(bucket, rt, views, cfg.settle_deadline)?;
    Ok((faults, settled.then(|| healed.elapsed()), live))
}

/// Every killed or isolated worker's job went to another token (or had just finished).
fn reassignments(faults: &[Applied]) -> CheckResult {
    let name = "a struck worker's job is reassigned";
    let waited: Vec<&Applied> = faults.iter().filter(|a| a.reassigned.is_some()).collect();
    let details: Vec<String> = waited
        .iter()
        .filter(|a| a.reassigned == Some(Reassign::Never))
        .map(|a| {
            format!(
                "{} on {}: job {} ({}) never reassigned",
                a.kind.name(),
                a.victim,
                a.job,
                a.token
            )
        })
        .collect();
    let moved = waited
        .iter()
        .filter(|a| matches!(a.reassigned, Some(Reassign::To(_))))
        .count();
    let summary = format!("{} struck, {moved} reassigned", waited.len());
    if waited.is_empty() {
        return CheckResult::new(name, Outcome::Unknown, "no worker was struck");
    }
    CheckResult {
        details: details.clone(),
        ..CheckResult::new(
            name,
            if details.is_empty() {
                Outcome::Valid
            } else {
                Outcome::Invalid
            },
            summary,
        )
    }
}

/// Waits until the leader shows no unfinished compactor job and the live blocks stay the
/// same, free of overlap and duplicates, over three polls two sweeps apart; returns the last
/// state and whether it settled.
fn wait_bucket_settled(
    bucket: &TestBucket,
    rt: &tokio::runtime::Handle,
    views: &Views,
    deadline: Duration,
) -> Result<(Live, bool)> {
    let started = Instant::now();
    let mut stable = 0;
    let mut last: Option<Vec<ulid::Ulid>> = None;
    loop {
        let live = match rt.block_on(bucket.live()) {
            Ok(l) => l,
            // A listing can race a deletion (meta.json gone between list and get).
            Err(Error::Bucket(_)) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(e) => return Err(e),
        };
        let clean = no_overlap(&live).outcome == Outcome::Valid
            && no_duplicate_output(&live).outcome == Outcome::Valid;
        let ids = live.ids();
        if clean && views.idle(Duration::from_secs(2)) && last.as_ref() == Some(&ids) {
            stable += 1;
        } else {
            stable = 0;
        }
        if stable >= 3 {
            return Ok((live, true));
        }
        if started.elapsed() >= deadline {
            return Ok((live, false));
        }
        last = Some(ids);
        std::thread::sleep(Duration::from_secs(2));
    }
}
