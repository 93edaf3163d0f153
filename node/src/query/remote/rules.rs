//! The querier's `/api/v1/rules` and `/api/v1/alerts`, aggregated as Thanos' querier does
//! from every endpoint that serves Thanos' Rules API (`thanos.Rules`): each endpoint of the
//! federation is asked in parallel; one that answers `Unimplemented` serves no rules and is
//! left out, one that fails becomes a warning (or the answer's error with
//! `partial_response=false`). Groups with the same file and name from several endpoints (HA
//! rulers) are merged, and their rules deduplicated by name, query and labels without the
//! `--query.replica-label`s, keeping the most recently evaluated.
//!
//! Kept apart from the StoreAPI code: the Rules API shares only the endpoint list.
//!
//! Unfinished: the `rule_name[]`, `rule_group[]`, `file[]` and `match[]` filters; a rules
//! endpoint's Info (`rules` set) is not consulted, the call itself tells.

use super::Federation;
use crate::http::response::error_response;
use crate::rule::notify::rfc3339;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use proto::thanos::rules_client::RulesClient;
use proto::thanos::{self as pb, rules_request, rules_response, RulesRequest};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

/// How long one endpoint may take to answer.
const RULES_TIMEOUT: Duration = Duration::from_secs(30);

/// Seconds from the Unix epoch to Go's zero time, which Thanos sends for "never".
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// What the routes share.
#[derive(Clone)]
struct RulesState {
    federation: Arc<Federation>,
    replica_labels: Vec<String>,
}

/// The routes `/api/v1/rules` and `/api/v1/alerts` over the federation's endpoints.
pub fn routes(federation: Arc<Federation>, replica_labels: Vec<String>) -> Router {
    Router::new()
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .with_state(RulesState {
            federation,
            replica_labels,
        })
}

/// Groups from every rules endpoint, and a warning per endpoint that failed.
async fn gather(st: &RulesState, kind: rules_request::Type) -> (Vec<pb::RuleGroup>, Vec<String>) {
    let addresses = st.federation.addresses().await;
    let calls = addresses.iter().map(|a| ask(a, kind));
    let mut groups = Vec::new();
    let mut warnings = Vec::new();
    for (a, r) in addresses.iter().zip(futures::future::join_all(calls).await) {
        match r {
            Ok(Some(g)) => groups.extend(g),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(endpoint = %a, error = %e, "rules endpoint failed");
                warnings.push(format!("fetching rules from {a}: {e}"));
            }
        }
    }
    (merge(groups, &st.replica_labels), warnings)
}

/// One endpoint's groups; `None` when it does not serve the Rules API.
async fn ask(
    address: &str,
    kind: rules_request::Type,
) -> Result<Option<Vec<pb::RuleGroup>>, String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("bad address: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(RULES_TIMEOUT)
        .connect_lazy();
    let request = RulesRequest {
        r#type: kind as i32,
        partial_response_strategy: pb::PartialResponseStrategy::Warn as i32,
        ..Default::default()
    };
    let call = async {
        let mut stream = match RulesClient::new(channel).rules(request).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::Unimplemented => return Ok(None),
            Err(s) => return Err(s.message().to_string()),
        };
        let mut groups = Vec::new();
        while let Some(frame) = stream
            .message()
            .await
            .map_err(|s| s.message().to_string())?
        {
            match frame.result {
                Some(rules_response::Result::Group(g)) => groups.push(g),
                Some(rules_response::Result::Warning(w)) => {
                    tracing::warn!(endpoint = %address, warning = %w, "rules endpoint warned");
                }
                None => {}
            }
        }
        Ok(Some(groups))
    };
    tokio::time::timeout(RULES_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", RULES_TIMEOUT.as_secs())))
}

