//! Prometheus' own metric names for rule evaluation and notification, labelled as
//! Prometheus labels them (`rule_group="<file>;<group>"`, `alertmanager="<url>"`).

use prometheus::{
    CounterVec, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, Opts, Registry,
};

/// The ruler's metrics.
#[derive(Clone)]
pub struct RuleMetrics {
    /// `prometheus_rule_evaluations_total`.
    pub evaluations: CounterVec,
    /// `prometheus_rule_evaluation_failures_total`.
    pub failures: CounterVec,
    /// `prometheus_rule_group_iterations_total`.
    pub iterations: CounterVec,
    /// `prometheus_rule_group_iterations_missed_total`.
    pub missed: CounterVec,
    /// `prometheus_rule_group_last_duration_seconds`.
    pub last_duration: GaugeVec,
    /// `prometheus_rule_group_last_evaluation_timestamp_seconds`.
    pub last_evaluation: GaugeVec,
    /// `prometheus_rule_group_interval_seconds`.
    pub interval: GaugeVec,
    /// `prometheus_rule_group_rules`.
    pub rules: GaugeVec,
    /// `prometheus_notifications_sent_total`.
    pub sent: CounterVec,
    /// `prometheus_notifications_errors_total`.
    pub errors: CounterVec,
    /// `prometheus_notifications_dropped_total`.
    pub dropped: IntCounter,
    /// `prometheus_notifications_queue_length`.
    pub queue_length: Gauge,
    /// `prometheus_notifications_queue_capacity`.
    pub queue_capacity: Gauge,
    /// `prometheus_notifications_alertmanagers_discovered`.
    pub alertmanagers: Gauge,
    /// `prometheus_notifications_latency_seconds` (a histogram here; Prometheus has a summary).
    pub latency: HistogramVec,
}

impl RuleMetrics {
    /// Creates and registers the metrics.
    pub fn register(r: &Registry) -> Result<RuleMetrics, prometheus::Error> {
        let group = &["rule_group"];
        let am = &["alertmanager"];
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<CounterVec, prometheus::Error> {
                let c = CounterVec::new(Opts::new(name, help), labels)?;
                r.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), group)?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let plain = |name: &str, help: &str| -> Result<Gauge, prometheus::Error> {
            let g = Gauge::new(name, help)?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let dropped = IntCounter::new(
            "prometheus_notifications_dropped_total",
            "Total number of alerts dropped due to errors when sending to Alertmanager.",
        )?;
        r.register(Box::new(dropped.clone()))?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "prometheus_notifications_latency_seconds",
                "Latency quantiles for sending alert notifications.",
            ),
            am,
        )?;
        r.register(Box::new(latency.clone()))?;
        Ok(RuleMetrics {
            evaluations: counter("prometheus_rule_evaluations_total", "The total number of rule evaluations.", group)?,
            failures: counter("prometheus_rule_evaluation_failures_total", "The total number of rule evaluation failures.", group)?,
            iterations: counter("prometheus_rule_group_iterations_total", "The total number of scheduled rule group evaluations, whether executed or missed.", group)?,
            missed: counter("prometheus_rule_group_iterations_missed_total", "The total number of rule group evaluations missed due to slow rule group evaluation.", group)?,
            last_duration: gauge("prometheus_rule_group_last_duration_seconds", "The duration of the last rule group evaluation.")?,
            last_evaluation: gauge("prometheus_rule_group_last_evaluation_timestamp_seconds", "The timestamp of the last rule group evaluation in seconds.")?,
            interval: gauge("prometheus_rule_group_interval_seconds", "The interval of a rule group.")?,
            rules: gauge("prometheus_rule_group_rules", "The number of rules.")?,
            sent: counter("prometheus_notifications_sent_total", "Total number of alerts sent.", am)?,
            errors: counter("prometheus_notifications_errors_total", "Total number of errors sending alert notifications.", am)?,
            dropped,
            queue_length: plain("prometheus_notifications_queue_length", "The number of alert notifications in the queue.")?,
            queue_capacity: plain("prometheus_notifications_queue_capacity", "The capacity of the alert notifications queue.")?,
            alertmanagers: plain("prometheus_notifications_alertmanagers_discovered", "The number of alertmanagers discovered and active.")?,
            latency,
        })
    }

    /// Forgets a group's series (after a reload removed it), as Prometheus does.
    pub fn remove_group(&self, key: &str) {
        for c in [
            &self.evaluations,
            &self.failures,
            &self.iterations,
            &self.missed,
        ] {
            let _ = c.remove_label_values(&[key]);
        }
        for g in [
            &self.last_duration,
            &self.last_evaluation,
            &self.interval,
            &self.rules,
        ] {
            let _ = g.remove_label_values(&[key]);
        }
    }
}
