//! The rule manager: loads the rule files, runs one task per group on its interval, hands
//! results to the store and alerts to the notifier, and swaps rule sets on reload (keeping the
//! old set when the new one does not load, and alert state for unchanged rules).

use super::alert::LabelMap;
use super::backend::QueryBackend;
use super::file;
use super::for_state::{self, ForStateStore, GroupForState, RestoreOptions};
use super::glob;
use super::group::{next_eval_ms, EvalCtx, Group};
use super::metrics::RuleMetrics;
use super::notify::Notifier;
use super::results::Results;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// Rule files that did not load; the messages are promtool's, one per problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("error loading rules: {}", .0.join("; "))]
pub struct LoadError(pub Vec<String>);

/// Decides before each iteration whether this process evaluates a group (in a cluster, only
/// the group's current owner does).
pub trait GroupGate: Send + Sync {
    /// `None`: skip this iteration; `Some(restore)`: evaluate, restoring the saved `for` state
    /// after it when `restore` (the first iteration after taking the group over).
    fn admit(&self, key: &str) -> Option<bool>;
}

/// What the manager is configured with.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// `--rule-file` globs.
    pub rule_files: Vec<String>,
    /// `--eval-interval`.
    pub eval_interval: Duration,
    /// `--label`.
    pub external_labels: LabelMap,
    /// `--alert.query-url`.
    pub external_url: String,
    /// `--resend-delay`.
    pub resend_delay: Duration,
}