fn labels_of(set: &Option<pb::LabelSet>) -> BTreeMap<String, String> {
    set.iter()
        .flat_map(|s| s.labels.iter())
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

fn last_evaluation(r: &pb::Rule) -> (i64, i32) {
    let t = match &r.result {
        Some(pb::rule::Result::Alert(a)) => a.last_evaluation.as_ref(),
        Some(pb::rule::Result::Recording(x)) => x.last_evaluation.as_ref(),
        None => None,
    };
    t.map_or((i64::MIN, 0), |t| (t.seconds, t.nanos))
}

/// What makes two rules the same rule on two replicas.
fn rule_key(
    r: &pb::Rule,
    replica_labels: &[String],
) -> (bool, String, String, Vec<(String, String)>) {
    let (alert, name, query, labels) = match &r.result {
        Some(pb::rule::Result::Alert(a)) => (true, &a.name, &a.query, labels_of(&a.labels)),
        Some(pb::rule::Result::Recording(x)) => (false, &x.name, &x.query, labels_of(&x.labels)),
        None => return (false, String::new(), String::new(), Vec::new()),
    };
    let labels = labels
        .into_iter()
        .filter(|(k, _)| !replica_labels.contains(k))
        .collect();
    (alert, name.clone(), query.clone(), labels)
}

/// Merges groups of the same file and name, deduplicating their rules.
fn merge(groups: Vec<pb::RuleGroup>, replica_labels: &[String]) -> Vec<pb::RuleGroup> {
    let mut by_key: BTreeMap<(String, String), pb::RuleGroup> = BTreeMap::new();
    for g in groups {
        match by_key.entry((g.file.clone(), g.name.clone())) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(g);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let kept = o.get_mut();
                for r in g.rules {
                    let key = rule_key(&r, replica_labels);
                    match kept
                        .rules
                        .iter_mut()
                        .find(|k| rule_key(k, replica_labels) == key)
                    {
                        Some(k) if last_evaluation(&r) > last_evaluation(k) => *k = r,
                        Some(_) => {}
                        None => kept.rules.push(r),
                    }
                }
            }
        }
    }
    by_key.into_values().collect()
}

fn time_json(t: &Option<proto::Timestamp>) -> Value {
    match t {
        Some(t) if t.seconds != GO_ZERO_TIME_SECONDS => {
            json!(rfc3339(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000))
        }
        _ => json!("0001-01-01T00:00:00Z"),
    }
}

fn state_str(s: i32) -> &'static str {
    match pb::AlertState::try_from(s) {
        Ok(pb::AlertState::Pending) => "pending",
        Ok(pb::AlertState::Firing) => "firing",
        _ => "inactive",
    }
}

fn strategy_str(s: i32) -> &'static str {
    match pb::PartialResponseStrategy::try_from(s) {
        Ok(pb::PartialResponseStrategy::Warn) => "WARN",
        _ => "ABORT",
    }
}

fn instance_json(a: &pb::AlertInstance) -> Value {
    json!({
        "labels": labels_of(&a.labels),
        "annotations": labels_of(&a.annotations),
        "state": state_str(a.state),
        "activeAt": time_json(&a.active_at),
        "value": a.value,
        "partialResponseStrategy": strategy_str(a.partial_response_strategy),
    })
}

fn health(
    obj: &mut Map<String, Value>,
    health: &str,
    err: &str,
    secs: f64,
    t: &Option<proto::Timestamp>,
) {
    obj.insert("health".into(), json!(health));
    if !err.is_empty() {
        obj.insert("lastError".into(), json!(err));
    }
    obj.insert("evaluationTime".into(), json!(secs));
    obj.insert("lastEvaluation".into(), time_json(t));
}

/// A rule in Prometheus' `/api/v1/rules` shape.
fn rule_json(r: &pb::Rule) -> Option<Value> {
    let mut obj = Map::new();
    match r.result.as_ref()? {
        pb::rule::Result::Alert(a) => {
            obj.insert("state".into(), json!(state_str(a.state)));
            obj.insert("name".into(), json!(a.name));
            obj.insert("query".into(), json!(a.query));
            obj.insert("duration".into(), json!(a.duration_seconds));
            obj.insert("keepFiringFor".into(), json!(a.keep_firing_for_seconds));
            obj.insert("labels".into(), json!(labels_of(&a.labels)));
            obj.insert("annotations".into(), json!(labels_of(&a.annotations)));
            let alerts: Vec<Value> = a.alerts.iter().map(instance_json).collect();
            obj.insert("alerts".into(), json!(alerts));
            health(
                &mut obj,
                &a.health,
                &a.last_error,
                a.evaluation_duration_seconds,
                &a.last_evaluation,
            );
            obj.insert("type".into(), json!("alerting"));
        }
        pb::rule::Result::Recording(x) => {
            obj.insert("name".into(), json!(x.name));
            obj.insert("query".into(), json!(x.query));
            let labels = labels_of(&x.labels);
            if !labels.is_empty() {
                obj.insert("labels".into(), json!(labels));
            }
            health(
                &mut obj,
                &x.health,
                &x.last_error,
                x.evaluation_duration_seconds,
                &x.last_evaluation,
            );
            obj.insert("type".into(), json!("recording"));
        }
    }
    Some(Value::Object(obj))
}

