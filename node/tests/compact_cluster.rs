//! Coordinated compaction with real processes: three `strata node --role compact` over one
//! FILESYSTEM bucket holding two groups. The worker of a running job is killed (SIGKILL); the
//! job must be reassigned, and after settling no group has overlapping blocks, no duplicate
//! output survives, and each group keeps exactly its samples.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_common;

use cluster_common::{run_strata, wait_for, Cluster};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use storage::block::BlockMeta;

/// Live (unmarked) blocks per group (the `cluster` external label), with meta.
fn live_by_group(bucket: &Path) -> BTreeMap<String, Vec<BlockMeta>> {
    let mut out: BTreeMap<String, Vec<BlockMeta>> = BTreeMap::new();
    for e in std::fs::read_dir(bucket).unwrap() {
        let p = e.unwrap().path();
        if !p.join("meta.json").exists() || p.join("deletion-mark.json").exists() {
            continue;
        }
        let Ok(m) = BlockMeta::read_from_dir(&p) else {
            continue;
        };
        let g = m
            .external_labels()
            .get("cluster")
            .cloned()
            .unwrap_or_default();
        out.entry(g).or_default().push(m);
    }
    for v in out.values_mut() {
        v.sort_by_key(|m| (m.min_time, m.ulid));
    }
    out
}

fn samples(metas: &[BlockMeta]) -> u64 {
    metas.iter().map(|m| m.stats.num_samples).sum()
}

fn settled(groups: &BTreeMap<String, Vec<BlockMeta>>) -> bool {
    groups.values().all(|metas| {
        let no_overlap = metas.windows(2).all(|p| p[1].min_time >= p[0].max_time);
        // 24 hours of 2h blocks (13 of them) span four 8h ranges: the oldest may hold one block
        // alone (left as is), the middle two compact to one block each, and the newest range,
        // still filling, keeps up to five; how many depends on the hour the test runs.
        no_overlap && metas.len() <= 8 && metas.iter().any(|m| m.compaction.level > 1)
    })
}

fn jobs(status: &Value) -> Vec<Value> {
    status["jobs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_killed_workers_job_is_reassigned_and_groups_keep_exactly_their_samples() {
    let mut c = Cluster::new(3);
    let bucket = c.dir.path().join("bucket");
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    let gen_dir = c.dir.path().join("gen");
    let gd = format!("--data-dir={}", gen_dir.display());
    for cluster in ["a", "b"] {
        let label = format!("--label=cluster=\"{cluster}\"");
        let out = run_strata(&[
            "tools",
            "bucket",
            "generate",
            &objstore,
            &gd,
            "--hours",
            "24",
            "--instances",
            "1",
            &label,
        ]);
        assert!(out.status.success(), "generate: {out:?}");
    }
    let before = live_by_group(&bucket);
    assert_eq!(before.len(), 2, "two groups: {:?}", before.keys());
    let want: BTreeMap<String, u64> = before
        .iter()
        .map(|(g, m)| (g.clone(), samples(m)))
        .collect();

    // Every job takes at least 3 s, so a running one can be caught and its worker killed.
    std::env::set_var("STRATA_FAILPOINT_COMPACT_JOB_DELAY_MS", "3000");
    let flags = [
        objstore.as_str(),
        "--role=compact",
        "--consistency-delay=0s",
        "--delete-delay=0s",
        "--wait-interval=2s",
        "--compact.job-lease=3s",
        "--compact.concurrency=1",
    ];
    for i in 0..3 {
        c.start(i, &flags);
    }
    let all = [0, 1, 2];
    c.wait_for_agreement(&all, 3, Duration::from_secs(60));

    // A compaction job assigned to a node: kill that node.
    let (job_id, owner) = wait_for(Duration::from_secs(60), "a running compaction job", || {
        let s = c.nodes.iter().find_map(|n| n.status())?;
        jobs(&s).into_iter().find_map(|j| {
            (j["kind"] == "compact" && j["state"] == "assigned")
                .then(|| {
                    (
                        j["id"].as_str().unwrap_or_default().to_string(),
                        j["owner"].as_u64(),
                    )
                })
                .and_then(|(id, o)| o.map(|o| (id, o)))
        })
    });
    let victim = c.index_of(owner).expect("owner is a node");
    c.nodes[victim].kill();
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != victim).collect();
    eprintln!("killed node {owner} (index {victim}) while it ran {job_id}");

    // The job is reassigned to a survivor and finished there.
    let node_of = |s: &Value| -> Option<u64> {
        jobs(s)
            .into_iter()
            .find(|j| j["id"] == job_id.as_str())
            .and_then(|j| {
                (j["state"] == "done" && j["attempts"].as_u64() >= Some(2))
                    .then(|| j["owner"].as_u64())
                    .flatten()
            })
    };
    let finisher = wait_for(
        Duration::from_secs(90),
        "the killed worker's job done elsewhere",
        || {
            let s = survivors.iter().find_map(|i| c.nodes[*i].status())?;
            node_of(&s)
        },
    );
    assert_ne!(finisher, owner, "the job was finished by a survivor");

    // Settling: no overlap, compacted, and every group's samples exactly as before.
    wait_for(Duration::from_secs(180), "compaction to settle", || {
        let groups = live_by_group(&bucket);
        (settled(&groups) && groups.iter().all(|(g, m)| want.get(g) == Some(&samples(m))))
            .then_some(())
    });
    let after = live_by_group(&bucket);
    for (g, metas) in &after {
        // No duplicate output: no two live blocks share their sources.
        let mut sources: Vec<_> = metas.iter().map(|m| m.compaction.sources.clone()).collect();
        sources.sort();
        sources.dedup();
        assert_eq!(
            sources.len(),
            metas.len(),
            "group {g} holds duplicate outputs"
        );
    }
    let text = run_strata(&[
        "cluster",
        "status",
        "--http-address",
        &c.nodes[survivors[0]].http,
    ]);
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(
        table.contains("JOBS") && table.contains("compact:"),
        "{table}"
    );
}
