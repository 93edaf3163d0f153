//! Where rules get their data: a querier or Prometheus over its HTTP API (`--query`: URLs,
//! `host:port`, `dns+`/`dnssrv+` names re-resolved every `--query.sd-dns-interval`, and
//! `--query.sd-files` in Prometheus' file-SD format, re-read when changed; the querier's
//! discovery, `crate::query::remote::discover`), or the embedded engine over a `Queryable`
//! (the bucket's blocks).

use super::alert::LabelMap;
use super::file::PartialResponse;
use crate::query::remote::discover::{DiscoveryConfig, SpecError, StoreDiscovery, StoreSpec};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// An instant query's answer as rules use it: samples, plus warnings (partial data).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    /// Series labels and values (a scalar is one sample with no labels).
    pub samples: Vec<(LabelMap, f64)>,
    /// Warnings the query returned.
    pub warnings: Vec<String>,
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// No query endpoint answered.
    #[error("query {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The endpoint answered with an error.
    #[error("query {url}: {error_type}: {message}")]
    Api {
        /// The endpoint.
        url: String,
        /// Prometheus' errorType.
        error_type: String,
        /// Its error message.
        message: String,
    },
    /// The result was neither a vector nor a scalar.
    #[error("rule result is not a vector or scalar")]
    NotVector,
    /// The embedded engine failed.
    #[error("{0}")]
    Engine(String),
    /// Partial data under the `abort` strategy.
    #[error("partial response under the abort strategy: {0}")]
    Partial(String),
}

/// Evaluates instant queries for rules.
#[async_trait::async_trait]
pub trait QueryBackend: Send + Sync {
    /// Evaluates `expr` at `ts_ms`.
    async fn instant(
        &self,
        expr: &str,
        ts_ms: i64,
        partial: PartialResponse,
    ) -> Result<Answer, QueryError>;
}

/// Why the `--query` backend could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A `--query` value is malformed.
    #[error("--query {0}")]
    Spec(#[from] SpecError),
    /// The DNS resolver or HTTP client could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// Where `--query` endpoints are: URLs given with a scheme, and discovered `host:port`s.
#[derive(Debug, Clone, Default)]
pub struct QueryTargets {
    /// `--query` values.
    pub specs: Vec<String>,
    /// `--query.sd-files`.
    pub sd_files: Vec<PathBuf>,
    /// `--query.sd-dns-interval`.
    pub dns_interval: Duration,
}

/// `--query` endpoints over Prometheus' HTTP API; the first that answers wins.
pub struct HttpBackend {
    urls: Vec<String>,
    discovery: Option<StoreDiscovery>,
    client: reqwest::Client,
}

impl HttpBackend {
    /// A backend over `targets`: `http(s)://host:port[/prefix]` as given, `host:port`,
    /// `dns+name:port` and `dnssrv+name` through discovery, over plain HTTP.
    pub fn new(targets: &QueryTargets, timeout: Duration) -> Result<HttpBackend, BackendError> {
        let mut urls = Vec::new();
        let mut specs = Vec::new();
        for u in &targets.specs {
            let u = u.trim_end_matches('/');
            if u.contains("://") {
                urls.push(u.to_string());
            } else {
                specs.push(u.parse::<StoreSpec>()?);
            }
        }
        let discovery = if specs.is_empty() && targets.sd_files.is_empty() {
            None
        } else {
            let config = DiscoveryConfig {
                specs,
                files: targets.sd_files.clone(),
                dns_interval: targets.dns_interval,
                nameserver: None,
            };
            Some(StoreDiscovery::new(config).map_err(|e| BackendError::Setup(e.to_string()))?)
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| BackendError::Setup(e.to_string()))?;
        Ok(HttpBackend {
            urls,
            discovery,
            client,
        })
    }

    /// Every endpoint now: the URLs, then the discovered addresses.
    pub async fn endpoints(&self) -> Vec<String> {
        let mut out = self.urls.clone();
        if let Some(d) = &self.discovery {
            out.extend(
                d.addresses()
                    .await
                    .into_iter()
                    .map(|a| format!("http://{a}")),
            );
        }
        out
    }

    async fn query_one(
        &self,
        base: &str,
        expr: &str,
        ts_ms: i64,
        partial: PartialResponse,
    ) -> Result<Answer, QueryError> {
        let url = format!("{base}/api/v1/query");
        let time = format!("{}.{:03}", ts_ms.div_euclid(1000), ts_ms.rem_euclid(1000));
        let partial_flag = if partial == PartialResponse::Warn {
            "true"
        } else {
            "false"
        };
        let form = [
            ("query", expr),
            ("time", time.as_str()),
            // Thanos' querier reads these; Prometheus ignores them.
            ("partial_response", partial_flag),
            ("dedup", "true"),
        ];
        let unreachable = |reason: String| QueryError::Unreachable {
            url: base.to_string(),
            reason,
        };
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .client
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| unreachable(format!("HTTP {status}: {e}")))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| unreachable(format!("HTTP {status}: unreadable answer: {e}")))?;
        parse_answer(base, &body)
    }
}

