//! The reloader: watches Prometheus' config file and rule directories and, when their content
//! changes, asks Prometheus to reload (`POST /-/reload`, which needs `--web.enable-lifecycle`),
//! retrying until Prometheus accepts. Unfinished: Thanos' `--reloader.config-envsubst-file`.

use super::prometheus::PromClient;
use prometheus::{IntCounter, Registry};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// What the reloader watches.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// `--reloader.config-file`.
    pub config_file: Option<PathBuf>,
    /// `--reloader.rule-dir` (repeatable); the files directly inside each.
    pub rule_dirs: Vec<PathBuf>,
}

impl Watched {
    /// Whether there is anything to watch.
    pub fn is_empty(&self) -> bool {
        self.config_file.is_none() && self.rule_dirs.is_empty()
    }

    /// A fingerprint of the watched content: names and bytes of every file. A missing file or
    /// directory counts as empty, so its appearance is a change.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        if let Some(f) = &self.config_file {
            f.hash(&mut h);
            std::fs::read(f).unwrap_or_default().hash(&mut h);
        }
        for dir in &self.rule_dirs {
            dir.hash(&mut h);
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                f.hash(&mut h);
                std::fs::read(&f).unwrap_or_default().hash(&mut h);
            }
        }
        h.finish()
    }
}

/// Reload counters (Thanos' reloader names).
#[derive(Debug, Clone)]
pub struct ReloaderMetrics {
    reloads: IntCounter,
    failures: IntCounter,
}

impl ReloaderMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let reloads =
            IntCounter::new("reloader_reloads_total", "Total number of reload requests.")?;
        let failures = IntCounter::new(
            "reloader_reloads_failed_total",
            "Total number of reload requests that failed.",
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(ReloaderMetrics { reloads, failures })
    }
}

/// Polls watched files and reloads Prometheus when they change.
#[derive(Debug)]
pub struct Reloader {
    client: PromClient,
    watched: Watched,
    /// Fingerprint of the content Prometheus has loaded (as far as the reloader knows).
    applied: u64,
    interval: Duration,
    metrics: ReloaderMetrics,
}

impl Reloader {
    /// A reloader taking the current content as what Prometheus has loaded.
    pub fn new(
        client: PromClient,
        watched: Watched,
        interval: Duration,
        metrics: ReloaderMetrics,
    ) -> Self {
        let applied = watched.fingerprint();
        Reloader {
            client,
            watched,
            applied,
            interval,
            metrics,
        }
    }

    /// Polls every interval and reloads on a change, until `stop`.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let Reloader {
            client,
            watched,
            applied,
            interval,
            metrics,
        } = self;
        poll(client, watched, applied, interval, metrics, stop).await
    }
}

async fn poll(
    client: PromClient,
    watched: Watched,
    mut applied: u64,
    interval: Duration,
    metrics: ReloaderMetrics,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(config = ?watched.config_file, rule_dirs = ?watched.rule_dirs, ?interval, "reloader watching");
    let mut retry = Duration::from_secs(1);
    let mut wait = interval;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            return;
        }
        let now = watched.fingerprint();
        if now == applied {
            wait = interval;
            continue;
        }
        metrics.reloads.inc();
        match client.reload().await {
            Ok(()) => {
                tracing::info!("Prometheus reload triggered");
                applied = now;
                retry = Duration::from_secs(1);
                wait = interval;
            }
            Err(e) => {
                metrics.failures.inc();
                tracing::warn!(error = %e, retry_in = ?retry, "Prometheus reload failed");
                wait = retry.min(interval);
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn fingerprint_changes_with_content_and_new_rule_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("prometheus.yml");
        let rules = tmp.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(&cfg, "global: {}\n").unwrap();
        let w = Watched {
            config_file: Some(cfg.clone()),
            rule_dirs: vec![rules.clone()],
        };
        let a = w.fingerprint();
        assert_eq!(a, w.fingerprint());
        std::fs::write(&cfg, "global: {scrape_interval: 5s}\n").unwrap();
        let b = w.fingerprint();
        assert_ne!(a, b);
        std::fs::write(rules.join("r.yml"), "groups: []\n").unwrap();
        assert_ne!(b, w.fingerprint());
    }

    #[tokio::test]
    async fn each_change_posts_one_reload() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().route(
            "/-/reload",
            axum::routing::post(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("prometheus.yml");
        std::fs::write(&cfg, "a: 1\n").unwrap();
        let watched = Watched {
            config_file: Some(cfg.clone()),
            rule_dirs: vec![],
        };
        let client = PromClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let metrics = ReloaderMetrics::register(&Registry::new()).unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let reloader = Reloader::new(client, watched, Duration::from_millis(50), metrics.clone());
        let task = tokio::spawn(reloader.run(stop_rx));
        let wait_for = |n: usize| {
            let hits = hits.clone();
            async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while hits.load(Ordering::SeqCst) < n && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                hits.load(Ordering::SeqCst)
            }
        };
        std::fs::write(&cfg, "a: 2\n").unwrap();
        assert_eq!(wait_for(1).await, 1, "a reload after the first change");
        std::fs::write(&cfg, "a: 3\n").unwrap();
        assert_eq!(wait_for(2).await, 2, "a reload after the second change");
        // Each reload followed a detected change; none was sent for unchanged content.
        assert_eq!(metrics.reloads.get(), 2);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        server.abort();
    }
}
