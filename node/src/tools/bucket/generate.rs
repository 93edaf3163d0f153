//! `strata tools bucket generate`: node-exporter-like demo data written as 2h blocks into the
//! bucket, so a newcomer has something to inspect and query; with `--compact`, then one pass of
//! the compactor (`storage::compact`, as `strata compact` runs it) so that the bucket also holds
//! compacted (8h, 2d) and 5m-downsampled blocks.

use super::upload::parse_labels;
use crate::flags::ObjstoreFlags;
use crate::progress;
use anyhow::Context as _;
use std::process::ExitCode;
use storage::block::meta::ThanosMeta;
use storage::block::{BlockWriter, BlockWriterOptions};
use storage::bucket::Bucket;
use storage::compact::planner::DEFAULT_RANGES;
use storage::compact::retention::Retention;
use storage::compact::{Compactor, CompactorConfig};
use storage::labels::Labels;
use ulid::Ulid;

const BLOCK_MS: i64 = 2 * 3600 * 1000;
const SCRAPE_MS: i64 = 15_000;

/// Options of the generator.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Hours of data, ending at the last 2h boundary before now (default: a week).
    #[arg(long, default_value_t = 168)]
    pub hours: i64,
    /// Number of simulated hosts; each has about 30 series.
    #[arg(long, default_value_t = 10)]
    pub instances: usize,
    /// External labels of the generated blocks, as name="value" (repeatable).
    #[arg(long = "label", default_values_t = ["cluster=\"demo\"".to_string(), "replica=\"A\"".to_string()])]
    pub labels: Vec<String>,
    /// After writing, run one compaction and downsampling pass over the bucket (Thanos'
    /// levels; raw blocks spanning 40 h or more get a 5m copy), with no consistency or delete
    /// delay: the 2h sources of each compacted block are deleted at once.
    #[arg(long)]
    pub compact: bool,
}

/// One synthetic series: labels and a value function of the sample index.
struct Synth {
    labels: Labels,
    value: Box<dyn Fn(i64) -> f64 + Send>,
}

