//! A client of the one Prometheus the sidecar sits next to: its status API (flags, config with
//! external labels), `/metrics` (lowest timestamp), label APIs, `/-/reload` and remote read.

use super::remote_read::{self, FrameReader};
use prost::Message as _;
use proto::prometheus as prompb;
use std::collections::BTreeMap;
use std::time::Duration;
use storage::labels::Labels;
use storage::matcher::{MatchKind, Matcher};

/// Longest a status or label request to Prometheus may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to Prometheus failed.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// Prometheus did not answer (down, refused, timed out).
    #[error("Prometheus at {url} is unreachable: {source}")]
    Unreachable {
        /// The request URL.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// Prometheus answered with an error status.
    #[error("Prometheus at {url} answered {status}: {body}")]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// Prometheus' answer is not what its API documents.
    #[error("unexpected answer from Prometheus at {url}: {reason}")]
    Decode {
        /// The request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A remote read stream was malformed.
    #[error("remote read from {url}: {source}")]
    Frame {
        /// The request URL.
        url: String,
        /// The framing error.
        source: remote_read::FrameError,
    },
}

impl PromError {
    /// Whether the error means Prometheus is not reachable (worth retrying).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PromError::Unreachable { .. })
            || matches!(self, PromError::Status { status, .. } if *status == 503)
    }
}

/// The Prometheus HTTP client.
#[derive(Debug, Clone)]
pub struct PromClient {
    http: reqwest::Client,
    base: reqwest::Url,
}

impl PromClient {
    /// A client for the Prometheus at `url` (`http://host:port`, optionally with a path prefix).
    pub fn new(url: &str) -> Result<Self, String> {
        let mut base = reqwest::Url::parse(url)
            .map_err(|e| format!("--prometheus.url {url:?} is not a valid URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "--prometheus.url {url:?}: scheme must be http or https"
            ));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(PromClient { http, base })
    }

    /// The URL of `path` (relative, no leading slash) under the base URL.
    fn url(&self, path: &str) -> reqwest::Url {
        // The base is a valid URL ending in '/', so joining a relative path cannot fail.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    async fn get_text(&self, url: reqwest::Url) -> Result<String, PromError> {
        let u = url.to_string();
        let resp = self
            .http
            .get(url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|source| PromError::Unreachable {
                url: u.clone(),
                source,
            })?;
        read_text(&u, resp).await
    }

    /// GET of a Prometheus API endpoint; returns `data` of a `"status":"success"` answer.
    async fn get_data(&self, url: reqwest::Url) -> Result<serde_json::Value, PromError> {
        let u = url.to_string();
        let text = self.get_text(url).await?;
        api_data(&u, &text)
    }

    /// `/api/v1/status/flags`: every flag and its value.
    pub async fn flags(&self) -> Result<BTreeMap<String, String>, PromError> {
        let url = self.url("api/v1/status/flags");
        let u = url.to_string();
        let data = self.get_data(url).await?;
        serde_json::from_value(data).map_err(|e| PromError::Decode {
            url: u,
            reason: format!("flags are not a map of strings: {e}"),
        })
    }

    /// External labels from `/api/v1/status/config` (`global.external_labels` of the YAML).
    pub async fn external_labels(&self) -> Result<Labels, PromError> {
        let url = self.url("api/v1/status/config");
        let u = url.to_string();
        let data = self.get_data(url).await?;
        external_labels_from_config(&data).map_err(|reason| PromError::Decode { url: u, reason })
    }

    /// The oldest sample time Prometheus holds (ms), from `/metrics`; `i64::MIN` while its TSDB
    /// is empty, so that queriers do not prune it.
    pub async fn lowest_timestamp(&self) -> Result<i64, PromError> {
        let url = self.url("metrics");
        let u = url.to_string();
        let text = self.get_text(url).await?;
        lowest_timestamp_from_metrics(&text).map_err(|reason| PromError::Decode { url: u, reason })
    }

    /// `POST /-/reload` (needs Prometheus' `--web.enable-lifecycle`).
    pub async fn reload(&self) -> Result<(), PromError> {
        let url = self.url("-/reload");
        let u = url.to_string();
        let resp = self
            .http
            .post(url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|source| PromError::Unreachable {
                url: u.clone(),
                source,
            })?;
        read_text(&u, resp).await.map(|_| ())
    }

    fn with_selection(
        mut url: reqwest::Url,
        matchers: &[Matcher],
        range: Option<(i64, i64)>,
    ) -> reqwest::Url {
        {
            let mut q = url.query_pairs_mut();
            if !matchers.is_empty() {
                q.append_pair("match[]", &selector(matchers));
            }
            if let Some((start, end)) = range {
                q.append_pair("start", &format_seconds(start));
                q.append_pair("end", &format_seconds(end));
            }
        }
        url
    }

