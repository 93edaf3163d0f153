//! Sending alerts to Alertmanager's v2 API (`POST /api/v2/alerts`) as Prometheus' notifier
//! does: a bounded queue (oldest dropped when full), batches of 64, every Alertmanager gets
//! every batch, external labels added where the alert lacks them, `--alert.label-drop` applied.

use super::alert::{Alert, LabelMap};
use super::alertmanagers::Alertmanagers;
use super::metrics::RuleMetrics;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prometheus' batch size per request.
const MAX_BATCH: usize = 64;

/// One alert as Alertmanager's v2 API reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AmAlert {
    /// Labels (identity at Alertmanager).
    pub labels: LabelMap,
    /// Annotations.
    pub annotations: LabelMap,
    /// RFC 3339 start time.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339 end time: the resolution, or when it expires unless resent.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// Link to the expression.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// How alerts are shaped before sending.
#[derive(Debug, Clone, Default)]
pub struct NotifyOptions {
    /// Where the Alertmanagers are (`--alertmanagers.url`, `--alertmanagers.config-file`).
    pub alertmanagers: Arc<Alertmanagers>,
    /// `--label`: added to alerts without that label.
    pub external_labels: LabelMap,
    /// `--alert.label-drop`: removed from every alert.
    pub drop_labels: Vec<String>,
    /// `--alert.query-url`: base of generator URLs.
    pub external_url: String,
    /// Queue capacity.
    pub capacity: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// The queue and its sender.
pub struct Notifier {
    opts: NotifyOptions,
    queue: Mutex<VecDeque<AmAlert>>,
    wake: tokio::sync::Notify,
    client: reqwest::Client,
    metrics: RuleMetrics,
}

/// Go's `time.Time` JSON form (RFC 3339, fraction trimmed, `Z`).
pub fn rfc3339(ms: i64) -> String {
    let (date, time, frac) = super::funcs::utc_parts(ms);
    format!("{date}T{time}{frac}Z")
}

/// The link Prometheus puts in `generatorURL`: the expression in the table view.
pub fn generator_url(base: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("{}/graph?g0.expr={q}&g0.tab=1", base.trim_end_matches('/'))
}

impl Notifier {
    /// A notifier; `run` sends what `enqueue` queues.
    pub fn new(opts: NotifyOptions, metrics: RuleMetrics) -> Result<Notifier, reqwest::Error> {
        metrics.queue_capacity.set(opts.capacity as f64);
        let client = reqwest::Client::builder().timeout(opts.timeout).build()?;
        Ok(Notifier {
            opts,
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            client,
            metrics,
        })
    }

    /// The Alertmanager form of `alert` from a rule with expression `expr`.
    pub fn shape(&self, expr: &str, a: &Alert) -> AmAlert {
        let mut labels = a.labels.clone();
        for (k, v) in &self.opts.external_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for d in &self.opts.drop_labels {
            labels.remove(d);
        }
        let ends = if a.resolved_at != 0 {
            a.resolved_at
        } else {
            a.valid_until
        };
        AmAlert {
            labels,
            annotations: a.annotations.clone(),
            starts_at: rfc3339(a.fired_at),
            ends_at: rfc3339(ends),
            generator_url: generator_url(&self.opts.external_url, expr),
        }
    }

    /// Queues alerts; beyond capacity the oldest are dropped (and counted).
    pub fn enqueue(&self, alerts: Vec<(String, Alert)>) {
        if alerts.is_empty() || self.opts.alertmanagers.is_empty() {
            return;
        }
        let shaped: Vec<AmAlert> = alerts.iter().map(|(e, a)| self.shape(e, a)).collect();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.extend(shaped);
        let over = q.len().saturating_sub(self.opts.capacity);
        if over > 0 {
            q.drain(..over);
            self.metrics.dropped.inc_by(over as u64);
            tracing::warn!(
                dropped = over,
                "alert notification queue full, dropping alerts"
            );
        }
        self.metrics.queue_length.set(q.len() as f64);
        drop(q);
        self.wake.notify_one();
    }

    fn next_batch(&self) -> Vec<AmAlert> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(MAX_BATCH);
        let batch = q.drain(..n).collect();
        self.metrics.queue_length.set(q.len() as f64);
        batch
    }

    /// Sends queued alerts until `stop`; a failing Alertmanager is logged and counted, and
    /// the rule's resends cover it later.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let batch = self.next_batch();
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            self.send_all(&batch).await;
        }
    }

    async fn send_all(&self, batch: &[AmAlert]) {
        let ams = self.opts.alertmanagers.urls().await;
        self.metrics.alertmanagers.set(ams.len() as f64);
        if ams.is_empty() {
            tracing::warn!(
                count = batch.len(),
                "no Alertmanager discovered; alerts not sent"
            );
        }
        let sends = ams.iter().map(|target| async move {
            let am = target.base.as_str();
            let url = format!("{}/api/v2/alerts", am.trim_end_matches('/'));
            let started = Instant::now();
            let body = serde_json::to_vec(batch).unwrap_or_default();
            let mut request = self
                .client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body);
            if let Some(t) = target.timeout {
                request = request.timeout(t);
            }
            let r = request.send().await;
            let r = match r {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("bad response status {}", resp.status())),
                Err(e) => Err(e.to_string()),
            };
            self.metrics.latency.with_label_values(&[am]).observe(started.elapsed().as_secs_f64());
            self.metrics.sent.with_label_values(&[am]).inc_by(batch.len() as f64);
            if let Err(e) = r {
                self.metrics.errors.with_label_values(&[am]).inc_by(batch.len() as f64);
                tracing::error!(alertmanager = %am, count = batch.len(), error = %e, "error sending alerts");
            }
        });
        futures::future::join_all(sends).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::alert::AlertState;
    use super::*;

    #[test]
    fn shapes_alerts_like_prometheus() {
        let metrics = RuleMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let opts = NotifyOptions {
            alertmanagers: Arc::new(
                Alertmanagers::from_urls(&["http://am".into()], Duration::from_secs(30))
                    .expect("valid URL"),
            ),
            external_labels: LabelMap::from([
                ("replica".into(), "A".into()),
                ("env".into(), "p".into()),
            ]),
            drop_labels: vec!["replica".into()],
            external_url: "http://ruler:10902/".into(),
            capacity: 1,
            timeout: Duration::from_secs(1),
        };
        let n = Notifier::new(opts, metrics.clone()).expect("notifier");
        let a = Alert {
            labels: LabelMap::from([
                ("alertname".into(), "A".into()),
                ("env".into(), "mine".into()),
            ]),
            annotations: LabelMap::new(),
            state: AlertState::Firing,
            value: 1.0,
            active_at: 1_000,
            fired_at: 1_700_000_000_123,
            resolved_at: 0,
            last_sent_at: 0,
            valid_until: 1_700_000_060_000,
            keep_firing_since: 0,
        };
        let s = n.shape("up == 0", &a);
        assert_eq!(
            s.labels,
            LabelMap::from([
                ("alertname".into(), "A".into()),
                ("env".into(), "mine".into())
            ])
        );
        assert_eq!(s.starts_at, "2023-11-14T22:13:20.123Z");
        assert_eq!(s.ends_at, "2023-11-14T22:14:20Z");
        assert_eq!(
            s.generator_url,
            "http://ruler:10902/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
        );
        n.enqueue(vec![("e".into(), a.clone()), ("e".into(), a)]);
        assert_eq!(metrics.dropped.get(), 1, "capacity 1 keeps only the newest");
    }
}