fn synth_series(instances: usize) -> Vec<Synth> {
    let mut out = Vec::new();
    for i in 0..instances {
        let inst = format!("host-{i:02}:9100");
        let base = |name: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("__name__", name),
                ("instance", inst.as_str()),
                ("job", "node"),
            ];
            pairs.extend_from_slice(extra);
            Labels::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        };
        let seed = i as f64;
        for cpu in ["0", "1"] {
            for (m, mode) in ["idle", "user", "system", "iowait"].iter().enumerate() {
                let rate = [0.7, 0.2, 0.08, 0.02][m] * (1.0 + seed * 0.01);
                out.push(Synth {
                    labels: base("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)]),
                    value: Box::new(move |k| (k as f64 * 15.0 * rate * 100.0).round() / 100.0),
                });
            }
        }
        out.push(Synth {
            labels: base("node_memory_MemAvailable_bytes", &[]),
            value: Box::new(move |k| 4e9 + 1e9 * ((k as f64) / 240.0 + seed).sin()),
        });
        out.push(Synth {
            labels: base("node_load1", &[]),
            value: Box::new(move |k| (1.0 + ((k as f64) / 60.0 + seed).sin()).max(0.0)),
        });
        for dev in ["eth0", "lo"] {
            let speed = if dev == "lo" {
                1000.0
            } else {
                125_000.0 + seed * 1000.0
            };
            out.push(Synth {
                labels: base("node_network_receive_bytes_total", &[("device", dev)]),
                value: Box::new(move |k| (k as f64 * 15.0 * speed).floor()),
            });
        }
        let bounds = [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
        ];
        for (b, le) in bounds.iter().enumerate() {
            let share = ((b + 1) as f64 / bounds.len() as f64).powf(0.3);
            out.push(Synth {
                labels: base("http_request_duration_seconds_bucket", &[("le", le)]),
                value: Box::new(move |k| (k as f64 * 10.0 * share).floor()),
            });
        }
        out.push(Synth {
            labels: base("up", &[]),
            value: Box::new(|_| 1.0),
        });
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// Writes the demo blocks into a scratch directory and uploads them.
pub async fn run(objstore: &ObjstoreFlags, args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let labels = parse_labels(&args.labels)?;
    let bucket = objstore.open()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis() as i64;
    // Data runs up to now, so that queries at the current time find it; blocks are cut at 2h
    // boundaries like Prometheus' and the newest one is partial.
    let end = now / SCRAPE_MS * SCRAPE_MS;
    let start = (end - args.hours.max(1) * 3_600_000) / BLOCK_MS * BLOCK_MS;
    let series = synth_series(args.instances);
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let bar = progress::items(((end - start) / BLOCK_MS + 1) as u64, "writing blocks");
    let mut written = 0;
    for block_start in (start..=end).step_by(BLOCK_MS as usize) {
        let first_k = (block_start - start) / SCRAPE_MS;
        let thanos = ThanosMeta {
            version: 1,
            labels: labels.clone(),
            source: "bucket.generate".into(),
            ..ThanosMeta::default()
        };
        let mut writer =
            BlockWriter::new(scratch.path(), Ulid::new(), BlockWriterOptions::default())?;
        for s in &series {
            let samples: Vec<(i64, f64)> = (0..BLOCK_MS / SCRAPE_MS)
                .map(|j| (block_start + j * SCRAPE_MS, (s.value)(first_k + j)))
                .take_while(|&(t, _)| t <= end)
                .collect();
            writer.add_series(s.labels.clone(), &samples)?;
        }
        // Full blocks span their whole 2h range, as Prometheus' head blocks do.
        let block_end = (block_start + BLOCK_MS).min(end + 1);
        let (dir, meta) = writer.finish(Some(thanos), Some((block_start, block_end)))?;
        storage::bucket::blocks::upload_block(bucket.as_ref(), &dir, &meta, None).await?;
        std::fs::remove_dir_all(&dir)?;
        written += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "wrote {written} block(s) of {} series ({} h at 15 s) into {}",
        series.len(),
        (end - start) / 3_600_000,
        bucket.describe()
    );
    if args.compact {
        compact(bucket, scratch.path()).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One compaction pass over the freshly written blocks, with a progress bar on a terminal.
async fn compact(
    bucket: std::sync::Arc<dyn Bucket>,
    scratch: &std::path::Path,
) -> anyhow::Result<()> {
    let config = CompactorConfig {
        scratch_dir: scratch.join("compact"),
        // The blocks were just written by this process: nothing is still uploading.
        consistency_delay_ms: 0,
        // Nobody reads the sources yet, so they can go at once instead of doubling the demo.
        delete_delay_ms: 0,
        retention: Retention {
            raw_ms: 0,
            five_m_ms: 0,
            one_h_ms: 0,
        },
        concurrency: 1,
        replica_labels: Vec::new(),
        ranges: DEFAULT_RANGES.to_vec(),
        partial_upload_threshold_ms: storage::compact::cleaner::PARTIAL_UPLOAD_THRESHOLD_MS,
        downsample: true,
    };
    let bar = progress::items(0, "compacting groups");
    let progress_bar = bar.clone();
    let compactor =
        Compactor::new(bucket, config).with_progress(std::sync::Arc::new(move |done, total| {
            progress_bar.set_length(total as u64);
            progress_bar.set_position(done as u64);
        }));
    let report = compactor
        .run_pass()
        .await
        .context("compacting the demo blocks")?;
    bar.finish_and_clear();
    if report.failed_compactions > 0 || report.downsample_failures > 0 {
        anyhow::bail!(
            "compacting the demo blocks: {} compaction(s) and {} downsampling(s) failed (see the log)",
            report.failed_compactions,
            report.downsample_failures
        );
    }
    println!(
        "compacted {} block(s) into {} and wrote {} downsampled block(s)",
        report.blocks_compacted, report.compactions, report.downsampled
    );
    Ok(())
}