fn group_json(g: &pb::RuleGroup) -> Value {
    let rules: Vec<Value> = g.rules.iter().filter_map(rule_json).collect();
    json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval,
        "limit": g.limit,
        "evaluationTime": g.evaluation_duration_seconds,
        "lastEvaluation": time_json(&g.last_evaluation),
        "partialResponseStrategy": strategy_str(g.partial_response_strategy),
    })
}

/// `partial_response=false` turns a failing endpoint into the answer's error.
fn strict(q: &HashMap<String, String>) -> bool {
    matches!(
        q.get("partial_response").map(String::as_str),
        Some("false" | "0")
    )
}

fn answer(data: Value, warnings: Vec<String>, q: &HashMap<String, String>) -> Response {
    if strict(q) && !warnings.is_empty() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &warnings.join("; "),
        );
    }
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    axum::Json(body).into_response()
}

async fn rules(State(st): State<RulesState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let kind = match q.get("type").map(String::as_str) {
        None | Some("") => rules_request::Type::All,
        Some("alert") => rules_request::Type::Alert,
        Some("record") => rules_request::Type::Record,
        Some(t) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_data",
                &format!("invalid query parameter type='{t}'"),
            )
        }
    };
    let (groups, warnings) = gather(&st, kind).await;
    let groups: Vec<Value> = groups.iter().map(group_json).collect();
    answer(json!({ "groups": groups }), warnings, &q)
}

async fn alerts(
    State(st): State<RulesState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (groups, warnings) = gather(&st, rules_request::Type::Alert).await;
    let alerts: Vec<Value> = groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| match &r.result {
            Some(pb::rule::Result::Alert(a)) => Some(a.alerts.iter().map(instance_json)),
            _ => None,
        })
        .flatten()
        .collect();
    answer(json!({ "alerts": alerts }), warnings, &q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(name: &str, replica: &str, eval_s: i64) -> pb::Rule {
        pb::Rule {
            result: Some(pb::rule::Result::Recording(pb::RecordingRule {
                name: name.into(),
                query: "up".into(),
                labels: Some(pb::LabelSet {
                    labels: vec![pb::Label {
                        name: "replica".into(),
                        value: replica.into(),
                    }],
                }),
                health: "ok".into(),
                last_evaluation: Some(proto::Timestamp {
                    seconds: eval_s,
                    nanos: 0,
                }),
                ..Default::default()
            })),
        }
    }

    fn group(rules: Vec<pb::Rule>) -> pb::RuleGroup {
        pb::RuleGroup {
            name: "g".into(),
            file: "f.yml".into(),
            rules,
            ..Default::default()
        }
    }

    #[test]
    fn replicas_groups_merge_into_one_keeping_the_latest_evaluation() {
        let a = group(vec![recording("r", "a", 10)]);
        let b = group(vec![recording("r", "b", 20), recording("s", "b", 20)]);
        let merged = merge(vec![a.clone(), b.clone()], &["replica".to_string()]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].rules.len(), 2);
        assert_eq!(last_evaluation(&merged[0].rules[0]).0, 20);
        // Without the replica label named, the two "r" rules differ.
        let apart = merge(vec![a, b], &[]);
        assert_eq!(apart[0].rules.len(), 3);
    }

    #[test]
    fn rules_print_in_prometheus_shape() {
        let mut g = group(vec![recording("r", "a", 0)]);
        g.partial_response_strategy = pb::PartialResponseStrategy::Abort as i32;
        let v = group_json(&g);
        assert_eq!(v["rules"][0]["type"], "recording");
        assert_eq!(v["rules"][0]["labels"]["replica"], "a");
        assert_eq!(v["lastEvaluation"], "0001-01-01T00:00:00Z");
        assert_eq!(v["partialResponseStrategy"], "ABORT");
        let zero = Some(proto::Timestamp {
            seconds: GO_ZERO_TIME_SECONDS,
            nanos: 0,
        });
        assert_eq!(time_json(&zero), "0001-01-01T00:00:00Z");
    }
}