    /// `/api/v1/labels` for series matching `matchers` (all series when empty).
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        range: Option<(i64, i64)>,
    ) -> Result<Vec<String>, PromError> {
        let url = Self::with_selection(self.url("api/v1/labels"), matchers, range);
        let u = url.to_string();
        let data = self.get_data(url).await?;
        strings(&u, data)
    }

    /// `/api/v1/label/<name>/values` for series matching `matchers`.
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        range: Option<(i64, i64)>,
    ) -> Result<Vec<String>, PromError> {
        let mut url = self.url("api/v1/label/");
        url.path_segments_mut()
            .map_err(|_| PromError::Decode {
                url: self.base.to_string(),
                reason: "base URL cannot have a path".into(),
            })?
            .pop_if_empty()
            .push(name)
            .push("values");
        let url = Self::with_selection(url, matchers, range);
        let u = url.to_string();
        let data = self.get_data(url).await?;
        strings(&u, data)
    }

    /// `/api/v1/series`: label sets of the series matching `matchers` in `[mint, maxt]`.
    pub async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, PromError> {
        let url = Self::with_selection(self.url("api/v1/series"), matchers, Some((mint, maxt)));
        let u = url.to_string();
        let data = self.get_data(url).await?;
        let maps: Vec<BTreeMap<String, String>> =
            serde_json::from_value(data).map_err(|e| PromError::Decode {
                url: u,
                reason: format!("series are not label maps: {e}"),
            })?;
        Ok(maps.into_iter().map(Labels::from_pairs).collect())
    }

    /// Remote read of `matchers` over `[mint, maxt]` asking for streamed XOR chunks; returns a
    /// reader of the answer's frames.
    pub async fn remote_read(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<FrameReader, PromError> {
        let url = self.url("api/v1/read");
        let u = url.to_string();
        let req = prompb::ReadRequest {
            queries: vec![prompb::Query {
                start_timestamp_ms: mint,
                end_timestamp_ms: maxt,
                matchers: matchers.iter().map(matcher_to_prompb).collect(),
                hints: None,
            }],
            accepted_response_types: vec![
                prompb::read_request::ResponseType::StreamedXorChunks as i32,
            ],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .map_err(|e| PromError::Decode {
                url: u.clone(),
                reason: format!("compressing the request: {e}"),
            })?;
        let resp = self
            .http
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(body)
            .send()
            .await
            .map_err(|source| PromError::Unreachable {
                url: u.clone(),
                source,
            })?;
        if !resp.status().is_success() {
            return read_text(&u, resp).await.and_then(|_| {
                Err(PromError::Decode {
                    url: u,
                    reason: "remote read failed".into(),
                })
            });
        }
        let ct = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ct.starts_with(remote_read::STREAMED_CONTENT_TYPE) {
            // Prometheus older than 2.13 answers SAMPLES only; unsupported here.
            return Err(PromError::Decode {
                url: u,
                reason: format!(
                    "remote read answered content type {ct:?}, not streamed chunks \
                     (Prometheus 2.13 or newer is needed)"
                ),
            });
        }
        Ok(FrameReader::new(u, resp))
    }
}

async fn read_text(url: &str, resp: reqwest::Response) -> Result<String, PromError> {
    let status = resp.status();
    let text = resp.text().await.map_err(|source| PromError::Unreachable {
        url: url.to_string(),
        source,
    })?;
    if !status.is_success() {
        return Err(PromError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body: text.chars().take(512).collect(),
        });
    }
    Ok(text)
}

fn strings(url: &str, data: serde_json::Value) -> Result<Vec<String>, PromError> {
    serde_json::from_value(data).map_err(|e| PromError::Decode {
        url: url.to_string(),
        reason: format!("expected a list of strings: {e}"),
    })
}

/// `data` of a Prometheus API answer with `"status":"success"`.
pub fn api_data(url: &str, text: &str) -> Result<serde_json::Value, PromError> {
    let decode = |reason: String| PromError::Decode {
        url: url.to_string(),
        reason,
    };
    let mut v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| decode(format!("not JSON: {e}")))?;
    if v.get("status").and_then(|s| s.as_str()) != Some("success") {
        return Err(decode(format!(
            "status is not success: {}",
            text.chars().take(256).collect::<String>()
        )));
    }
    v.get_mut("data")
        .map(serde_json::Value::take)
        .ok_or_else(|| decode("no data field".into()))
}

/// External labels from the `data` of `/api/v1/status/config`: `{"yaml": "<config>"}`.
pub fn external_labels_from_config(data: &serde_json::Value) -> Result<Labels, String> {
    let yaml = data
        .get("yaml")
        .and_then(|y| y.as_str())
        .ok_or("config answer has no yaml string")?;
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).map_err(|e| format!("config is not YAML: {e}"))?;
    let Some(ext) = config
        .get("global")
        .and_then(|g| g.get("external_labels"))
        .filter(|e| !e.is_null())
    else {
        return Ok(Labels::empty());
    };
    let map: BTreeMap<String, String> = serde_yaml_ng::from_value(ext.clone())
        .map_err(|e| format!("global.external_labels is not a map of strings: {e}"))?;
    Ok(Labels::from_pairs(map))
}

