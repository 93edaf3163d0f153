//! What the sidecar knows about its Prometheus: external labels, the oldest time it serves,
//! and whether Prometheus answered the last heartbeat (`/-/ready`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;
use storage::labels::Labels;

/// Shared, updated by the heartbeat, read by the StoreAPI, the shipper and the probes.
#[derive(Debug)]
pub struct PromState {
    labels: RwLock<Option<Labels>>,
    min_time: AtomicI64,
    limit_min_time: i64,
    up: AtomicBool,
}

impl PromState {
    /// Nothing known yet; `limit_min_time` is `--min-time` (ms).
    pub fn new(limit_min_time: i64) -> Self {
        PromState {
            labels: RwLock::new(None),
            min_time: AtomicI64::new(limit_min_time),
            limit_min_time,
            up: AtomicBool::new(false),
        }
    }

    /// Records a successful heartbeat: Prometheus' external labels and lowest timestamp.
    pub fn update(&self, labels: Labels, lowest: i64) {
        if let Ok(mut l) = self.labels.write() {
            *l = Some(labels);
        }
        self.min_time
            .store(lowest.max(self.limit_min_time), Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
    }

    /// Records a failed heartbeat: Prometheus is down (labels stay known).
    pub fn set_down(&self) {
        self.up.store(false, Ordering::Relaxed);
    }

    /// The external labels, once known.
    pub fn external_labels(&self) -> Option<Labels> {
        self.labels.read().ok().and_then(|l| l.clone())
    }

    /// The oldest time served: max(`--min-time`, Prometheus' lowest timestamp).
    pub fn min_time(&self) -> i64 {
        self.min_time.load(Ordering::Relaxed)
    }

    /// Ready: Prometheus answered the last heartbeat and external labels are known.
    pub fn is_ready(&self) -> bool {
        self.up.load(Ordering::Relaxed) && self.external_labels().is_some()
    }
}
