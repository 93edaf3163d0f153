//! `/api/v1/stores`: the querier's StoreAPI endpoints and their health, in Thanos' shape —
//! endpoints grouped by component type, each with `name`, `lastCheck`, `lastError`,
//! `labelSets`, `minTime` and `maxTime`.
//!
//! An endpoint that never answered Info has no known type; Thanos leaves such endpoints out,
//! Strata lists them under `unknown` so a misspelt or dead endpoint is visible.

use super::json;
use super::response::ApiResult;
use super::ApiState;
use axum::extract::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use storage::labels::Labels;

/// One endpoint's state as of its last Info call.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStatus {
    /// Its address.
    pub name: String,
    /// When Info was last asked.
    pub last_check: SystemTime,
    /// Why the last Info call failed, if it did.
    pub last_error: Option<String>,
    /// External label sets of its data.
    pub label_sets: Vec<Labels>,
    /// Earliest timestamp served.
    pub min_time: i64,
    /// Latest timestamp served.
    pub max_time: i64,
    /// `store`, `sidecar`, `query`, ... (`unknown` before its first good answer).
    pub component_type: String,
}

/// The JSON `data` object for `statuses`.
pub fn stores_json(statuses: &[StoreStatus]) -> String {
    let mut by_type: BTreeMap<&str, Vec<&StoreStatus>> = BTreeMap::new();
    for s in statuses {
        by_type.entry(&s.component_type).or_default().push(s);
    }
    let mut out = String::from("{");
    for (i, (typ, list)) in by_type.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(&mut out, typ);
        out.push_str(":[");
        for (j, s) in list.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            write_status(&mut out, s);
        }
        out.push(']');
    }
    out.push('}');
    out
}

fn write_status(out: &mut String, s: &StoreStatus) {
    out.push_str("{\"name\":");
    json::write_str(out, &s.name);
    out.push_str(",\"lastCheck\":");
    json::write_str(
        out,
        &humantime::format_rfc3339_nanos(s.last_check).to_string(),
    );
    out.push_str(",\"lastError\":");
    match &s.last_error {
        Some(e) => json::write_str(out, e),
        None => out.push_str("null"),
    }
    out.push_str(",\"labelSets\":[");
    for (i, l) in s.label_sets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_labels(out, l);
    }
    out.push_str(&format!(
        "],\"minTime\":{},\"maxTime\":{}}}",
        s.min_time, s.max_time
    ));
}

/// `GET /api/v1/stores`.
pub async fn stores(State(st): State<Arc<ApiState>>) -> ApiResult {
    ApiResult::data(stores_json(&st.source.stores().await))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stores_are_grouped_by_type_in_thanos_shape() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let ok = StoreStatus {
            name: "127.0.0.1:10901".into(),
            last_check: at,
            last_error: None,
            label_sets: vec![Labels::from_pairs([("region", "eu")])],
            min_time: 5,
            max_time: 9,
            component_type: "store".into(),
        };
        let bad = StoreStatus {
            name: "127.0.0.1:1".into(),
            last_error: Some("connection refused".into()),
            label_sets: vec![],
            min_time: 0,
            max_time: 0,
            component_type: "unknown".into(),
            ..ok.clone()
        };
        let v: serde_json::Value =
            serde_json::from_str(&stores_json(&[ok, bad])).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({
                "store": [{"name": "127.0.0.1:10901", "lastCheck": "2023-11-14T22:13:20.123000000Z",
                    "lastError": null, "labelSets": [{"region": "eu"}], "minTime": 5, "maxTime": 9}],
                "unknown": [{"name": "127.0.0.1:1", "lastCheck": "2023-11-14T22:13:20.123000000Z",
                    "lastError": "connection refused", "labelSets": [], "minTime": 0, "maxTime": 0}],
            })
        );
    }
}
