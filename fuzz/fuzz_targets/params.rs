//! HTTP API parameters from outside: reading the form (URL query and form body), times,
//! durations and `match[]` selectors never panics, and durations format back to themselves.
//!
//! node is a binary crate, so its `http/params.rs` is compiled into this target with a
//! `#[path]` include; `ApiError` and `FORM_LIMIT` (all params.rs uses from its parent module)
//! are re-declared below with node's definitions' shape.
//!
//! Input: the URL query string, a newline, then the form body. `match[]` values are at most
//! 256 bytes and 16 brackets deep: deep nesting is the evaluation-depth work's (issue 12).
#![no_main]

#[path = "common/query_input.rs"]
mod query_input;

use query_input::{runtime, within_bounds};
use libfuzzer_sys::fuzz_target;

/// node's `http::FORM_LIMIT`.
#[allow(dead_code)]
const FORM_LIMIT: usize = 10 << 20;

/// params.rs's `super::response`.
mod response {
    /// node's `ApiError`, reduced to what params.rs builds.
    #[derive(Debug)]
    pub struct ApiError {
        #[allow(dead_code)]
        pub message: String,
    }

    impl ApiError {
        pub fn bad_data(message: impl Into<String>) -> Self {
            ApiError {
                message: message.into(),
            }
        }

        pub fn internal(message: impl Into<String>) -> Self {
            ApiError {
                message: message.into(),
            }
        }
    }

    /// node's quoting bound: at most `max` characters, then `...`.
    pub fn bounded(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
        match s.char_indices().nth(max) {
            None => std::borrow::Cow::Borrowed(s),
            Some((at, _)) => std::borrow::Cow::Owned(format!("{}...", &s[..at])),
        }
    }
}

#[allow(dead_code)]
#[path = "../../node/src/http/params.rs"]
mod params;

use params::*;

const MAX_SELECTOR_BYTES: usize = 256;

fn check_duration(s: &str) {
    let _ = parse_duration(s);
    if let Some(ms) = parse_prometheus_duration(s) {
        let formatted = format_prometheus_duration(ms);
        assert_eq!(
            parse_prometheus_duration(&formatted),
            Some(ms),
            "{s:?} parsed to {ms} ms, formatted as {formatted:?}"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let split = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let query = String::from_utf8_lossy(&input[..split]);
    let body = input.get(split + 1..).unwrap_or_default();

    let form = Form::new(Some(body), Some(&query));
    for name in ["time", "start", "end"] {
        let _ = parse_time_param(&form, name, 0);
    }
    for name in ["step", "timeout", "lookback_delta"] {
        check_duration(form.value(name));
    }
    // Quoting is bounded: past MAX_QUOTED_CHARS the closed quote is followed by "...".
    let quoted = go_quote(form.value("query"));
    let closed = quoted.strip_suffix("...").unwrap_or(&quoted);
    assert!(closed.starts_with('"') && closed.ends_with('"') && closed.len() >= 2);
    let _ = is_valid_label_name(form.value("name"));
    let selectors: Vec<&str> = form.values("match[]");
    if selectors
        .iter()
        .all(|s| {
            s.len() <= MAX_SELECTOR_BYTES && within_bounds(s)
        })
    {
        if let Ok(sets) = parse_match_params(&selectors) {
            assert_eq!(sets.len(), selectors.len());
            for set in &sets {
                assert!(set.iter().any(|m| !m.matches("")), "{selectors:?}");
            }
        }
    }

    // The same parameters through the request reader the handlers use.
    let Ok(req) = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/api/v1/query?{query}"))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return;
    };
    let uri_query = req.uri().query().map(str::to_string);
    let read = runtime()
        .block_on(read_form(req))
        .expect("a small form body reads");
    let direct = Form::new(Some(body), uri_query.as_deref());
    for name in ["query", "time", "match[]"] {
        assert_eq!(read.values(name), direct.values(name));
    }
});
