//! One rule group: its rules' state and one evaluation iteration, as Prometheus 2.42's
//! `rules/group.go` does it (rules in order, each failure counted and kept as the rule's
//! health, alerts collected for sending, stale markers for series that disappeared).

use super::alert::{Alert, AlertingRule, ExpandCtx, LabelMap};
use super::backend::QueryBackend;
use super::file::{Rule, RuleGroup};
use super::recording;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A rule's health after its last evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// `ok`, `err` or `unknown` (not evaluated yet).
    pub health: &'static str,
    /// The last error ("" when none).
    pub last_error: String,
    /// When it was last evaluated (ms; 0 = never).
    pub last_evaluation_ms: i64,
    /// How long the last evaluation took.
    pub evaluation_seconds: f64,
}

/// A rule with its state.
#[derive(Debug, Clone)]
pub enum RuleState {
    /// A recording rule and the series it wrote last time (for stale markers).
    Recording(Rule, BTreeSet<LabelMap>),
    /// An alerting rule and its alerts.
    Alerting(AlertingRule),
}

impl RuleState {
    /// The rule as written.
    pub fn rule(&self) -> &Rule {
        match self {
            RuleState::Recording(r, _) => r,
            RuleState::Alerting(a) => &a.rule,
        }
    }
}

/// A group ready to evaluate.
#[derive(Debug, Clone)]
pub struct Group {
    /// The file it came from.
    pub file: String,
    /// The group as written.
    pub config: RuleGroup,
    /// Its evaluation interval (the group's own, else `--eval-interval`).
    pub interval: Duration,
    /// Its rules, in order, each with its health.
    pub rules: Vec<(RuleState, Health)>,
    /// When it was last evaluated (ms; 0 = never).
    pub last_evaluation_ms: i64,
    /// How long the last iteration took.
    pub last_duration: Duration,
}

/// What one iteration produced.
#[derive(Debug, Default)]
pub struct Iteration {
    /// Samples to store: recording results, `ALERTS`, `ALERTS_FOR_STATE`, stale markers.
    pub samples: Vec<(LabelMap, f64)>,
    /// Alerts to send, each with the expression of its rule (for the generator URL).
    pub alerts: Vec<(String, Alert)>,
    /// Rules evaluated.
    pub evaluations: usize,
    /// Rules whose evaluation failed.
    pub failures: usize,
}

/// What evaluation needs from the ruler.
pub struct EvalCtx<'a> {
    /// `--label` external labels.
    pub external_labels: &'a LabelMap,
    /// `--alert.query-url` (generator URLs, `$externalURL`).
    pub external_url: &'a str,
    /// `--resend-delay`.
    pub resend_delay: Duration,
}

impl Group {
    /// A group from a validated file's group.
    pub fn new(file: &str, config: RuleGroup, default_interval: Duration) -> Group {
        let rules = config
            .rules
            .iter()
            .map(|r| {
                let state = if r.alert.is_empty() {
                    RuleState::Recording(r.clone(), BTreeSet::new())
                } else {
                    RuleState::Alerting(AlertingRule::new(r.clone()))
                };
                let health = Health {
                    health: "unknown",
                    ..Health::default()
                };
                (state, health)
            })
            .collect();
        Group {
            file: file.to_string(),
            interval: config.interval.unwrap_or(default_interval),
            config,
            rules,
            last_evaluation_ms: 0,
            last_duration: Duration::ZERO,
        }
    }

