//! Alert `for` state that outlives the process (or the node) evaluating a group: after every
//! iteration the group's active alerts are saved; when a group starts evaluating again (a
//! restart, or a new owner in a cluster) the saved `activeAt` times are restored with
//! Prometheus 2.42's `RestoreForState` rules (`--rules.alert.for-outage-tolerance`,
//! `--rules.alert.for-grace-period`). Prometheus reads the same facts back from its
//! `ALERTS_FOR_STATE` series; Strata keeps them as a small JSON document instead, because a
//! node's results (blocks and WAL under its own data dir) do not move with a group, and the
//! state must travel with a group to another node.

use super::alert::LabelMap;
use super::group::{Group, RuleState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// One alert's saved state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAlert {
    /// The alert's labels (with `alertname`), as in `ALERTS_FOR_STATE`.
    pub labels: LabelMap,
    /// When it became active (ms).
    pub active_at_ms: i64,
}

/// A group's alerts as of one iteration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupForState {
    /// When the iteration ran (ms): the last time the alerts were known to be active.
    pub evaluated_at_ms: i64,
    /// The pending and firing alerts at that iteration.
    pub alerts: Vec<SavedAlert>,
}

impl GroupForState {
    /// The pending and firing alerts of `group` after its last iteration.
    pub fn capture(group: &Group) -> GroupForState {
        let alerts = group
            .rules
            .iter()
            .filter_map(|(s, _)| match s {
                RuleState::Alerting(a) => Some(a),
                RuleState::Recording(..) => None,
            })
            .flat_map(|a| a.active.values())
            .filter(|a| a.state != super::alert::AlertState::Inactive)
            .map(|a| SavedAlert {
                labels: a.labels.clone(),
                active_at_ms: a.active_at,
            })
            .collect();
        GroupForState {
            evaluated_at_ms: group.last_evaluation_ms,
            alerts,
        }
    }
}

/// Prometheus' restore settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreOptions {
    /// State older than this (since its iteration) is not restored.
    pub outage_tolerance: Duration,
    /// The least time an alert pends after a restore; rules whose `for` is shorter are not
    /// restored at all.
    pub grace_period: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            outage_tolerance: Duration::from_secs(3600),
            grace_period: Duration::from_secs(600),
        }
    }
}

/// Restores `saved` into `group`'s alerts after the group's first iteration at `ts` (ms), as
/// Prometheus' `RestoreForState`: an alert active again keeps its old `activeAt` shifted by the
/// outage (time spent pending before the outage counts, the outage does not); one that had
/// already waited out `for` keeps its old `activeAt` and fires at the next iteration; one that
/// would fire sooner than the grace period after the restore waits for the grace period.
/// Returns how many alerts were restored.
pub fn restore(group: &mut Group, saved: &GroupForState, ts: i64, opts: &RestoreOptions) -> usize {
    let tolerance = opts.outage_tolerance.as_millis() as i64;
    if saved.evaluated_at_ms <= 0 || saved.evaluated_at_ms < ts - tolerance {
        return 0;
    }
    let grace = opts.grace_period.as_millis() as i64;
    let down_at = saved.evaluated_at_ms;
    let by_labels: BTreeMap<&LabelMap, i64> = saved
        .alerts
        .iter()
        .map(|a| (&a.labels, a.active_at_ms))
        .collect();
    let mut restored = 0;
    for (state, _) in &mut group.rules {
        let RuleState::Alerting(rule) = state else {
            continue;
        };
        let hold = rule.rule.for_.as_millis() as i64;
        if hold < grace {
            continue;
        }
        for alert in rule.active.values_mut() {
            if alert.state != super::alert::AlertState::Pending {
                continue;
            }
            let Some(&old_active) = by_labels.get(&alert.labels) else {
                continue;
            };
            let remaining = hold - (down_at - old_active);
            alert.active_at = if remaining <= 0 {
                old_active
            } else if remaining < grace {
                ts + grace - hold
            } else {
                old_active + (ts - down_at)
            };
            restored += 1;
        }
    }
    restored
}

/// Why saved state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ForStateError {
    /// The file could not be read, written or renamed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not the JSON this build writes.
    #[error("{path} is not a valid for-state file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Where groups' `for` state is kept between evaluations by different processes.
pub trait ForStateStore: Send + Sync {
    /// The state saved for the group `key` (`<file>;<group>`), if any.
    fn load(&self, key: &str) -> Option<GroupForState>;
    /// Saves the state of the group `key`.
    fn save(&self, key: &str, state: GroupForState);
}

/// The standalone ruler's store: one JSON file under `--data-dir`, replaced atomically.
pub struct FileForState {
    path: PathBuf,
    groups: Mutex<BTreeMap<String, GroupForState>>,
}

impl FileForState {
    /// Opens (or starts) `<dir>/for-state.json`; a corrupt file is an error, not a silent reset.
    pub fn open(dir: &Path) -> Result<FileForState, ForStateError> {
        std::fs::create_dir_all(dir).map_err(|source| ForStateError::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("for-state.json");
        let groups = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| ForStateError::Corrupt {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(ForStateError::Io {
                    op: "reading",
                    path,
                    source,
                })
            }
        };
        Ok(FileForState {
            path,
            groups: Mutex::new(groups),
        })
    }