struct Running {
    group: Arc<AsyncMutex<Group>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the rule groups.
pub struct Manager {
    opts: ManagerOptions,
    backend: Arc<dyn QueryBackend>,
    notifier: Arc<Notifier>,
    results: Arc<Results>,
    metrics: RuleMetrics,
    running: AsyncMutex<Vec<Running>>,
    /// The groups' current state, refreshed after every iteration, for the API.
    snapshot: Mutex<Vec<Group>>,
    /// Where `for` state is saved after each iteration and restored from at start.
    for_state: OnceLock<(Arc<dyn ForStateStore>, RestoreOptions)>,
    /// Whether the first load (the one that restores `for` state) has happened.
    loaded: AtomicBool,
    /// Which groups this process evaluates; all when unset.
    gate: OnceLock<Arc<dyn GroupGate>>,
}

/// Reads every file the globs name; every problem of every file is reported.
pub fn load_groups(
    patterns: &[String],
    default_interval: Duration,
) -> Result<Vec<Group>, LoadError> {
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    for pattern in patterns {
        let files = match glob::glob(pattern) {
            Ok(f) => f,
            Err(e) => {
                errors.push(format!("{pattern}: {e}"));
                continue;
            }
        };
        for path in files {
            let name = path.display().to_string();
            match file::parse_file(&name) {
                Ok(rg) => groups.extend(
                    rg.groups
                        .into_iter()
                        .map(|g| Group::new(&name, g, default_interval)),
                ),
                Err(errs) => errors.extend(errs),
            }
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(LoadError(errors))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Manager {
    /// A manager with nothing running yet; [`Manager::reload`] starts the groups.
    pub fn new(
        opts: ManagerOptions,
        backend: Arc<dyn QueryBackend>,
        notifier: Arc<Notifier>,
        results: Arc<Results>,
        metrics: RuleMetrics,
    ) -> Arc<Manager> {
        Arc::new(Manager {
            opts,
            backend,
            notifier,
            results,
            metrics,
            running: AsyncMutex::new(Vec::new()),
            snapshot: Mutex::new(Vec::new()),
            for_state: OnceLock::new(),
            loaded: AtomicBool::new(false),
            gate: OnceLock::new(),
        })
    }

    /// Saves every group's alerts to `store` after each iteration, and restores them at the
    /// first iteration of the first load (Prometheus restores on start-up only). Call before
    /// the first [`Manager::reload`]; a second call is ignored.
    pub fn set_for_state(&self, store: Arc<dyn ForStateStore>, opts: RestoreOptions) {
        let _ = self.for_state.set((store, opts));
    }

    /// The groups as of their last iteration.
    pub fn groups(&self) -> Vec<Group> {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Evaluates only the groups `gate` admits, restoring `for` state when it says so (instead
    /// of at start-up). Call before the first [`Manager::reload`]; a second call is ignored.
    pub fn set_gate(&self, gate: Arc<dyn GroupGate>) {
        let _ = self.gate.set(gate);
    }

    /// The keys of the loaded groups.
    pub fn group_keys(&self) -> Vec<String> {
        self.groups().iter().map(Group::key).collect()
    }

    /// Re-reads the rule files and swaps the running groups; on error the old ones go on.
    pub async fn reload(self: &Arc<Self>) -> Result<(), LoadError> {
        let mut new = load_groups(&self.opts.rule_files, self.opts.eval_interval)?;
        let restore = !self.loaded.swap(true, Ordering::SeqCst);
        let mut running = self.running.lock().await;
        let old: Vec<Running> = std::mem::take(&mut *running);
        let mut old_groups = Vec::new();
        for r in old {
            let _ = r.stop.send(true);
            let _ = r.task.await;
            old_groups.push(r.group.lock().await.clone());
        }
        for g in &mut new {
            if let Some(o) = old_groups.iter().find(|o| o.key() == g.key()) {
                g.copy_state(o);
            }
        }
        for o in &old_groups {
            if !new.iter().any(|g| g.key() == o.key()) {
                self.metrics.remove_group(&o.key());
            }
        }
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = new.clone();
        for g in new {
            let key = g.key();
            self.metrics
                .interval
                .with_label_values(&[&key])
                .set(g.interval.as_secs_f64());
            self.metrics
                .rules
                .with_label_values(&[&key])
                .set(g.rules.len() as f64);
            let group = Arc::new(AsyncMutex::new(g));
            let (stop, stop_rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(self.clone().run_group(group.clone(), stop_rx, restore));
            running.push(Running { group, stop, task });
        }
        tracing::info!(groups = running.len(), "rules loaded");
        Ok(())
    }

    /// Stops every group.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        for r in running.drain(..) {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
    }

    async fn run_group(
        self: Arc<Self>,
        group: Arc<AsyncMutex<Group>>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut restore: bool,
    ) {
        let (key, interval) = {
            let g = group.lock().await;
            (g.key(), g.interval)
        };
        let interval_ms = (interval.as_millis() as i64).max(1);
        let mut next = next_eval_ms(&key, interval_ms, now_ms());
        loop {
            let wait = Duration::from_millis((next - now_ms()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let restore_now = match self.gate.get() {
                None => std::mem::take(&mut restore),
                Some(gate) => match gate.admit(&key) {
                    Some(r) => r,
                    // Not ours now: no iteration, none counted as missed.
                    None => {
                        next = next_eval_ms(&key, interval_ms, now_ms().max(next) + 1);
                        continue;
                    }
                },
            };
            let ctx = EvalCtx {
                external_labels: &self.opts.external_labels,
                external_url: &self.opts.external_url,
                resend_delay: self.opts.resend_delay,
            };
            let mut g = group.lock().await;
            let it = g.eval(next, self.backend.as_ref(), &ctx).await;
            self.keep_for_state(&mut g, next, restore_now);
            let m = &self.metrics;
            m.iterations.with_label_values(&[&key]).inc();
            m.evaluations
                .with_label_values(&[&key])
                .inc_by(it.evaluations as f64);
            m.failures
                .with_label_values(&[&key])
                .inc_by(it.failures as f64);
            m.last_duration
                .with_label_values(&[&key])
                .set(g.last_duration.as_secs_f64());
            m.last_evaluation
                .with_label_values(&[&key])
                .set(next as f64 / 1000.0);
            self.results.append(next, &it.samples).await;
            self.notifier.enqueue(it.alerts);
            {
                let mut snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(slot) = snap.iter_mut().find(|s| s.key() == key) {
                    *slot = g.clone();
                }
            }
            drop(g);
            // Iterations that could not start on time are missed, as Prometheus counts them.
            let after = now_ms();
            next += interval_ms;
            if after > next {
                let missed = (after - next) / interval_ms + 1;
                m.missed.with_label_values(&[&key]).inc_by(missed as f64);
                m.iterations
                    .with_label_values(&[&key])
                    .inc_by(missed as f64);
                next += missed * interval_ms;
                tracing::warn!(group = %key, missed, "rule group evaluation slower than its interval");
            }
        }
    }
}

impl Manager {
    /// Restores the group's saved `for` state after its first iteration (when `restore`),
    /// then saves its current state.
    fn keep_for_state(&self, g: &mut Group, ts: i64, restore: bool) {
        let Some((store, opts)) = self.for_state.get() else {
            return;
        };
        let key = g.key();
        if restore {
            if let Some(saved) = store.load(&key) {
                let n = for_state::restore(g, &saved, ts, opts);
                if n > 0 {
                    tracing::info!(group = %key, alerts = n, "restored alert for-state");
                }
            }
        }
        store.save(&key, GroupForState::capture(g));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_every_bad_file_and_reads_globs() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("a.yml"),
            "groups:\n- name: a\n  rules:\n  - record: r\n    expr: up\n",
        )
        .expect("write");
        std::fs::write(
            d.path().join("b.yml"),
            "groups:\n- name: b\n  rules:\n  - record: r\n",
        )
        .expect("write");
        let err = load_groups(
            &[format!("{}/*.yml", d.path().display())],
            Duration::from_secs(60),
        )
        .expect_err("b.yml is invalid");
        assert_eq!(err.0.len(), 1);
        assert!(
            err.0[0].contains(
                "b.yml: 0:0: group \"b\", rule 1, \"r\": field 'expr' must be set in rule"
            ),
            "{err}"
        );
        let ok = load_groups(
            &[format!("{}/a.yml", d.path().display())],
            Duration::from_secs(60),
        )
        .expect("valid");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].interval, Duration::from_secs(60));
    }
}
