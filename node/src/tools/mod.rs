//! `strata tools`: operator tools.

pub mod bucket;

use std::process::ExitCode;

/// A tool.
#[derive(Debug, clap::Subcommand)]
pub enum Tool {
    /// Tools over the bucket's blocks.
    Bucket {
        /// The bucket tool to run.
        #[command(subcommand)]
        command: bucket::BucketCommand,
    },
    /// Tools over rule files.
    Rules {
        /// What to do with them.
        #[command(subcommand)]
        command: crate::rule::RulesCommand,
    },
}

impl Tool {
    /// Runs the tool; the exit code says whether it found problems.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Tool::Bucket { command } => command.run().await,
            Tool::Rules { command } => Ok(command.run()),
        }
    }
}
