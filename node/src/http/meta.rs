//! The metadata endpoints: series, labels, label values, build info, flags, and the endpoints
//! Strata answers empty (metadata, exemplars).

use super::json;
use super::params::{
    dedup_labels, go_quote, is_valid_label_name, parse_match_params_async, parse_time_param,
    read_form, Form, MAX_TIME_MS, MIN_TIME_MS,
};
use super::response::{ApiError, ApiResult, ErrorType};
use super::store_params::StoreOptions;
use super::{ApiState, SeriesSource};
use axum::extract::{Path, Request, State};
use promql::QueryError;
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::labels::Labels;

/// Optional `start` and `end` (the whole time range when absent).
fn time_range(form: &Form) -> Result<(i64, i64), ApiError> {
    let start = parse_time_param(form, "start", MIN_TIME_MS)
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time_param(form, "end", MAX_TIME_MS)
        .map_err(|e| ApiError::invalid_param("end", e))?;
    Ok((start, end))
}

/// The source as this request reads it: deduplicated per `dedup` and `replicaLabels[]`.
async fn request_source(st: &ApiState, form: &Form) -> Result<Arc<dyn SeriesSource>, ApiError> {
    let labels = dedup_labels(form, &st.replica_labels)?;
    let opts = StoreOptions::read(form).await?;
    // The source as this request sees it, recording its warnings (a failing store, a skipped
    // block), which the answer then carries as Prometheus does.
    let view = st
        .source
        .for_request(&opts)
        .unwrap_or_else(|| st.source.clone());
    Ok(crate::query::dedup::deduplicated(view, labels))
}

fn storage_error(e: &QueryError) -> ApiError {
    ApiError::from_query(e)
}

/// Label-set list as `[{"__name__":"up",...},...]`.
fn labels_json(sets: &[Labels]) -> String {
    let mut out = String::from("[");
    for (i, l) in sets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_labels(&mut out, l);
    }
    out.push(']');
    out
}

