use super::*;
use crate::bucket::Bucket;
use crate::compact::index::BUCKET_INDEX_FILENAME;
use crate::compact::jobs::{JobResult, KIND_COMPACT};
use crate::compact::planner::DEFAULT_RANGES;
use crate::compact::retention::Retention;
use crate::compact::testutil::{bucket, put_block, samples, series_labels, Series};
use crate::compact::CompactorConfig;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::Arc;

const H: i64 = 3_600_000;
const PERIOD: i64 = 60_000;
const MAX_AGE: i64 = 3_600_000;

fn compactor(b: &Arc<dyn Bucket>, scratch: &std::path::Path) -> Compactor {
    Compactor::new(
        b.clone(),
        CompactorConfig {
            downsample: false,
            scratch_dir: scratch.join("compact"),
            consistency_delay_ms: 0,
            delete_delay_ms: 48 * H,
            retention: Retention::default(),
            concurrency: 2,
            replica_labels: Vec::new(),
            ranges: DEFAULT_RANGES.to_vec(),
            partial_upload_threshold_ms: crate::compact::cleaner::PARTIAL_UPLOAD_THRESHOLD_MS,
        },
    )
}

fn two_hours(k: i64) -> Vec<Series> {
    (0..2)
        .map(|i| (series_labels("up", i), samples(k * 2 * H, 60, 120_000)))
        .collect()
}

/// `n` consecutive 2h blocks in each of two groups.
async fn two_groups(b: &dyn Bucket, n: i64) {
    for group in ["a", "b"] {
        for k in 0..n {
            put_block(b, two_hours(k), k * 2 * H, (k + 1) * 2 * H, &[("g", group)]).await;
        }
    }
}

fn compactions(jobs: &[JobSpec]) -> Vec<BTreeSet<Ulid>> {
    jobs.iter()
        .filter_map(|j| match j {
            JobSpec::Compact { sources, .. } => Some(sources.iter().copied().collect()),
            _ => None,
        })
        .collect()
}

/// The leader's loop without its Raft half: plan, run every compaction, commit it (its output
/// joins `committed`), mark its sources; sweeps are not run, so only the planner's refresh
/// keeps the bucket index current.
#[tokio::test]
async fn no_compaction_is_planned_twice_when_the_index_predates_committed_jobs() {
    let b = bucket();
    two_groups(b.as_ref(), 9).await;
    let tmp = tempfile::tempdir().unwrap();
    let c = compactor(&b, tmp.path());
    let mut in_flight = InFlight::default();
    let mut planned: BTreeSet<BTreeSet<Ulid>> = BTreeSet::new();
    let mut views = Vec::new();
    let mut stale_index = None;
    for round in 0.. {
        assert!(
            round < 20,
            "did not settle: views {views:?}, planned {planned:?}"
        );
        let plan = c.plan_jobs(&in_flight, PERIOD, MAX_AGE).await.unwrap();
        views.push(plan.view);
        assert!(plan.gone.is_empty(), "{:?}", plan.gone);
        let merges = compactions(&plan.jobs);
        if merges.is_empty() {
            break;
        }
        if stale_index.is_none() {
            stale_index = Some(b.get(BUCKET_INDEX_FILENAME).await.unwrap());
        }
        for spec in plan.jobs.iter().filter(|j| j.kind() == KIND_COMPACT) {
            let JobSpec::Compact { sources, .. } = spec else {
                unreachable!()
            };
            let sources: BTreeSet<Ulid> = sources.iter().copied().collect();
            assert!(
                planned.insert(sources.clone()),
                "round {round}: sources {sources:?} planned again"
            );
            let (result, _) = c.run_job(spec, &format!("r{round}")).await.unwrap();
            assert_eq!(result.status, JobResult::DONE, "{result:?}");
            in_flight.committed.extend(result.output);
            c.finish_job(spec, &result).await;
        }
    }
    // Each group: blocks 0-3 and 4-7 merged to 8h (block 8, the newest, waits).
    assert_eq!(planned.len(), 4, "{planned:?}");
    assert_eq!(views[0], PlanView::Fallback(FallbackReason::Missing));
    // Every plan after a commit found the index behind and refreshed it.
    assert!(
        views[1..].iter().all(|v| *v == PlanView::Refreshed),
        "{views:?}"
    );
    // Nothing committed since the last refresh: the index is believed as it is.
    let settled = c.plan_jobs(&in_flight, PERIOD, MAX_AGE).await.unwrap();
    assert_eq!(settled.view, PlanView::Index);
    assert!(compactions(&settled.jobs).is_empty(), "{:?}", settled.jobs);

    // The hazard the refresh avoids: an index written before the first merges, believed
    // without the job table's knowledge, plans a finished merge again.
    let stale = stale_index.expect("an index existed before the first merge");
    b.put(BUCKET_INDEX_FILENAME, stale).await.unwrap();
    let blind = c
        .plan_jobs(&InFlight::default(), PERIOD, MAX_AGE)
        .await
        .unwrap();
    assert_eq!(blind.view, PlanView::Index);
    assert!(
        compactions(&blind.jobs).iter().any(|s| planned.contains(s)),
        "{:?}",
        blind.jobs
    );
    let informed = c.plan_jobs(&in_flight, PERIOD, MAX_AGE).await.unwrap();
    assert_eq!(informed.view, PlanView::Refreshed);
    assert!(
        compactions(&informed.jobs).is_empty(),
        "{:?}",
        informed.jobs
    );
}

#[tokio::test]
async fn a_stale_or_corrupt_index_is_replaced_from_a_listing() {
    let b = bucket();
    two_groups(b.as_ref(), 2).await;
    let tmp = tempfile::tempdir().unwrap();
    let c = compactor(&b, tmp.path());
    b.put(BUCKET_INDEX_FILENAME, Bytes::from_static(b"junk"))
        .await
        .unwrap();
    let plan = c
        .plan_jobs(&InFlight::default(), PERIOD, MAX_AGE)
        .await
        .unwrap();
    assert_eq!(plan.view, PlanView::Fallback(FallbackReason::Corrupt));
    let index = read_index(b.as_ref()).await.unwrap().expect("rewritten");
    assert_eq!(index.blocks.len(), 4);
    // An hour and more later by the compactor's clock the same index is too old.
    let later = (c.clock)() + MAX_AGE + 1_000;
    let c = c.with_clock(Arc::new(move || later));
    let plan = c
        .plan_jobs(&InFlight::default(), PERIOD, MAX_AGE)
        .await
        .unwrap();
    assert_eq!(plan.view, PlanView::Fallback(FallbackReason::Stale));
    let plan = c
        .plan_jobs(&InFlight::default(), PERIOD, MAX_AGE)
        .await
        .unwrap();
    assert_eq!(plan.view, PlanView::Index);
    // A committed output that no longer exists is reported gone, not expected for ever.
    let expecting = InFlight {
        committed: [Ulid(42)].into(),
        ..InFlight::default()
    };
    let plan = c.plan_jobs(&expecting, PERIOD, MAX_AGE).await.unwrap();
    assert_eq!(plan.view, PlanView::Refreshed);
    assert_eq!(plan.gone, [Ulid(42)].into());
}
