//! Flags of `strata compact`, with Thanos' names and defaults.

use crate::flags::{parse_duration, ObjstoreFlags};
use std::path::Path;
use std::time::Duration;
use storage::compact::planner::DEFAULT_RANGES;
use storage::compact::retention::Retention;
use storage::compact::CompactorConfig;

/// Flags of `strata compact`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    /// Bucket flags; `--data-dir` also holds the scratch space (`<data-dir>/compact`).
    #[command(flatten)]
    pub objstore: ObjstoreFlags,
    /// Listen host:port for HTTP: probes and metrics.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: String,
    /// Keep running: a pass every --wait-interval. Without it, one pass and exit.
    #[arg(short = 'w', long = "wait")]
    pub wait: bool,
    /// What to compact and how (shared with `strata node --role compact`).
    #[command(flatten)]
    pub compact: CompactFlags,
}

/// The compactor's flags shared by `strata compact` and `strata node --role compact`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactFlags {
    /// Time between passes with --wait (under `strata node`: between the leader's plans when
    /// no job finished meanwhile, and the period of the sweep job).
    #[arg(long = "wait-interval", default_value = "5m", value_parser = parse_duration)]
    pub wait_interval: Duration,
    /// Blocks younger than this (by ULID time) are left alone, so uploads and an eventually
    /// consistent bucket have settled; the compactor's own outputs are exempt.
    #[arg(long = "consistency-delay", default_value = "30m", value_parser = parse_duration)]
    pub consistency_delay: Duration,
    /// Time between marking a block for deletion and deleting it (0 deletes at once).
    #[arg(long = "delete-delay", default_value = "48h", value_parser = parse_duration)]
    pub delete_delay: Duration,
    /// How long raw blocks are kept; 0d keeps them forever.
    #[arg(long = "retention.resolution-raw", default_value = "0d", value_parser = parse_duration)]
    pub retention_raw: Duration,
    /// How long 5m-downsampled blocks are kept; 0d keeps them forever.
    #[arg(long = "retention.resolution-5m", default_value = "0d", value_parser = parse_duration)]
    pub retention_5m: Duration,
    /// How long 1h-downsampled blocks are kept; 0d keeps them forever.
    #[arg(long = "retention.resolution-1h", default_value = "0d", value_parser = parse_duration)]
    pub retention_1h: Duration,
    /// Disable downsampling (by default each pass downsamples raw blocks spanning 40 h to
    /// 5m and 5m blocks spanning 10 d to 1h after compacting).
    #[arg(long = "downsampling.disable")]
    pub downsampling_disable: bool,
    /// Groups compacted at the same time (under `strata node`: jobs run at once per node).
    #[arg(long = "compact.concurrency", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// External label telling HA replicas apart: blocks equal without it form one group, and
    /// their overlapping blocks are merged with replica deduplication (penalty algorithm).
    /// Repeatable.
    #[arg(
        id = "dedup_replica_labels",
        long = "deduplication.replica-label",
        value_name = "LABEL"
    )]
    pub replica_labels: Vec<String>,
    /// Under `strata node`: how long a job's assignment lasts unless its worker renews it
    /// (every third of it); a job whose worker is lost is reassigned after this.
    #[arg(long = "compact.job-lease", default_value = "30s", value_parser = parse_duration)]
    pub job_lease: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl CompactArgs {
    /// The library's configuration from the flags.
    pub fn config(&self) -> CompactorConfig {
        self.compact.config(&self.objstore.data_dir)
    }
}

impl CompactFlags {
    /// The library's configuration, with scratch space under `data_dir`.
    pub fn config(&self, data_dir: &Path) -> CompactorConfig {
        CompactorConfig {
            downsample: !self.downsampling_disable,
            scratch_dir: data_dir.join("compact"),
            consistency_delay_ms: ms(self.consistency_delay),
            delete_delay_ms: ms(self.delete_delay),
            retention: Retention {
                raw_ms: ms(self.retention_raw),
                five_m_ms: ms(self.retention_5m),
                one_h_ms: ms(self.retention_1h),
            },
            concurrency: usize::from(self.concurrency),
            replica_labels: self.replica_labels.clone(),
            ranges: DEFAULT_RANGES.to_vec(),
            partial_upload_threshold_ms: storage::compact::cleaner::PARTIAL_UPLOAD_THRESHOLD_MS,
        }
    }

    /// The job lease in ms (at least 1 s: a shorter one could not be renewed in time).
    pub fn job_lease_ms(&self) -> i64 {
        ms(self.job_lease).max(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompactArgs,
    }

    #[test]
    fn defaults_are_thanos_and_durations_parse_in_days() {
        let cli = Cli::try_parse_from(["strata"]).unwrap();
        let c = cli.args.config();
        assert_eq!(c.consistency_delay_ms, 30 * 60 * 1000);
        assert_eq!(c.delete_delay_ms, 48 * 3600 * 1000);
        assert_eq!(c.retention, Retention::default());
        assert_eq!(c.concurrency, 1);
        assert!(!cli.args.wait);
        assert_eq!(cli.args.compact.wait_interval, Duration::from_secs(300));
        assert_eq!(cli.args.http_address, "0.0.0.0:10902");
        assert_eq!(cli.args.compact.job_lease_ms(), 30_000);
        let cli = Cli::try_parse_from([
            "strata",
            "--retention.resolution-raw=30d",
            "--deduplication.replica-label=replica",
            "--compact.concurrency=4",
        ])
        .unwrap();
        assert_eq!(cli.args.config().retention.raw_ms, 30 * 86_400_000);
        assert_eq!(
            cli.args.config().replica_labels,
            vec!["replica".to_string()]
        );
        let err = Cli::try_parse_from(["strata", "--compact.concurrency=0"]).unwrap_err();
        assert!(err.to_string().contains("compact.concurrency"), "{err}");
        let err = Cli::try_parse_from(["strata", "--delete-delay=soon"]).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