/// `GET|POST /api/v1/series`.
pub async fn series(State(st): State<Arc<ApiState>>, req: Request) -> ApiResult {
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let matches = form.values("match[]");
    if matches.is_empty() {
        return ApiError::bad_data("no match[] parameter provided").into();
    }
    let (start, end) = match time_range(&form) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let sets = match parse_match_params_async(&matches).await {
        Ok(s) => s,
        Err(e) if e.typ == ErrorType::BadData => {
            return ApiError::invalid_param("match[]", e.message).into()
        }
        Err(e) => return e.into(),
    };
    let source = match request_source(&st, &form).await {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    let mut all: BTreeSet<Labels> = BTreeSet::new();
    let single = sets.len() == 1;
    let mut only: Vec<Labels> = Vec::new();
    for set in &sets {
        match source.series(set, start, end).await {
            Ok(found) if single => only = found,
            Ok(found) => all.extend(found),
            Err(e) => return storage_error(&e).into(),
        }
    }
    if !single {
        only = all.into_iter().collect();
    }
    ApiResult::Data {
        json: labels_json(&only),
        warnings: source.take_warnings(),
    }
}

/// `DELETE /api/v1/series`: not implemented, as in Prometheus.
pub async fn drop_series() -> ApiResult {
    ApiError::internal("not implemented").into()
}

/// The deduplicated source, time range and `match[]` selector sets shared by the labels and
/// label-values endpoints; no `match[]` means one empty set (every series).
type LabelQuery = (
    Arc<dyn SeriesSource>,
    i64,
    i64,
    Vec<Vec<storage::matcher::Matcher>>,
);

async fn label_query(st: &ApiState, req: Request) -> Result<LabelQuery, ApiResult> {
    let form = read_form(req).await.map_err(ApiResult::from)?;
    let (start, end) = time_range(&form).map_err(ApiResult::from)?;
    // Prometheus does not wrap match[] errors here.
    let mut sets = parse_match_params_async(&form.values("match[]"))
        .await
        .map_err(ApiResult::from)?;
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    let source = request_source(st, &form).await.map_err(ApiResult::from)?;
    Ok((source, start, end, sets))
}

/// A sorted, de-duplicated JSON string array, with the request's warnings.
fn string_array(items: &BTreeSet<String>, warnings: Vec<String>) -> ApiResult {
    let mut out = String::new();
    json::write_str_array(&mut out, items.iter().map(String::as_str));
    ApiResult::Data {
        json: out,
        warnings,
    }
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(State(st): State<Arc<ApiState>>, req: Request) -> ApiResult {
    let (source, start, end, sets) = match label_query(&st, req).await {
        Ok(q) => q,
        Err(r) => return r,
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    for set in &sets {
        match source.label_names(set, start, end).await {
            Ok(n) => names.extend(n),
            Err(e) => return storage_error(&e).into(),
        }
    }
    string_array(&names, source.take_warnings())
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(st): State<Arc<ApiState>>,
    Path(name): Path<String>,
    req: Request,
) -> ApiResult {
    if !is_valid_label_name(&name) {
        return ApiError::bad_data(format!("invalid label name: {}", go_quote(&name))).into();
    }
    let (source, start, end, sets) = match label_query(&st, req).await {
        Ok(q) => q,
        Err(r) => return r,
    };
    let mut values: BTreeSet<String> = BTreeSet::new();
    for set in &sets {
        match source.label_values(&name, set, start, end).await {
            Ok(v) => values.extend(v),
            Err(e) => return storage_error(&e).into(),
        }
    }
    string_array(&values, source.take_warnings())
}

/// `GET /api/v1/metadata`: Strata keeps no scrape metadata, so always `{}`.
pub async fn metadata() -> ApiResult {
    ApiResult::data("{}".into())
}

/// `GET|POST /api/v1/query_exemplars`: parameters are checked like Prometheus; blocks carry
/// no exemplars, so the answer is `[]` (204 for an expression without selectors).
pub async fn query_exemplars(req: Request) -> ApiResult {
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let (start, end) = match time_range(&form) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    if end < start {
        return ApiError::bad_data("end timestamp must not be before start timestamp").into();
    }
    match promql::engine::parse_async(form.value("query"), None).await {
        Err(e) => ApiError::bad_data(e.to_string()).into(),
        Ok(expr) if !has_selector(&expr) => ApiResult::NoContent,
        Ok(_) => ApiResult::data("[]".into()),
    }
}

/// Whether the expression reads any series (Prometheus' `ExtractSelectors` is non-empty);
/// walked without recursion, as the tree may be thousands of levels deep.
fn has_selector(expr: &promql_parser::parser::Expr) -> bool {
    use promql_parser::parser::Expr;
    promql::depth::any_node(expr, |e| {
        matches!(e, Expr::VectorSelector(_) | Expr::MatrixSelector(_))
    })
}

/// `GET /api/v1/status/buildinfo`: Prometheus' shape with a 2.42-compatible version, and no
/// `features` (which Grafana would take for Mimir).
pub async fn buildinfo() -> ApiResult {
    let mut out = String::from("{");
    let fields = [
        ("version", "2.42.0"),
        ("revision", concat!("strata-", env!("CARGO_PKG_VERSION"))),
        ("branch", "strata"),
        ("buildUser", "strata"),
        ("buildDate", ""),
        ("goVersion", "none (Strata is written in Rust)"),
    ];
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, k);
        out.push(':');
        json::write_str(&mut out, v);
    }
    out.push('}');
    ApiResult::data(out)
}

/// `GET /api/v1/status/flags`: every flag of the running command, name to value.
pub async fn flags(State(st): State<Arc<ApiState>>) -> ApiResult {
    let mut sorted: Vec<&(String, String)> = st.flags.iter().collect();
    sorted.sort();
    let mut out = String::from("{");
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, k);
        out.push(':');
        json::write_str(&mut out, v);
    }
    out.push('}');
    ApiResult::data(out)
}
