//! The ruler's gRPC services on `--grpc-address`: the StoreAPI and Info over its results
//! (the querier's StoreAPI server, `crate::query::remote::serve`, over [`Labelled`]
//! results), and Thanos' Rules API (`thanos.Rules`) over the manager's groups.
//!
//! As Thanos' ruler: one frame per group, the `type` filter keeps empty groups, and every
//! rule's labels are extended with the external labels (which win). The request's
//! `matcher_string`, `rule_name`, `rule_group` and `file` filters are applied by name only
//! (`matcher_string` is ignored; Thanos' ruler ignores every one of them).

use super::alert::{Alert, AlertState, AlertingRule};
use super::file::PartialResponse;
use super::group::{Group, Health, RuleState};
use super::labelled::Labelled;
use super::manager::Manager;
use super::results::Results;
use crate::query::remote::serve::QueryStore;
use crate::store::convert::labels_to_pb;
use proto::thanos::rules_server::{Rules, RulesServer};
use proto::thanos::{self as pb, rules_request, rules_response, RulesRequest, RulesResponse};
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::labels::Labels;
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status};

/// Seconds from the Unix epoch to Go's zero time (`0001-01-01T00:00:00Z`), which Thanos sends
/// for "never".
pub const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// A millisecond timestamp on the wire; 0 (never) as Go's zero time.
pub fn timestamp(ms: i64) -> proto::Timestamp {
    if ms == 0 {
        return proto::Timestamp {
            seconds: GO_ZERO_TIME_SECONDS,
            nanos: 0,
        };
    }
    proto::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn label_set(map: &BTreeMap<String, String>) -> pb::LabelSet {
    pb::LabelSet {
        labels: labels_to_pb(&Labels::from_pairs(map.iter())),
    }
}

fn state_pb(s: AlertState) -> pb::AlertState {
    match s {
        AlertState::Inactive => pb::AlertState::Inactive,
        AlertState::Pending => pb::AlertState::Pending,
        AlertState::Firing => pb::AlertState::Firing,
    }
}

fn strategy_pb(p: PartialResponse) -> pb::PartialResponseStrategy {
    match p {
        PartialResponse::Abort => pb::PartialResponseStrategy::Abort,
        PartialResponse::Warn => pb::PartialResponseStrategy::Warn,
    }
}

fn instance_pb(a: &Alert, strategy: pb::PartialResponseStrategy) -> pb::AlertInstance {
    pb::AlertInstance {
        labels: Some(label_set(&a.labels)),
        annotations: Some(label_set(&a.annotations)),
        state: state_pb(a.state) as i32,
        active_at: (a.active_at != 0).then(|| timestamp(a.active_at)),
        value: super::api::value_e(a.value),
        partial_response_strategy: strategy as i32,
    }
}

fn alerting_pb(
    a: &AlertingRule,
    h: &Health,
    ext: &BTreeMap<String, String>,
    strategy: pb::PartialResponseStrategy,
) -> pb::Alert {
    let r = &a.rule;
    let mut labels = r.labels.clone();
    labels.extend(ext.iter().map(|(k, v)| (k.clone(), v.clone())));
    pb::Alert {
        state: state_pb(a.state()) as i32,
        name: r.alert.clone(),
        query: r.expr.clone(),
        duration_seconds: r.for_.as_secs_f64(),
        labels: Some(label_set(&labels)),
        annotations: Some(label_set(&r.annotations)),
        alerts: a
            .active
            .values()
            .filter(|x| x.state != AlertState::Inactive)
            .map(|x| instance_pb(x, strategy))
            .collect(),
        health: h.health.to_string(),
        last_error: h.last_error.clone(),
        evaluation_duration_seconds: h.evaluation_seconds,
        last_evaluation: Some(timestamp(h.last_evaluation_ms)),
        keep_firing_for_seconds: r.keep_firing_for.as_secs_f64(),
    }
}

fn rule_pb(
    s: &RuleState,
    h: &Health,
    ext: &BTreeMap<String, String>,
    strategy: pb::PartialResponseStrategy,
) -> pb::Rule {
    let result = match s {
        RuleState::Alerting(a) => pb::rule::Result::Alert(alerting_pb(a, h, ext, strategy)),
        RuleState::Recording(r, _) => {
            let mut labels = r.labels.clone();
            labels.extend(ext.iter().map(|(k, v)| (k.clone(), v.clone())));
            pb::rule::Result::Recording(pb::RecordingRule {
                name: r.record.clone(),
                query: r.expr.clone(),
                labels: Some(label_set(&labels)),
                health: h.health.to_string(),
                last_error: h.last_error.clone(),
                evaluation_duration_seconds: h.evaluation_seconds,
                last_evaluation: Some(timestamp(h.last_evaluation_ms)),
            })
        }
    };
    pb::Rule {
        result: Some(result),
    }
}

/// Whether `request` asks for this rule (by type and name).
fn wanted(request: &RulesRequest, s: &RuleState) -> bool {
    let type_ok = match request.r#type() {
        rules_request::Type::All => true,
        rules_request::Type::Alert => matches!(s, RuleState::Alerting(_)),
        rules_request::Type::Record => matches!(s, RuleState::Recording(..)),
    };
    type_ok
        && (request.rule_name.is_empty() || request.rule_name.iter().any(|n| n == s.rule().name()))
}

