//! Log set-up: `tracing` to stderr in logfmt-like text or JSON.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Output format of logs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable key=value lines.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber; `RUST_LOG` overrides `level` when set.
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
        _ => EnvFilter::try_new(level)
            .map_err(|e| anyhow::anyhow!("invalid --log.level {level:?}: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Logfmt => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))
}

/// `err` as one line for the operator: each context once, down to the first error whose
/// message already says everything (a bucket error; the libraries below it repeat their
/// sources' text in their own). The whole chain is for the debug log (`{err:?}`).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        if cause.is::<storage::bucket::BucketError>() {
            break;
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::bucket::{BucketError, ErrorKind};

    #[test]
    fn one_line_stops_at_a_bucket_error_and_skips_repeats() {
        let source: Box<dyn std::error::Error + Send + Sync> = "deep detail".into();
        let mut bucket = BucketError::new(ErrorKind::Unauthorized, "get", "x", "refused");
        bucket.source = Some(source);
        let err = anyhow::Error::new(bucket)
            .context("reading the bucket")
            .context("reading the bucket");
        assert_eq!(
            one_line(&err),
            "reading the bucket: bucket get \"x\": refused"
        );
    }
}
