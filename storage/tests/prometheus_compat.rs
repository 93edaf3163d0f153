//! Compatibility with real Prometheus 2.42: blocks made by promtool and by a running Prometheus
//! read identically to `promtool tsdb dump`; blocks Strata writes are byte-identical to
//! promtool's, pass `promtool tsdb analyze`, and are served by Prometheus with exactly the
//! samples written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use storage::block::cut::DEFAULT_CHUNK_RANGE_MS;
use storage::block::{write_block, Block, BlockWriterOptions};
use storage::labels::Labels;
use storage::testing::prometheus::{
    block_dirs, create_blocks_from_openmetrics, parse_go_float, promtool_analyze, promtool_dump,
};
use storage::testing::{promtool_available, write_openmetrics, PrometheusServer};

type Series = Vec<(Labels, Vec<(i64, f64)>)>;

/// 2023-11-14T20:00:00Z, a multiple of 2h, so promtool keeps one window in one block.
const ALIGNED_START: i64 = 1_699_992_000_000;

fn skip_without_prometheus() -> bool {
    if promtool_available() {
        return false;
    }
    eprintln!("SKIPPED: promtool/prometheus not on PATH (bash .ci/run installs them)");
    true
}

/// Counters, gauges with awkward floats, and a sparse series, 15 s apart.
fn sample_series(start: i64, points: i64) -> Series {
    let mut out = Vec::new();
    for i in 0..6 {
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("code", if i % 2 == 0 { "200" } else { "500" }),
            ("instance", &format!("host-{i}:9100")),
            ("job", "api"),
        ]);
        let mut total = 0.0;
        let samples = (0..points)
            .map(|k| {
                total += ((k * 7 + i) % 5) as f64;
                (start + k * 15_000, total)
            })
            .collect();
        out.push((labels, samples));
    }
    for i in 0..4 {
        let labels = Labels::from_pairs([
            ("__name__", "temperature_celsius"),
            ("room", &format!("r{i}")),
        ]);
        let samples = (0..points)
            .map(|k| {
                (
                    start + k * 15_000,
                    20.0 + (k as f64 * 0.1 + i as f64).sin() * 3.3e-3,
                )
            })
            .collect();
        out.push((labels, samples));
    }
    let sparse = (0..points / 10)
        .map(|k| {
            (
                start + k * 150_000 + 1,
                if k % 3 == 0 { 1e21 } else { -0.5 },
            )
        })
        .collect();
    out.push((Labels::from_pairs([("__name__", "batch_last_run")]), sparse));
    out
}

/// Samples by series label string, merged across blocks and sorted by time.
type ByLabels = BTreeMap<String, Vec<(i64, f64)>>;

async fn add_block(out: &mut ByLabels, block: &Block) {
    for s in block.all_series().await.expect("read block") {
        out.entry(s.labels.to_string())
            .or_default()
            .extend(s.samples);
    }
    for v in out.values_mut() {
        v.sort_by_key(|s| s.0);
    }
}

async fn read_all(dir: &Path) -> ByLabels {
    let mut out = ByLabels::new();
    for block_dir in block_dirs(dir).expect("list blocks") {
        add_block(
            &mut out,
            &Block::open_dir(&block_dir).await.expect("open block"),
        )
        .await;
    }
    out
}

fn assert_same_samples(ours: &ByLabels, theirs: &ByLabels) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "series differ"
    );
    for (series, want) in theirs {
        let got = &ours[series];
        assert_eq!(got.len(), want.len(), "{series}: sample count");
        for (g, w) in got.iter().zip(want) {
            let same = g.0 == w.0 && (g.1 == w.1 || (g.1.is_nan() && w.1.is_nan()));
            assert!(same, "{series}: Strata read {g:?}, promtool dumped {w:?}");
        }
    }
}

fn to_map(series: &Series) -> ByLabels {
    series
        .iter()
        .map(|(l, s)| (l.to_string(), s.clone()))
        .collect()
}