/// One group on the wire, with the rules `request` asks for.
pub fn group_pb(
    g: &Group,
    ext: &BTreeMap<String, String>,
    request: &RulesRequest,
) -> pb::RuleGroup {
    let strategy = strategy_pb(g.config.partial_response);
    pb::RuleGroup {
        name: g.config.name.clone(),
        file: g.file.clone(),
        rules: g
            .rules
            .iter()
            .filter(|(s, _)| wanted(request, s))
            .map(|(s, h)| rule_pb(s, h, ext, strategy))
            .collect(),
        interval: g.interval.as_secs_f64(),
        evaluation_duration_seconds: g.last_duration.as_secs_f64(),
        last_evaluation: Some(timestamp(g.last_evaluation_ms)),
        limit: g.config.limit,
        partial_response_strategy: strategy as i32,
    }
}

/// `thanos.Rules` over the manager.
#[derive(Clone)]
pub struct RulesService {
    manager: Arc<Manager>,
    external: BTreeMap<String, String>,
    /// A node lists only the groups it holds (every node loads every group).
    only: Option<GroupFilter>,
}

type FrameStream = tokio_stream::Iter<std::vec::IntoIter<Result<RulesResponse, Status>>>;

#[tonic::async_trait]
impl Rules for RulesService {
    type RulesStream = FrameStream;

    async fn rules(
        &self,
        request: Request<RulesRequest>,
    ) -> Result<Response<Self::RulesStream>, Status> {
        let r = request.into_inner();
        let frames: Vec<Result<RulesResponse, Status>> = self
            .manager
            .groups()
            .iter()
            .filter(|g| r.rule_group.is_empty() || r.rule_group.contains(&g.config.name))
            .filter(|g| r.file.is_empty() || r.file.contains(&g.file))
            .filter(|g| self.only.as_ref().is_none_or(|only| only(&g.key())))
            .map(|g| {
                Ok(RulesResponse {
                    result: Some(rules_response::Result::Group(group_pb(
                        g,
                        &self.external,
                        &r,
                    ))),
                })
            })
            .collect();
        Ok(Response::new(tokio_stream::iter(frames)))
    }
}

/// The ruler's StoreAPI over `results`, whose series carry the `external` labels.
pub fn results_store(results: Arc<Results>, external: &BTreeMap<String, String>) -> QueryStore {
    let ext_labels = Labels::from_pairs(external.iter());
    let source = Arc::new(Labelled::new(results.clone(), ext_labels.clone()));
    let min_time = Arc::new(move || results.min_time().unwrap_or(i64::MAX));
    QueryStore::rule(source, ext_labels, min_time)
}

/// Which groups (by `<file>;<name>`) the Rules API lists.
pub type GroupFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// `thanos.Rules` over `manager`'s groups that `only` lets through (all without it).
pub fn rules_server(
    manager: Arc<Manager>,
    external: BTreeMap<String, String>,
    only: Option<GroupFilter>,
) -> RulesServer<RulesService> {
    RulesServer::new(RulesService {
        manager,
        external,
        only,
    })
}

/// Adds the ruler's StoreAPI, Info and Rules API to `routes`.
pub fn add_services(
    routes: &mut RoutesBuilder,
    manager: Arc<Manager>,
    results: Arc<Results>,
    external: BTreeMap<String, String>,
) {
    let store = results_store(results, &external);
    routes.add_service(store.store_server());
    routes.add_service(store.info_server());
    routes.add_service(rules_server(manager, external, None));
}
