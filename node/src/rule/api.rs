//! The ruler's HTTP API: `/api/v1/rules` and `/api/v1/alerts` in Prometheus' JSON shapes,
//! `/-/reload`, and (through node's query API over the ruler's own results) `/api/v1/query`,
//! `/api/v1/query_range`, `/metrics` and the probes.

use super::alert::{AlertState, AlertingRule};
use super::group::{Group, Health, RuleState};
use super::manager::Manager;
use super::notify::rfc3339;
use super::results::Results;
use crate::http::{self, ApiState, QueryLimits, SeriesSource};
use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use promql::{Engine, EngineOptions, QueryError, Queryable};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use storage::labels::Labels;
use storage::matcher::Matcher;

/// The ruler's results serve the query API (always ready).
#[async_trait]
impl SeriesSource for Results {
    async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, QueryError> {
        Ok(self
            .select(matchers, mint, maxt)
            .await?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    fn is_ready(&self) -> bool {
        true
    }
}

/// Prometheus' `"value"` of an alert: Go's `strconv.FormatFloat(v, 'e', -1, 64)`.
pub(crate) fn value_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn time_or_zero(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        rfc3339(ms)
    }
}

fn alert_json(a: &super::alert::Alert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": time_or_zero(a.active_at),
        "value": value_e(a.value),
    })
}

fn active_alerts(r: &AlertingRule) -> Vec<Value> {
    r.active
        .values()
        .filter(|a| a.state != AlertState::Inactive)
        .map(alert_json)
        .collect()
}

fn health_fields(obj: &mut serde_json::Map<String, Value>, h: &Health) {
    obj.insert("health".into(), json!(h.health));
    if !h.last_error.is_empty() {
        obj.insert("lastError".into(), json!(h.last_error));
    }
    obj.insert("evaluationTime".into(), json!(h.evaluation_seconds));
    obj.insert(
        "lastEvaluation".into(),
        json!(time_or_zero(h.last_evaluation_ms)),
    );
}

fn rule_json(state: &RuleState, h: &Health) -> Value {
    let r = state.rule();
    let mut obj = serde_json::Map::new();
    match state {
        RuleState::Alerting(a) => {
            obj.insert("state".into(), json!(a.state().as_str()));
            obj.insert("name".into(), json!(r.alert));
            obj.insert("query".into(), json!(r.expr));
            obj.insert("duration".into(), json!(r.for_.as_secs_f64()));
            obj.insert(
                "keepFiringFor".into(),
                json!(r.keep_firing_for.as_secs_f64()),
            );
            obj.insert("labels".into(), json!(r.labels));
            obj.insert("annotations".into(), json!(r.annotations));
            obj.insert("alerts".into(), json!(active_alerts(a)));
            health_fields(&mut obj, h);
            obj.insert("type".into(), json!("alerting"));
        }
        RuleState::Recording(..) => {
            obj.insert("name".into(), json!(r.record));
            obj.insert("query".into(), json!(r.expr));
            if !r.labels.is_empty() {
                obj.insert("labels".into(), json!(r.labels));
            }
            health_fields(&mut obj, h);
            obj.insert("type".into(), json!("recording"));
        }
    }
    Value::Object(obj)
}

fn group_json(g: &Group, want: Option<&str>) -> Value {
    let rules: Vec<Value> = g
        .rules
        .iter()
        .filter(|(s, _)| {
            !matches!(
                (want, s),
                (Some("alert"), RuleState::Recording(..))
                    | (Some("record"), RuleState::Alerting(_))
            )
        })
        .map(|(s, h)| rule_json(s, h))
        .collect();
    let strategy = match g.config.partial_response {
        super::file::PartialResponse::Abort => "ABORT",
        super::file::PartialResponse::Warn => "WARN",
    };
    json!({
        "name": g.config.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval.as_secs_f64(),
        "limit": g.config.limit,
        "evaluationTime": g.last_duration.as_secs_f64(),
        "lastEvaluation": time_or_zero(g.last_evaluation_ms),
        "partialResponseStrategy": strategy,
    })
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

async fn rules(
    State(m): State<Arc<Manager>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let want = q.get("type").map(String::as_str);
    if let Some(t) = want {
        if t != "alert" && t != "record" {
            return http::response::error_response(
                StatusCode::BAD_REQUEST,
                "bad_data",
                &format!("invalid query parameter type='{t}'"),
            );
        }
    }
    let groups: Vec<Value> = m.groups().iter().map(|g| group_json(g, want)).collect();
    success(json!({ "groups": groups }))
}

async fn alerts(State(m): State<Arc<Manager>>) -> Response {
    let alerts: Vec<Value> = m
        .groups()
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|(s, _)| match s {
            RuleState::Alerting(a) => Some(active_alerts(a)),
            RuleState::Recording(..) => None,
        })
        .flatten()
        .collect();
    success(json!({ "alerts": alerts }))
}

async fn reload(State(m): State<Arc<Manager>>) -> Response {
    match m.reload().await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reload failed; the previous rules keep running");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to reload config: {e}\n"),
            )
                .into_response()
        }
    }
}

/// `/api/v1/rules` and `/api/v1/alerts` alone, for a node whose other roles serve the rest.
pub fn rule_routes(manager: Arc<Manager>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(manager)
}

/// The ruler's whole HTTP router; `/metrics` exposes `registry`.
pub fn router(
    manager: Arc<Manager>,
    results: Arc<Results>,
    registry: prometheus::Registry,
    flags: Vec<(String, String)>,
) -> anyhow::Result<Router> {
    let registry_for_metrics = registry.clone();
    let state = Arc::new(ApiState {
        source: results,
        engine: Arc::new(Engine::new(EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        })),
        limits: QueryLimits::new(Duration::from_secs(120), 20),
        flags,
        registry,
        cors: Arc::new(http::cors::CorsOrigin::new(".*")?),
        replica_labels: Vec::new(),
        auto_downsampling: false,
        dynamic_lookback: false,
    });
    let own = Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route("/-/reload", post(reload).put(reload))
        .with_state(manager);
    let probes = Router::new()
        .route("/-/healthy", get(|| async { "Strata is Healthy.\n" }))
        .route("/-/ready", get(|| async { "Strata is Ready.\n" }))
        .route(
            "/metrics",
            get(move || {
                let registry = registry_for_metrics.clone();
                async move { http::metrics::encode(&registry) }
            }),
        );
    Ok(own
        .merge(probes)
        .merge(http::api_routes(state))
        .layer(axum::middleware::from_fn(http::metrics::instrument)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_values_print_as_go_e_format() {
        assert_eq!(value_e(1.0), "1e+00");
        assert_eq!(value_e(1234.5), "1.2345e+03");
        assert_eq!(value_e(0.001), "1e-03");
    }
}
