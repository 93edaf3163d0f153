//! Threads with a stack deep enough for any query within [`crate::depth::MAX_DEPTH`].
//!
//! Each run gets a fresh thread rather than a pooled one: the stack is only reserved address
//! space until a deep query touches it, and a finished thread gives the touched pages back.
//! How many run at once is bounded by the caller (the HTTP API's `--query.max-concurrent`).

use crate::error::QueryError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Stack per query thread. Measured in debug builds, the evaluator needs up to about 16 KiB
/// per nesting level (function calls), the parser and drop about 1 KiB; this leaves three
/// times the room [`crate::depth::MAX_DEPTH`] needs. Release builds need far less.
pub const STACK_BYTES: usize = 512 << 20;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Query threads currently running (parsing or evaluating), across the process.
pub fn running() -> usize {
    RUNNING.load(Ordering::Relaxed)
}

/// Counts a running thread for as long as it lives.
struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

fn panic_error(p: Box<dyn std::any::Any + Send>) -> QueryError {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    tracing::error!(panic = %msg, "query evaluation panicked");
    QueryError::Execution(format!("unexpected error: {msg}"))
}

fn spawn_error(e: std::io::Error) -> QueryError {
    QueryError::Storage(format!("could not start a query thread: {e}"))
}

fn builder() -> std::thread::Builder {
    std::thread::Builder::new()
        .name("strata-query".into())
        .stack_size(STACK_BYTES)
}

/// Runs `f` on a query thread and waits for it without blocking the async runtime. If the
/// caller stops waiting (its future is dropped), `f` still runs to its end: `f` must watch a
/// cancellation flag of its own to stop early. A panic in `f` becomes an execution error.
pub async fn run<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, QueryError> + Send + 'static,
) -> Result<R, QueryError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    builder()
        .spawn(move || {
            let _running = Running::start();
            let r = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(p)));
            let _ = tx.send(r);
        })
        .map_err(spawn_error)?;
    rx.await
        .unwrap_or_else(|_| Err(QueryError::Execution("query thread ended".into())))
}

/// Runs `f` on a query thread and blocks until it is done (for synchronous callers).
pub fn run_blocking<R: Send>(
    f: impl FnOnce() -> Result<R, QueryError> + Send,
) -> Result<R, QueryError> {
    std::thread::scope(|s| {
        let h = builder()
            .spawn_scoped(s, move || {
                let _running = Running::start();
                f()
            })
            .map_err(spawn_error)?;
        h.join().unwrap_or_else(|p| Err(panic_error(p)))
    })
}