/// Reads Prometheus' `/api/v1/query` JSON.
pub fn parse_answer(url: &str, body: &serde_json::Value) -> Result<Answer, QueryError> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    if body["status"] != "success" {
        return Err(QueryError::Api {
            url: url.to_string(),
            error_type: text(&body["errorType"]),
            message: text(&body["error"]),
        });
    }
    let warnings = body["warnings"]
        .as_array()
        .map(|w| w.iter().map(text).collect())
        .unwrap_or_default();
    let value = |p: &serde_json::Value| -> Result<f64, QueryError> {
        let s = p
            .get(1)
            .and_then(|v| v.as_str())
            .ok_or(QueryError::NotVector)?;
        parse_prom_float(s).ok_or(QueryError::NotVector)
    };
    let data = &body["data"];
    let samples = match data["resultType"].as_str() {
        Some("scalar") => vec![(LabelMap::new(), value(&data["result"])?)],
        Some("vector") => {
            let mut out = Vec::new();
            for s in data["result"].as_array().ok_or(QueryError::NotVector)? {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                    .unwrap_or_default();
                out.push((labels, value(&s["value"])?));
            }
            out
        }
        _ => return Err(QueryError::NotVector),
    };
    Ok(Answer { samples, warnings })
}

/// Prometheus' JSON float strings (`NaN`, `+Inf`, `-Inf`, decimals).
fn parse_prom_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