#[tokio::test]
async fn reads_promtool_blocks_like_promtool_dump() {
    if skip_without_prometheus() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 6 h from an odd hour: promtool cuts four 2h-aligned blocks.
    let series = sample_series(ALIGNED_START + 3_600_000, 6 * 240);
    let om = tmp.path().join("data.om");
    write_openmetrics(&om, &series).unwrap();
    let data = tmp.path().join("data");
    let blocks = create_blocks_from_openmetrics(&om, &data).unwrap();
    assert!(blocks.len() >= 3, "expected several blocks, got {blocks:?}");

    let ours = read_all(&data).await;
    let theirs = promtool_dump(&data).unwrap();
    assert_same_samples(&ours, &theirs);
    assert_same_samples(&ours, &to_map(&series));
}

#[tokio::test]
async fn writes_blocks_byte_identical_to_promtool() {
    if skip_without_prometheus() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let series = sample_series(ALIGNED_START + 60_000, 400);
    let om = tmp.path().join("data.om");
    write_openmetrics(&om, &series).unwrap();
    let theirs = create_blocks_from_openmetrics(&om, &tmp.path().join("promtool")).unwrap();
    assert_eq!(theirs.len(), 1, "test data must fit one 2h block");

    // promtool's backfill gives its head a chunk range of twice the 2h block duration.
    let options = BlockWriterOptions {
        chunk_range_ms: 2 * DEFAULT_CHUNK_RANGE_MS,
        ..BlockWriterOptions::default()
    };
    let (ours, meta) =
        write_block(&tmp.path().join("strata"), series.clone(), None, options).unwrap();
    for file in ["chunks/000001", "index", "tombstones"] {
        let a = std::fs::read(ours.join(file)).unwrap();
        let b = std::fs::read(theirs[0].join(file)).unwrap();
        assert!(
            a == b,
            "{file} differs: Strata {} bytes, promtool {} bytes",
            a.len(),
            b.len()
        );
    }
    let their_meta = storage::block::BlockMeta::read_from_dir(&theirs[0]).unwrap();
    assert_eq!(meta.stats, their_meta.stats);
    assert_eq!(
        (meta.min_time, meta.max_time),
        (their_meta.min_time, their_meta.max_time)
    );
}

#[tokio::test]
async fn prometheus_serves_a_strata_block_with_exactly_its_samples() {
    if skip_without_prometheus() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Recent data, so Prometheus' retention and head never interfere.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = (now - 6 * 3_600_000) / 7_200_000 * 7_200_000;
    let series = sample_series(start, 240);
    let (dir, meta) =
        write_block(&data, series.clone(), None, BlockWriterOptions::default()).unwrap();
    let analyze = promtool_analyze(&data, &meta.ulid.to_string()).unwrap();
    assert!(
        analyze.contains(&format!("Block ID: {}", meta.ulid)),
        "{analyze}"
    );
    assert!(
        analyze.contains(&format!("Series: {}", series.len())),
        "{analyze}"
    );
    assert!(dir.exists());

    let server = PrometheusServer::start(&data, &["--storage.tsdb.retention.time=100y"]).unwrap();
    for (labels, samples) in &series {
        let selector = labels.to_string().replace(", ", ",");
        let selector = match labels.get("__name__") {
            Some(name) => selector
                .replacen(&format!("__name__={name:?}"), "", 1)
                .replacen("{,", "{", 1),
            None => selector,
        };
        let name = labels.get("__name__").unwrap_or_default();
        let (first, last) = (samples[0].0, samples[samples.len() - 1].0);
        // One step per sample instant of the dense series; lookback picks the exact sample.
        let q = format!("{name}{selector}");
        let body = server
            .query_range(&q, first as f64 / 1000.0, last as f64 / 1000.0, 15.0)
            .unwrap();
        assert_eq!(body["status"], "success", "{q}: {body}");
        let result = body["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 1, "{q}: {body}");
        let values = result[0]["values"].as_array().unwrap();
        let got: Vec<(i64, f64)> = values
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, parse_go_float(p[1].as_str().unwrap()).unwrap())
            })
            .collect();
        if name == "batch_last_run" {
            // Sparse: every step within 5m of a sample reports that sample's value.
            for (t, v) in &got {
                let (_, want) = samples.iter().rev().find(|s| s.0 <= *t).unwrap();
                assert_eq!(v, want, "{q} at {t}");
            }
        } else {
            assert_eq!(&got, samples, "{q}");
        }
    }
}

