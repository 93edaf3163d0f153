//! Query errors, in the classes Prometheus' HTTP API reports (`errorType`).

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The expression does not parse or does not type-check; the message carries the parser's
    /// position like Prometheus (`1:3: parse error: unexpected end of input`). HTTP 400 bad_data.
    #[error("{0}")]
    Parse(String),
    /// Impossible parameters (end before start, zero step, too many points). HTTP 400 bad_data.
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (many-to-many matching, duplicate series, ...). HTTP 422 execution.
    #[error("{0}")]
    Execution(String),
    /// The query would load more samples than allowed. HTTP 422 execution, Prometheus' text.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The query ran past its timeout. HTTP 503 timeout.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The query was cancelled (client went away). HTTP 503 canceled.
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// The storage could not supply data. HTTP 500 internal.
    #[error("{0}")]
    Storage(String),
}