#[async_trait::async_trait]
impl QueryBackend for HttpBackend {
    async fn instant(
        &self,
        expr: &str,
        ts_ms: i64,
        partial: PartialResponse,
    ) -> Result<Answer, QueryError> {
        let mut last = QueryError::Engine("no --query endpoint was discovered".into());
        for base in &self.endpoints().await {
            match self.query_one(base, expr, ts_ms, partial).await {
                // An API error is the query's own fault: another endpoint would say the same.
                Ok(a) => return Ok(a),
                Err(e @ QueryError::Api { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "query endpoint failed; trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }
}

/// The embedded engine over a `Queryable` (the bucket's blocks, or the ruler's own results).
pub struct EngineBackend {
    engine: promql::Engine,
    source: Arc<dyn promql::Queryable>,
}

impl EngineBackend {
    /// A backend evaluating with `engine` over `source`.
    pub fn new(engine: promql::Engine, source: Arc<dyn promql::Queryable>) -> Self {
        EngineBackend { engine, source }
    }
}

#[async_trait::async_trait]
impl QueryBackend for EngineBackend {
    async fn instant(
        &self,
        expr: &str,
        ts_ms: i64,
        partial: PartialResponse,
    ) -> Result<Answer, QueryError> {
        let r = self
            .engine
            .instant_query(self.source.as_ref(), expr, ts_ms)
            .await
            .map_err(|e| QueryError::Engine(e.to_string()))?;
        if partial == PartialResponse::Abort && !r.warnings.is_empty() {
            return Err(QueryError::Partial(r.warnings.join("; ")));
        }
        let to_map = |l: &storage::labels::Labels| -> LabelMap {
            l.iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect()
        };
        let samples = match r.value {
            promql::Value::Scalar { v, .. } => vec![(LabelMap::new(), v)],
            promql::Value::Vector(v) => v.iter().map(|s| (to_map(&s.metric), s.v)).collect(),
            _ => return Err(QueryError::NotVector),
        };
        Ok(Answer {
            samples,
            warnings: r.warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn embedded_engine_answers_vectors_and_scalars_and_refuses_matrices() {
        let mut mem = promql::MemoryQueryable::new();
        let labels = storage::labels::Labels::from_pairs([("__name__", "x"), ("job", "a")]);
        mem.append(labels, &[(1_000, 2.0), (2_000, 3.0)]);
        let b = EngineBackend::new(promql::Engine::default(), Arc::new(mem));
        let a = b
            .instant("x * 2", 2_000, PartialResponse::Abort)
            .await
            .expect("vector");
        assert_eq!(
            a.samples,
            vec![(LabelMap::from([("job".into(), "a".into())]), 6.0)]
        );
        let s = b
            .instant("1 + 1", 2_000, PartialResponse::Abort)
            .await
            .expect("scalar");
        assert_eq!(s.samples, vec![(LabelMap::new(), 2.0)]);
        let m = b.instant("x[1m]", 2_000, PartialResponse::Abort).await;
        assert_eq!(m, Err(QueryError::NotVector));
    }

    #[tokio::test]
    async fn query_targets_keep_urls_and_discover_the_rest() {
        let d = tempfile::tempdir().expect("tempdir");
        let sd = d.path().join("q.yml");
        std::fs::write(&sd, "- targets: ['127.0.0.1:9091']\n").expect("write");
        let targets = QueryTargets {
            specs: vec!["http://a:9090/prefix/".into(), "127.0.0.1:9090".into()],
            sd_files: vec![sd.clone()],
            dns_interval: Duration::from_secs(30),
        };
        let b = HttpBackend::new(&targets, Duration::from_secs(1)).expect("backend");
        assert_eq!(
            b.endpoints().await,
            vec![
                "http://a:9090/prefix".to_string(),
                "http://127.0.0.1:9090".into(),
                "http://127.0.0.1:9091".into(),
            ]
        );
        std::fs::write(&sd, "- targets: ['127.0.0.1:9092']\n  labels: {a: b}\n").expect("rewrite");
        assert_eq!(
            b.endpoints().await[2],
            "http://127.0.0.1:9092",
            "the file is re-read"
        );
        let bad = QueryTargets {
            specs: vec!["dns+nameonly".into()],
            ..QueryTargets::default()
        };
        let e = HttpBackend::new(&bad, Duration::from_secs(1))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("missing port"), "{e}");
    }

    #[test]
    fn reads_vectors_scalars_and_errors() {
        let v = serde_json::json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"a"},"value":[1.5,"1"]},
            {"metric":{"job":"b"},"value":[1.5,"NaN"]}]}});
        let a = parse_answer("u", &v).expect("vector");
        assert_eq!(a.samples.len(), 2);
        assert_eq!(a.samples[0].0["job"], "a");
        assert!(a.samples[1].1.is_nan());
        let s = serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}});
        assert_eq!(
            parse_answer("u", &s).expect("scalar").samples,
            vec![(LabelMap::new(), 2.0)]
        );
        let m = serde_json::json!({"status":"success","data":{"resultType":"matrix","result":[]}});
        assert_eq!(parse_answer("u", &m), Err(QueryError::NotVector));
        let e = serde_json::json!({"status":"error","errorType":"bad_data","error":"parse error"});
        assert!(matches!(parse_answer("u", &e), Err(QueryError::Api { .. })));
    }
}
