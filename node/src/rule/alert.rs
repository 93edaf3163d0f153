//! An alerting rule's state machine, as Prometheus 2.42's `rules/alerting.go`: alerts go
//! pending -> firing after `for`, resolve when their series disappear (kept 15 minutes for
//! resending), `keep_firing_for`, `limit`, and the `ALERTS` / `ALERTS_FOR_STATE` series.

use super::file::Rule;
use super::funcs::{Env, QueryFn};
use super::template::{alert_data, Template, ALERT_DEFS};
use std::collections::BTreeMap;

/// Labels as a sorted map (name -> value).
pub type LabelMap = BTreeMap<String, String>;

/// How long a resolved alert is kept (and resent) after it resolved.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// State of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// Resolved (kept for a while to send the resolution).
    Inactive,
    /// Active, waiting for `for` to pass.
    Pending,
    /// Active for at least `for`.
    Firing,
}

impl AlertState {
    /// Prometheus' name: `inactive`, `pending`, `firing`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule (times in ms; 0 = unset).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The alert's labels (series labels without `__name__`, rule labels, `alertname`).
    pub labels: LabelMap,
    /// Expanded annotations.
    pub annotations: LabelMap,
    /// Its state.
    pub state: AlertState,
    /// The expression's value at the last evaluation.
    pub value: f64,
    /// When it became active.
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: i64,
    /// When it resolved.
    pub resolved_at: i64,
    /// When it was last sent.
    pub last_sent_at: i64,
    /// When a sent alert expires at Alertmanager unless resent.
    pub valid_until: i64,
    /// Since when it keeps firing without its series (`keep_firing_for`).
    pub keep_firing_since: i64,
}

impl Alert {
    /// Prometheus' `needsSending`: never pending ones; resolved ones once after resolving;
    /// the others every `resend_delay`.
    pub fn needs_sending(&self, ts: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at > self.last_sent_at {
            return true;
        }
        // Never sent: Go's zero time is long before any `ts`.
        self.last_sent_at == 0 || self.last_sent_at + resend_delay_ms < ts
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    /// Two result series map to the same alert.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabelset,
    /// More alerts than the group's limit.
    #[error("exceeded limit of {limit} with {count} alerts")]
    Limit {
        /// The group's limit.
        limit: i64,
        /// How many were active.
        count: usize,
    },
}

/// An alerting rule and its active alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    /// The rule as written.
    pub rule: Rule,
    /// Active (and recently resolved) alerts by label set.
    pub active: BTreeMap<LabelMap, Alert>,
    labels: Vec<(String, Option<Template>, String)>,
    annotations: Vec<(String, Option<Template>, String)>,
}

fn compile(name: &str, map: &LabelMap) -> Vec<(String, Option<Template>, String)> {
    map.iter()
        .map(|(k, v)| {
            let t = Template::parse(name, &format!("{ALERT_DEFS}{v}")).ok();
            (k.clone(), t, v.clone())
        })
        .collect()
}

/// Context templates expand in.
pub struct ExpandCtx<'a> {
    /// External labels (`$externalLabels`).
    pub external_labels: &'a LabelMap,
    /// External URL (`$externalURL`).
    pub external_url: &'a str,
    /// The `query` template function.
    pub query: Option<&'a QueryFn<'a>>,
}

impl AlertingRule {
    /// Prepares a validated rule (templates parsed once).
    pub fn new(rule: Rule) -> AlertingRule {
        let name = format!("__alert_{}", rule.alert);
        AlertingRule {
            labels: compile(&name, &rule.labels),
            annotations: compile(&name, &rule.annotations),
            rule,
            active: BTreeMap::new(),
        }
    }

    fn expand(
        text: &(String, Option<Template>, String),
        data: &super::funcs::Value,
        env: &Env<'_>,
    ) -> String {
        match &text.1 {
            Some(t) => t
                .execute(data, env)
                .unwrap_or_else(|e| format!("<error expanding template: {e}>")),
            None => text.2.clone(),
        }
    }

