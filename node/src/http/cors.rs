//! Prometheus' CORS handling (`--web.cors.origin`, `util/httputil/cors.go`): requests that carry
//! an `Origin` get the CORS headers, and the allowed origin when it matches the anchored regex.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use regex::Regex;
use std::sync::Arc;

/// The origins allowed to read API answers from a browser.
#[derive(Debug, Clone)]
pub struct CorsOrigin {
    regex: Regex,
    any: bool,
}

impl CorsOrigin {
    /// Compiles `--web.cors.origin`, anchored at both ends as Prometheus does.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let regex = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(CorsOrigin {
            regex,
            // Prometheus answers `*` rather than echoing the origin for its default `.*`.
            any: pattern == ".*",
        })
    }

    /// Sets the CORS headers on `headers` for a request from `origin`.
    fn apply(&self, origin: &str, headers: &mut HeaderMap) {
        const FIXED: [(&str, &str); 4] = [
            (
                "access-control-allow-headers",
                "Accept, Authorization, Content-Type, Origin",
            ),
            ("access-control-allow-methods", "GET, POST, OPTIONS"),
            ("access-control-expose-headers", "Date"),
            ("vary", "Origin"),
        ];
        for (name, value) in FIXED {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if self.any {
            headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        } else if self.regex.is_match(origin) {
            if let Ok(value) = HeaderValue::from_str(origin) {
                headers.insert("access-control-allow-origin", value);
            }
        }
    }
}

/// Middleware for `/api/v1`: CORS headers on every answer, and `OPTIONS` (a browser's
/// preflight) answered with 204 like Prometheus' API.
pub async fn layer(State(cors): State<Arc<CorsOrigin>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = if req.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    // Without an Origin header Prometheus sets no CORS headers at all.
    if let Some(origin) = origin.filter(|o| !o.is_empty()) {
        cors.apply(&origin, response.headers_mut());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pattern_allows_every_origin_with_a_star() {
        let cors = CorsOrigin::new(".*").unwrap();
        let mut h = HeaderMap::new();
        cors.apply("https://grafana.example", &mut h);
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["vary"], "Origin");
    }

    #[test]
    fn a_pattern_is_anchored_and_echoes_a_matching_origin() {
        let cors = CorsOrigin::new(r"https://grafana\.example").unwrap();
        let mut h = HeaderMap::new();
        cors.apply("https://grafana.example", &mut h);
        assert_eq!(h["access-control-allow-origin"], "https://grafana.example");
        let mut h = HeaderMap::new();
        cors.apply("https://grafana.example.evil", &mut h);
        assert!(h.get("access-control-allow-origin").is_none());
        assert_eq!(h["access-control-allow-methods"], "GET, POST, OPTIONS");
    }

    #[test]
    fn an_invalid_pattern_is_refused() {
        assert!(CorsOrigin::new("(").is_err());
    }
}
