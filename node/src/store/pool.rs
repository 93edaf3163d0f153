//! `--chunk-pool-size` (Thanos' default 2 GB): a bound on the chunk data that Series requests
//! hold at once across the store. Before a request reads a group of chunks it takes that
//! group's bytes from the pool, waiting while other requests hold them; it gives them back
//! once the group's frames are handed to gRPC. A group larger than the whole pool could never
//! be read, so its request fails at once with `ResourceExhausted` naming the flag.
//!
//! The bytes are estimated before the read from the chunk references (a chunk reaches the
//! next selected chunk of its segment, up to a run gap; the last of a run counts one
//! speculative read), which is what the segment reader fetches in its range reads.

use super::select::Selected;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Thanos' default `--chunk-pool-size`, 2 GiB.
pub const DEFAULT_CHUNK_POOL_BYTES: u64 = 2 << 30;

/// The pool counts KiB, so that any size a flag can give fits the semaphore's permits.
const UNIT: u64 = 1024;
/// A chunk farther than this from the next selected one counts as [`RUN_END_BYTES`]: the
/// segment reader reads such chunks in separate runs.
const MAX_GAP: u64 = 16 << 10;
/// What the segment reader reads for the last chunk of a run.
const RUN_END_BYTES: u64 = 512;

/// The store's pool of chunk bytes.
#[derive(Debug, Clone)]
pub struct ChunkPool {
    units: Arc<Semaphore>,
    capacity: u32,
    bytes: u64,
}

/// Bytes taken from the pool; given back when dropped.
#[derive(Debug)]
pub struct PoolBytes {
    _permit: Option<OwnedSemaphorePermit>,
}

impl ChunkPool {
    /// A pool of `bytes` (at least one KiB's worth is always allowed).
    pub fn new(bytes: u64) -> Self {
        let capacity = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        ChunkPool {
            units: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            bytes,
        }
    }

    /// Refuses a request one of whose `groups` could never fit in the pool.
    pub fn check<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a [Selected]>,
    ) -> Result<(), Status> {
        self.check_bytes(groups.into_iter().map(estimate_bytes).max().unwrap_or(0))
    }

    /// Refuses `largest` bytes at once when they exceed the whole pool.
    fn check_bytes(&self, largest: u64) -> Result<(), Status> {
        if units(largest) > u64::from(self.capacity) {
            return Err(Status::resource_exhausted(format!(
                "the request reads about {largest} bytes of chunks at once, more than \
                 --chunk-pool-size ({} bytes); select fewer series or a shorter range, or \
                 raise --chunk-pool-size",
                self.bytes
            )));
        }
        Ok(())
    }

    /// Takes `group`'s bytes from the pool, waiting until other requests give enough back.
    pub async fn take(&self, group: &[Selected]) -> Result<PoolBytes, Status> {
        self.take_bytes(estimate_bytes(group)).await
    }

    /// Takes `bytes` from the pool, waiting until other requests give enough back.
    async fn take_bytes(&self, bytes: u64) -> Result<PoolBytes, Status> {
        self.check_bytes(bytes)?;
        let n = u32::try_from(units(bytes)).unwrap_or(u32::MAX);
        if n == 0 {
            return Ok(PoolBytes { _permit: None });
        }
        let permit = self
            .units
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| Status::unavailable("the store's chunk pool is closed"))?;
        Ok(PoolBytes {
            _permit: Some(permit),
        })
    }

    /// Bytes free now (tests and metrics).
    pub fn available_bytes(&self) -> u64 {
        self.units.available_permits() as u64 * UNIT
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

/// The bytes of chunks the segment reader fetches for `group`.
pub fn estimate_bytes(group: &[Selected]) -> u64 {
    estimate_refs(
        group
            .iter()
            .flat_map(|(_, chunks)| chunks.iter())
            .map(|c| {
                let (block, r) = c.stored_at();
                (Arc::as_ptr(block) as usize, r)
            })
            .collect(),
    )
}

/// [`estimate_bytes`] of chunk references, each with its block's identity.
fn estimate_refs(mut refs: Vec<(usize, u64)>) -> u64 {
    refs.sort_unstable();
    refs.dedup();
    let mut total = 0u64;
    for (i, &(block, r)) in refs.iter().enumerate() {
        let gap = refs
            .get(i + 1)
            .filter(|(b, next)| *b == block && next >> 32 == r >> 32)
            .map(|(_, next)| next - r)
            .filter(|g| *g <= MAX_GAP);
        total = total.saturating_add(gap.unwrap_or(RUN_END_BYTES));
    }
    total
}

/// A stream that holds pool bytes until it ends or is dropped (the frames it yields were read
/// with them).
pub struct Holding<S> {
    inner: S,
    _bytes: PoolBytes,
}

impl<S> Holding<S> {
    /// `inner`, holding `bytes` while it lives.
    pub fn new(inner: S, bytes: PoolBytes) -> Self {
        Holding {
            inner,
            _bytes: bytes,
        }
    }
}

impl<S: futures::Stream + Unpin> futures::Stream for Holding<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