#[tokio::test]
async fn reads_blocks_cut_by_a_running_prometheus() {
    if skip_without_prometheus() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("prom");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = PrometheusServer::start(
        &data,
        &[
            "--storage.tsdb.min-block-duration=30s",
            "--storage.tsdb.max-block-duration=30s",
        ],
    )
    .unwrap();
    // The head is cut into a block once it spans 1.5 block ranges: about a minute here.
    server
        .wait_until("two persisted blocks", Duration::from_secs(240), |s| {
            Ok(block_dirs(&s.data_dir)
                .map(|d| d.len() >= 2)
                .unwrap_or(false))
        })
        .unwrap();
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for block in block_dirs(&data).unwrap() {
        copy_dir(&block, &copy.join(block.file_name().unwrap())).unwrap();
    }
    drop(server);

    let ours = read_all(&copy).await;
    let theirs = promtool_dump(&copy).unwrap();
    assert!(!theirs.is_empty());
    assert!(
        theirs.keys().any(|k| k.contains("prometheus_build_info")),
        "self-scrape series expected"
    );
    assert_same_samples(&ours, &theirs);
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The value of a bucket operation counter in `registry`.
fn operations(registry: &prometheus::Registry, op: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "strata_objstore_bucket_operations_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "operation" && l.value() == op)
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test]
async fn reads_promtool_blocks_from_s3_by_range_reads() {
    if skip_without_prometheus() {
        return;
    }
    use storage::bucket::{blocks, open_bucket, BucketConfig, BucketMetrics, BucketOptions};
    let tmp = tempfile::tempdir().unwrap();
    let series = sample_series(ALIGNED_START + 3_600_000, 3 * 240);
    let om = tmp.path().join("data.om");
    write_openmetrics(&om, &series).unwrap();
    let data = tmp.path().join("data");
    let dirs = create_blocks_from_openmetrics(&om, &data).unwrap();

    let s3 = storage::testing::S3Server::start().await.unwrap();
    let config =
        BucketConfig::parse(&s3.yaml(storage::testing::s3::SECRET_KEY, ""), "test").unwrap();
    let registry = prometheus::Registry::new();
    let metrics = BucketMetrics::register(&registry).unwrap();
    let bucket = open_bucket(&config, &BucketOptions::default(), &metrics).unwrap();
    for dir in &dirs {
        let meta = storage::block::BlockMeta::read_from_dir(dir).unwrap();
        blocks::upload_block(bucket.as_ref(), dir, &meta, None)
            .await
            .unwrap();
    }
    let gets_before = operations(&registry, "get");
    let fetched = blocks::fetch_metas(bucket.as_ref()).await.unwrap();
    assert_eq!(fetched.metas.len(), dirs.len());
    let mut ours: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for meta in fetched.metas.into_values() {
        let block = Block::open_bucket(bucket.clone(), meta).await.unwrap();
        for s in block.all_series().await.unwrap() {
            ours.entry(s.labels.to_string())
                .or_default()
                .extend(s.samples);
        }
    }
    for v in ours.values_mut() {
        v.sort_by_key(|s| s.0);
    }
    assert_same_samples(&ours, &promtool_dump(&data).unwrap());
    // Whole-object reads are the meta.json files only; index and chunks come by range reads.
    assert_eq!(
        operations(&registry, "get") - gets_before,
        dirs.len() as f64
    );
    assert!(operations(&registry, "get_range") > 0.0);
}