/// `prometheus_tsdb_lowest_timestamp_seconds` from `/metrics` text, in ms; `i64::MIN` for an
/// empty TSDB (Prometheus reports `MaxInt64` then).
pub fn lowest_timestamp_from_metrics(text: &str) -> Result<i64, String> {
    const NAME: &str = "prometheus_tsdb_lowest_timestamp_seconds";
    let value = text
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(NAME)?;
            let rest = rest.strip_prefix(' ').or_else(|| {
                // A labelled sample: skip the label block.
                rest.strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .map(|(_, v)| v.trim_start())
            })?;
            rest.split_whitespace().next()
        })
        .ok_or_else(|| format!("/metrics has no {NAME}"))?;
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{NAME} value {value:?} is not a number"))?;
    let ms = secs * 1000.0;
    if !ms.is_finite() || ms >= i64::MAX as f64 {
        return Ok(i64::MIN);
    }
    Ok(ms as i64)
}

/// Milliseconds as Prometheus' API accepts them: seconds with a fraction, clamped to years
/// 1..9999 (Prometheus converts the float to a time without range checks).
fn format_seconds(ms: i64) -> String {
    let ms = ms.clamp(-62_135_596_800_000, 253_402_300_799_000);
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// A series selector `{a="b",c=~"d"}` for `match[]`.
pub fn selector(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers
        .iter()
        .map(|m| {
            format!(
                "{}{}{}",
                m.name(),
                m.kind().as_str(),
                crate::http::params::go_quote(m.value())
            )
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn matcher_to_prompb(m: &Matcher) -> prompb::LabelMatcher {
    let t = match m.kind() {
        MatchKind::Equal => prompb::label_matcher::Type::Eq,
        MatchKind::NotEqual => prompb::label_matcher::Type::Neq,
        MatchKind::Regex => prompb::label_matcher::Type::Re,
        MatchKind::NotRegex => prompb::label_matcher::Type::Nre,
    };
    prompb::LabelMatcher {
        r#type: t as i32,
        name: m.name().to_string(),
        value: m.value().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/api/v1/status/config` of Prometheus 2.42 (captured) with external labels set.
    const CONFIG_ANSWER: &str = include_str!("testdata/status_config.json");
    /// `/api/v1/status/config` of Prometheus 2.42 (captured) without external labels.
    const CONFIG_ANSWER_NO_LABELS: &str = include_str!("testdata/status_config_no_labels.json");

    #[test]
    fn reads_external_labels_from_a_real_config_answer() {
        let data = api_data("u", CONFIG_ANSWER).unwrap();
        let l = external_labels_from_config(&data).unwrap();
        assert_eq!(l.get("region"), Some("eu-west"));
        assert_eq!(l.get("monitor"), Some("m1"));
        assert_eq!(l.get("replica"), Some("A"));
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn a_config_without_external_labels_gives_none() {
        let data = api_data("u", CONFIG_ANSWER_NO_LABELS).unwrap();
        assert!(external_labels_from_config(&data).unwrap().is_empty());
    }

    #[test]
    fn error_answers_and_bad_yaml_are_errors_not_panics() {
        assert!(api_data("u", r#"{"status":"error","error":"x"}"#).is_err());
        assert!(api_data("u", "not json").is_err());
        let bad = serde_json::json!({"yaml": "global: [unclosed"});
        assert!(external_labels_from_config(&bad).is_err());
        let nested = serde_json::json!({"yaml": "global:\n  external_labels:\n    a: {b: c}\n"});
        assert!(external_labels_from_config(&nested).is_err());
    }

    #[test]
    fn lowest_timestamp_is_read_and_an_empty_tsdb_is_unbounded() {
        let text = "# HELP prometheus_tsdb_lowest_timestamp_seconds x\n\
                    # TYPE prometheus_tsdb_lowest_timestamp_seconds gauge\n\
                    prometheus_tsdb_lowest_timestamp_seconds 1.701869123e+09\n";
        assert_eq!(lowest_timestamp_from_metrics(text), Ok(1_701_869_123_000));
        let empty = "prometheus_tsdb_lowest_timestamp_seconds 9.223372036854776e+15\n";
        assert_eq!(lowest_timestamp_from_metrics(empty), Ok(i64::MIN));
        assert!(lowest_timestamp_from_metrics("up 1\n").is_err());
    }

    #[test]
    fn selectors_quote_values() {
        let m = vec![
            Matcher::equal("__name__", "up"),
            Matcher::regex("job", "a\"b|c").unwrap(),
        ];
        assert_eq!(selector(&m), r#"{__name__="up",job=~"a\"b|c"}"#);
        assert_eq!(format_seconds(1_500), "1.500");
        assert_eq!(format_seconds(-1), "-0.001");
        assert_eq!(format_seconds(i64::MAX), "253402300799.000");
    }
}