    /// Prometheus' group key and `rule_group` label value: `<file>;<group>`.
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.config.name)
    }

    /// Takes over the alert state of `old`'s rules with the same name, labels and expression
    /// (a reload keeps pending and firing alerts, as Prometheus' `copyState` does).
    pub fn copy_state(&mut self, old: &Group) {
        for (state, health) in &mut self.rules {
            let same = old.rules.iter().find(|(o, _)| {
                let (a, b) = (o.rule(), state.rule());
                a.name() == b.name() && a.labels == b.labels && a.expr == b.expr
            });
            let Some((o, h)) = same else { continue };
            match (state, o) {
                (RuleState::Alerting(new), RuleState::Alerting(old)) => {
                    new.active = old.active.clone();
                }
                (RuleState::Recording(_, seen), RuleState::Recording(_, old_seen)) => {
                    *seen = old_seen.clone();
                }
                _ => continue,
            }
            *health = h.clone();
        }
        self.last_evaluation_ms = old.last_evaluation_ms;
    }

    /// Evaluates every rule at `ts` (ms) in order.
    pub async fn eval(
        &mut self,
        ts: i64,
        backend: &dyn QueryBackend,
        ctx: &EvalCtx<'_>,
    ) -> Iteration {
        let started = Instant::now();
        let mut it = Iteration::default();
        let partial = self.config.partial_response;
        let limit = self.config.limit;
        let interval_ms = self.interval.as_millis() as i64;
        let resend_ms = ctx.resend_delay.as_millis() as i64;
        let handle = tokio::runtime::Handle::current();
        // Templates call `query` synchronously, as Go's do; the runtime is multi-threaded.
        let query_fn = |q: &str| -> Result<Vec<(LabelMap, f64)>, String> {
            tokio::task::block_in_place(|| handle.block_on(backend.instant(q, ts, partial)))
                .map(|a| a.samples)
                .map_err(|e| e.to_string())
        };
        for (state, health) in &mut self.rules {
            let rule_started = Instant::now();
            it.evaluations += 1;
            let expr = state.rule().expr.clone();
            let result = backend.instant(&expr, ts, partial).await;
            let outcome: Result<(), String> = match (state, result) {
                (_, Err(e)) => Err(e.to_string()),
                (RuleState::Recording(rule, seen), Ok(answer)) => {
                    match recording::record(rule, answer.samples, limit) {
                        Ok(out) => {
                            let now: BTreeSet<LabelMap> =
                                out.iter().map(|(l, _)| l.clone()).collect();
                            for gone in seen.difference(&now) {
                                it.samples.push((gone.clone(), stale_nan()));
                            }
                            *seen = now;
                            it.samples.extend(out);
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                (RuleState::Alerting(rule), Ok(answer)) => {
                    let ectx = ExpandCtx {
                        external_labels: ctx.external_labels,
                        external_url: ctx.external_url,
                        query: Some(&query_fn),
                    };
                    match rule.eval(&answer.samples, ts, limit, &ectx) {
                        // Only a successful evaluation sends, as in Prometheus.
                        Ok(out) => {
                            it.samples.extend(out);
                            for a in rule.take_due(ts, resend_ms, interval_ms) {
                                it.alerts.push((expr.clone(), a));
                            }
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            health.last_evaluation_ms = ts;
            health.evaluation_seconds = rule_started.elapsed().as_secs_f64();
            match outcome {
                Ok(()) => {
                    health.health = "ok";
                    health.last_error.clear();
                }
                Err(e) => {
                    tracing::warn!(group = %self.config.name, error = %e, "rule evaluation failed");
                    it.failures += 1;
                    health.health = "err";
                    health.last_error = e;
                }
            }
        }
        self.last_evaluation_ms = ts;
        self.last_duration = started.elapsed();
        it
    }
}

/// Prometheus' stale marker.
fn stale_nan() -> f64 {
    f64::from_bits(storage::chunkenc::STALE_NAN_BITS)
}

/// The first evaluation time at or after `now_ms` for a group: intervals are offset by a hash
/// of the group key so groups spread over the interval (Prometheus' `EvalTimestamp`).
pub fn next_eval_ms(key: &str, interval_ms: i64, now_ms: i64) -> i64 {
    if interval_ms <= 0 {
        return now_ms;
    }
    let offset = (fnv1a(key) % interval_ms as u64) as i64;
    let base = now_ms - (now_ms - offset).rem_euclid(interval_ms);
    if base < now_ms {
        base + interval_ms
    } else {
        base
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::super::backend::{Answer, QueryError};
    use super::super::file::{self, PartialResponse};
    use super::*;
    use std::sync::Mutex;

    /// Answers from a script: each query pops the next answer for its expression.
    struct Script(Mutex<Vec<(String, Result<Answer, QueryError>)>>);

    #[async_trait::async_trait]
    impl QueryBackend for Script {
        async fn instant(
            &self,
            expr: &str,
            _: i64,
            _: PartialResponse,
        ) -> Result<Answer, QueryError> {
            let mut s = self.0.lock().expect("lock");
            let i = s
                .iter()
                .position(|(e, _)| e == expr)
                .expect("scripted expression");
            s.remove(i).1
        }
    }

    fn series(v: f64) -> Answer {
        Answer {
            samples: vec![(LabelMap::from([("job".into(), "a".into())]), v)],
            warnings: vec![],
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_query_counts_a_failure_and_keeps_alerts_firing() {
        let f = file::parse(b"groups:\n- name: g\n  rules:\n  - record: r\n    expr: x\n  - alert: A\n    expr: y > 0\n").expect("valid");
        let mut g = Group::new("f.yml", f.groups[0].clone(), Duration::from_secs(1));
        assert_eq!(g.key(), "f.yml;g");
        let ext = LabelMap::new();
        let ctx = EvalCtx {
            external_labels: &ext,
            external_url: "http://r",
            resend_delay: Duration::from_secs(60),
        };
        let unreachable = || {
            Err(QueryError::Unreachable {
                url: "u".into(),
                reason: "down".into(),
            })
        };
        let backend = Script(Mutex::new(vec![
            ("x".into(), Ok(series(1.0))),
            ("y > 0".into(), Ok(series(1.0))),
            ("x".into(), Ok(Answer::default())),
            ("y > 0".into(), unreachable()),
        ]));
        let first = g.eval(1_000, &backend, &ctx).await;
        assert_eq!((first.evaluations, first.failures), (2, 0));
        assert_eq!(first.alerts.len(), 1, "for: 0 fires at once");
        let second = g.eval(2_000, &backend, &ctx).await;
        assert_eq!(second.failures, 1);
        assert!(
            second.alerts.is_empty(),
            "no resolution sent because the query failed"
        );
        let stale: Vec<_> = second
            .samples
            .iter()
            .filter(|(_, v)| v.to_bits() == storage::chunkenc::STALE_NAN_BITS)
            .collect();
        assert_eq!(
            stale.len(),
            1,
            "the vanished recorded series gets a stale marker"
        );
        let RuleState::Alerting(a) = &g.rules[1].0 else {
            panic!("alerting rule")
        };
        assert_eq!(a.state(), super::super::alert::AlertState::Firing);
        assert_eq!(g.rules[1].1.health, "err");
    }

    #[test]
    fn eval_times_are_aligned_and_spread_by_group() {
        let t = next_eval_ms("f;g", 10_000, 123_456);
        assert!((123_456..133_456).contains(&t));
        assert_eq!(next_eval_ms("f;g", 10_000, t + 1), t + 10_000);
    }
}