    fn write(&self, groups: &BTreeMap<String, GroupForState>) -> Result<(), ForStateError> {
        let tmp = self.path.with_extension("json.tmp");
        let io = |op, source| ForStateError::Io {
            op,
            path: self.path.clone(),
            source,
        };
        let body = serde_json::to_vec(groups).map_err(|e| io("encoding", e.into()))?;
        std::fs::write(&tmp, body).map_err(|e| io("writing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("renaming", e))
    }
}

impl ForStateStore for FileForState {
    fn load(&self, key: &str) -> Option<GroupForState> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.get(key).cloned()
    }

    fn save(&self, key: &str, state: GroupForState) {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if groups.get(key) == Some(&state) {
            return;
        }
        groups.insert(key.to_string(), state);
        if let Err(e) = self.write(&groups) {
            tracing::warn!(error = %e, "saving alert for-state failed; a restart may reset pending alerts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::alert::AlertState;
    use super::super::file;
    use super::*;

    const S: i64 = 1000;

    fn group(for_s: u64) -> Group {
        let f = file::parse(
            format!("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: {for_s}s\n")
                .as_bytes(),
        )
        .expect("valid");
        Group::new("f.yml", f.groups[0].clone(), Duration::from_secs(1))
    }

    fn labels() -> LabelMap {
        LabelMap::from([("alertname".into(), "A".into()), ("job".into(), "x".into())])
    }

    /// The group after a first iteration at `ts` that found the alert active again.
    fn evaluated(for_s: u64, ts: i64) -> Group {
        let mut g = group(for_s);
        let RuleState::Alerting(r) = &mut g.rules[0].0 else {
            panic!("alerting rule")
        };
        let ctx = super::super::alert::ExpandCtx {
            external_labels: &LabelMap::new(),
            external_url: "",
            query: None,
        };
        let series = LabelMap::from([("job".into(), "x".into())]);
        r.eval(&[(series, 1.0)], ts, 0, &ctx).expect("eval");
        g.last_evaluation_ms = ts;
        g
    }

    fn active_at(g: &Group) -> (i64, AlertState) {
        let RuleState::Alerting(r) = &g.rules[0].0 else {
            panic!("alerting rule")
        };
        let a = r.active.values().next().expect("one alert");
        (a.active_at, a.state)
    }

    fn saved(evaluated_at: i64, active_at: i64) -> GroupForState {
        GroupForState {
            evaluated_at_ms: evaluated_at,
            alerts: vec![SavedAlert {
                labels: labels(),
                active_at_ms: active_at,
            }],
        }
    }

    fn opts(grace_s: u64) -> RestoreOptions {
        RestoreOptions {
            outage_tolerance: Duration::from_secs(3600),
            grace_period: Duration::from_secs(grace_s),
        }
    }

    #[test]
    fn restored_alert_keeps_time_pending_before_the_outage() {
        // Active at 100 s, last seen at 105 s, back at 107 s: 5 s of 60 s done, 2 s outage.
        let mut g = evaluated(60, 107 * S);
        let n = restore(&mut g, &saved(105 * S, 100 * S), 107 * S, &opts(10));
        assert_eq!(n, 1);
        assert_eq!(active_at(&g), (102 * S, AlertState::Pending));
    }

    #[test]
    fn alert_that_had_fired_fires_again_at_its_old_active_time() {
        let mut g = evaluated(60, 200 * S);
        restore(&mut g, &saved(190 * S, 100 * S), 200 * S, &opts(10));
        assert_eq!(active_at(&g).0, 100 * S);
    }

    #[test]
    fn alert_close_to_firing_waits_for_the_grace_period() {
        // 55 s of 60 s done: 5 s left, less than the 10 s grace period.
        let mut g = evaluated(60, 160 * S);
        restore(&mut g, &saved(155 * S, 100 * S), 160 * S, &opts(10));
        assert_eq!(active_at(&g).0, 160 * S + 10 * S - 60 * S);
    }

    #[test]
    fn nothing_is_restored_past_the_outage_tolerance_or_below_the_grace_period() {
        let mut g = evaluated(60, 10_000 * S);
        let o = RestoreOptions {
            outage_tolerance: Duration::from_secs(60),
            grace_period: Duration::from_secs(10),
        };
        assert_eq!(
            restore(&mut g, &saved(9_000 * S, 8_990 * S), 10_000 * S, &o),
            0
        );
        assert_eq!(active_at(&g).0, 10_000 * S);
        let mut short = evaluated(5, 107 * S);
        assert_eq!(
            restore(&mut short, &saved(105 * S, 100 * S), 107 * S, &opts(10)),
            0,
            "`for` shorter than the grace period is not restored, as in Prometheus"
        );
        let mut other = evaluated(60, 107 * S);
        let mut s = saved(105 * S, 100 * S);
        s.alerts[0].labels.insert("job".into(), "y".into());
        assert_eq!(restore(&mut other, &s, 107 * S, &opts(10)), 0);
    }

    #[test]
    fn file_store_survives_reopening_and_refuses_a_corrupt_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let store = FileForState::open(d.path()).expect("open");
        assert_eq!(store.load("f;g"), None);
        let g = evaluated(60, 5 * S);
        let state = GroupForState::capture(&g);
        assert_eq!(state, saved(5 * S, 5 * S));
        store.save("f;g", state.clone());
        let again = FileForState::open(d.path()).expect("reopen");
        assert_eq!(again.load("f;g"), Some(state));
        std::fs::write(d.path().join("for-state.json"), b"{not json").expect("write");
        let err = FileForState::open(d.path())
            .err()
            .expect("corrupt file refused");
        assert!(err.to_string().contains("for-state.json"), "{err}");
    }
}