    /// Evaluates the rule on the query's result at `ts` (ms); returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples. On error, the active alerts are as before, except that a
    /// limit error clears them (as Prometheus does).
    pub fn eval(
        &mut self,
        result: &[(LabelMap, f64)],
        ts: i64,
        limit: i64,
        ctx: &ExpandCtx<'_>,
    ) -> Result<Vec<(LabelMap, f64)>, AlertError> {
        let env = Env {
            query: ctx.query,
            external_url: ctx.external_url.to_string(),
        };
        let mut fresh: BTreeMap<LabelMap, Alert> = BTreeMap::new();
        for (series, value) in result {
            let data = alert_data(series, ctx.external_labels, ctx.external_url, *value);
            let mut lbs = series.clone();
            lbs.remove("__name__");
            for l in &self.labels {
                let v = Self::expand(l, &data, &env);
                if v.is_empty() {
                    lbs.remove(&l.0);
                } else {
                    lbs.insert(l.0.clone(), v);
                }
            }
            lbs.insert("alertname".into(), self.rule.alert.clone());
            let annotations = self
                .annotations
                .iter()
                .map(|a| (a.0.clone(), Self::expand(a, &data, &env)))
                .collect();
            if fresh.contains_key(&lbs) {
                return Err(AlertError::DuplicateLabelset);
            }
            let alert = Alert {
                labels: lbs.clone(),
                annotations,
                state: AlertState::Pending,
                value: *value,
                active_at: ts,
                fired_at: 0,
                resolved_at: 0,
                last_sent_at: 0,
                valid_until: 0,
                keep_firing_since: 0,
            };
            fresh.insert(lbs, alert);
        }
        let seen: std::collections::BTreeSet<LabelMap> = fresh.keys().cloned().collect();
        for (k, a) in fresh {
            match self.active.get_mut(&k) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(k, a);
                }
            }
        }
        let hold = self.rule.for_.as_millis() as i64;
        let keep_for = self.rule.keep_firing_for.as_millis() as i64;
        let mut out = Vec::new();
        let mut count = 0;
        let mut remove = Vec::new();
        for (k, a) in self.active.iter_mut() {
            if !seen.contains(k) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_for > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts;
                    }
                    keep_firing = ts - a.keep_firing_since < keep_for;
                }
                if a.state == AlertState::Pending
                    || (a.resolved_at != 0 && ts - a.resolved_at > RESOLVED_RETENTION_MS)
                {
                    remove.push(k.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = ts;
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = 0;
            }
            count += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = ts;
            }
            let mut s = a.labels.clone();
            s.insert("__name__".into(), "ALERTS".into());
            s.insert("alertstate".into(), a.state.as_str().into());
            out.push((s, 1.0));
            let mut f = a.labels.clone();
            f.insert("__name__".into(), "ALERTS_FOR_STATE".into());
            out.push((f, (a.active_at / 1000) as f64));
        }
        for k in remove {
            self.active.remove(&k);
        }
        if limit > 0 && count as i64 > limit {
            self.active.clear();
            return Err(AlertError::Limit { limit, count });
        }
        Ok(out)
    }

    /// The alerts to send at `ts` (marking them sent), with `valid_until` set as Prometheus
    /// does: four times the larger of the resend delay and the group interval.
    pub fn take_due(&mut self, ts: i64, resend_delay_ms: i64, interval_ms: i64) -> Vec<Alert> {
        let delta = resend_delay_ms.max(interval_ms);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts, resend_delay_ms) {
                a.last_sent_at = ts;
                a.valid_until = ts + 4 * delta;
                out.push(a.clone());
            }
        }
        out
    }

    /// The rule's state: firing if any alert fires, else pending if any is pending.
    pub fn state(&self) -> AlertState {
        let mut s = AlertState::Inactive;
        for a in self.active.values() {
            match a.state {
                AlertState::Firing => return AlertState::Firing,
                AlertState::Pending => s = AlertState::Pending,
                AlertState::Inactive => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(for_s: u64) -> AlertingRule {
        let r = Rule {
            alert: "High".into(),
            expr: "x > 1".into(),
            for_: Duration::from_secs(for_s),
            labels: BTreeMap::from([("severity".into(), "page".into())]),
            annotations: BTreeMap::from([(
                "summary".into(),
                "{{ $labels.job }} is {{ $value }}".into(),
            )]),
            ..Rule::default()
        };
        AlertingRule::new(r)
    }

    fn series(job: &str, v: f64) -> (LabelMap, f64) {
        let l = BTreeMap::from([("__name__".into(), "x".into()), ("job".into(), job.into())]);
        (l, v)
    }

    fn ctx() -> ExpandCtx<'static> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        ExpandCtx {
            external_labels: &EMPTY,
            external_url: "http://ruler",
            query: None,
        }
    }

    #[test]
    fn pending_fires_after_for_then_resolves_and_is_sent_once_resolved() {
        let mut r = rule(3);
        let out = r.eval(&[series("a", 5.0)], 1_000, 0, &ctx()).expect("eval");
        assert!(
            out.iter().any(|(l, _)| l["alertstate"] == "pending"),
            "{out:?}"
        );
        assert!(
            r.take_due(1_000, 60_000, 1_000).is_empty(),
            "pending alerts are not sent"
        );
        r.eval(&[series("a", 6.0)], 3_000, 0, &ctx()).expect("eval");
        assert_eq!(r.state(), AlertState::Pending);
        let out = r.eval(&[series("a", 7.0)], 4_000, 0, &ctx()).expect("eval");
        assert!(
            out.iter().any(|(l, _)| l["alertstate"] == "firing"),
            "{out:?}"
        );
        let sent = r.take_due(4_000, 60_000, 1_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].fired_at, 4_000);
        assert_eq!(sent[0].annotations["summary"], "a is 7");
        assert_eq!(sent[0].labels["alertname"], "High");
        assert!(!sent[0].labels.contains_key("__name__"));
        assert!(
            r.take_due(5_000, 60_000, 1_000).is_empty(),
            "not resent before the delay"
        );
        let out = r.eval(&[], 6_000, 0, &ctx()).expect("eval");
        assert!(out.is_empty());
        let sent = r.take_due(6_000, 60_000, 1_000);
        assert_eq!((sent.len(), sent[0].resolved_at), (1, 6_000));
        assert!(r.take_due(7_000, 60_000, 1_000).is_empty());
    }

    #[test]
    fn for_state_series_carries_active_at_seconds_and_limit_clears() {
        let mut r = rule(0);
        let out = r
            .eval(&[series("a", 2.0)], 10_000, 0, &ctx())
            .expect("eval");
        let fs = out
            .iter()
            .find(|(l, _)| l["__name__"] == "ALERTS_FOR_STATE")
            .expect("for-state series");
        assert_eq!(fs.1, 10.0);
        let err = r
            .eval(&[series("a", 2.0), series("b", 2.0)], 11_000, 1, &ctx())
            .expect_err("over the limit");
        assert_eq!(err, AlertError::Limit { limit: 1, count: 2 });
        assert!(r.active.is_empty());
    }

    #[test]
    fn two_series_with_one_labelset_are_an_error() {
        let mut r = rule(0);
        let a = (BTreeMap::from([("__name__".into(), "x".into())]), 1.0);
        let b = (BTreeMap::from([("__name__".into(), "y".into())]), 1.0);
        assert_eq!(
            r.eval(&[a, b], 1, 0, &ctx()),
            Err(AlertError::DuplicateLabelset)
        );
    }
}
