//! `strata tools bucket`: list, inspect, verify, mark and upload blocks; browse them (`web`);
//! write the bucket index; compact in the foreground.

mod compact;
mod generate;
mod index;
mod inspect;
mod ls;
mod mark;
mod upload;
mod verify;
mod web;

use crate::flags::ObjstoreFlags;
use std::process::ExitCode;

/// Output format of listing commands.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, one document.
    Json,
}

/// A bucket tool.
#[derive(Debug, clap::Subcommand)]
pub enum BucketCommand {
    /// List all blocks in the bucket.
    Ls {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// Output format: text (one ULID per line with its time range) or json.
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: Output,
    },
    /// Inspect all blocks in the bucket in a table.
    Inspect {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// Output format: text (a table) or json.
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: Output,
    },
    /// Verify every block: overlaps, index, chunk references, partial uploads, missing files.
    Verify {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// Only verify these blocks (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
    },
    /// Mark blocks for deletion or as not to be compacted (Thanos' `tools bucket mark`).
    Mark {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// ULID of a block to mark (repeatable).
        #[arg(long = "id")]
        ids: Vec<String>,
        /// The mark: deletion-mark.json or no-compact-mark.json.
        #[arg(long = "marker")]
        marker: String,
        /// Why, recorded in the mark.
        #[arg(long = "details", default_value = "")]
        details: String,
    },
    /// Serve the web UI's blocks page over the bucket (Thanos' `tools bucket web`).
    Web {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// Address to serve the page on.
        #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
        http_address: String,
    },
    /// Write the bucket index (bucket-index.json.gz) that store gateways and queriers read
    /// instead of listing the bucket; the compactor rewrites it after each pass.
    Index {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
    },
    /// Write demo data (node-exporter-like series) as blocks into the bucket.
    Generate {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// What to generate.
        #[command(flatten)]
        args: generate::GenerateArgs,
    },
    /// Compact the bucket in the foreground: one pass of `strata compact` (compaction,
    /// downsampling, retention, cleanup, bucket index) with a progress bar.
    #[command(
        mut_arg("wait_interval", |a| a.hide(true)),
        mut_arg("job_lease", |a| a.hide(true))
    )]
    Compact {
        /// Where the bucket is; `--data-dir` also holds the scratch space
        /// (`<data-dir>/compact`).
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// What to compact and how (`strata compact`'s flags).
        #[command(flatten)]
        flags: crate::compact::CompactFlags,
    },
    /// Upload local block directories into the bucket.
    #[command(alias = "upload-blocks")]
    Upload {
        /// Where the bucket is.
        #[command(flatten)]
        objstore: ObjstoreFlags,
        /// A block directory, or a directory holding block directories (a Prometheus data dir).
        #[arg(long = "path", default_value = "./data")]
        path: std::path::PathBuf,
        /// External label to add to each block's meta.json, as name="value" (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
    },
}

impl BucketCommand {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            BucketCommand::Ls { objstore, output } => ls::run(&objstore, output).await,
            BucketCommand::Inspect { objstore, output } => inspect::run(&objstore, output).await,
            BucketCommand::Verify { objstore, ids } => verify::run(&objstore, &ids).await,
            BucketCommand::Mark {
                objstore,
                ids,
                marker,
                details,
            } => mark::run(&objstore, &ids, &marker, &details).await,
            BucketCommand::Web {
                objstore,
                http_address,
            } => web::run(&objstore, &http_address).await,
            BucketCommand::Index { objstore } => index::run(&objstore).await,
            BucketCommand::Compact { objstore, flags } => compact::run(&objstore, &flags).await,
            BucketCommand::Generate { objstore, args } => generate::run(&objstore, &args).await,
            BucketCommand::Upload {
                objstore,
                path,
                labels,
            } => upload::run(&objstore, &path, &labels).await,
        }
    }
}
