//! The API envelope (`status`, `data`, `errorType`, `error`, `warnings`) and the mapping of
//! error classes to HTTP status codes, as Prometheus 2.42 answers.

use super::json;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use promql::QueryError;

/// Prometheus' `errorType` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    /// Unparsable parameters or query: 400.
    BadData,
    /// Evaluation failed: 422.
    Execution,
    /// Query timeout: 503.
    Timeout,
    /// Query cancelled: 503.
    Canceled,
    /// Storage failure: 500.
    Internal,
}

impl ErrorType {
    fn name(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An API error: its class and the message clients see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The class, which picks the HTTP status.
    pub typ: ErrorType,
    /// The `error` text.
    pub message: String,
}

impl ApiError {
    /// A `bad_data` error.
    pub fn bad_data(message: impl Into<String>) -> Self {
        ApiError {
            typ: ErrorType::BadData,
            message: message.into(),
        }
    }

    /// Prometheus' `invalidParamError`: `invalid parameter "name": cause`.
    pub fn invalid_param(name: &str, cause: impl std::fmt::Display) -> Self {
        ApiError::bad_data(format!("invalid parameter \"{name}\": {cause}"))
    }

    /// An `internal` error.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            typ: ErrorType::Internal,
            message: message.into(),
        }
    }

    /// Classifies an engine error like Prometheus' `returnAPIError` (parse errors, which
    /// Prometheus finds before execution, are `bad_data`).
    pub fn from_query(e: &QueryError) -> Self {
        let typ = match e {
            QueryError::Parse(_) | QueryError::BadData(_) => ErrorType::BadData,
            QueryError::Execution(_) | QueryError::TooManySamples(_) => ErrorType::Execution,
            QueryError::Timeout(_) => ErrorType::Timeout,
            QueryError::Canceled(_) => ErrorType::Canceled,
            QueryError::Storage(_) => ErrorType::Internal,
        };
        ApiError {
            typ,
            message: e.to_string(),
        }
    }
}

/// What an API handler produces: data (as JSON text) with warnings, an error, or nothing
/// (204, as Prometheus answers a handler that returns neither).
#[derive(Debug)]
pub enum ApiResult {
    /// `{"status":"success","data":...}`.
    Data {
        /// The `data` value, already JSON.
        json: String,
        /// `warnings`, omitted when empty.
        warnings: Vec<String>,
    },
    /// `{"status":"error",...}` with the class's status code.
    Error(ApiError),
    /// 204 with an empty body.
    NoContent,
}

impl ApiResult {
    /// Data without warnings.
    pub fn data(json: String) -> Self {
        ApiResult::Data {
            json,
            warnings: Vec::new(),
        }
    }
}

impl From<ApiError> for ApiResult {
    fn from(e: ApiError) -> Self {
        ApiResult::Error(e)
    }
}

/// Longest `error` text answered; longer ones (a parser echoing a 12 kB matcher) are cut.
pub const MAX_ERROR_CHARS: usize = 1024;

/// `s` cut to its first `max` characters followed by `...` when longer.
pub fn bounded(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(s),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}...", &s[..at])),
    }
}

/// An error envelope with `status`; `typ` is Prometheus' errorType name.
pub fn error_response(status: StatusCode, typ: &str, message: &str) -> Response {
    let mut body = String::from("{\"status\":\"error\",\"errorType\":");
    json::write_str(&mut body, typ);
    body.push_str(",\"error\":");
    json::write_str(&mut body, &bounded(message, MAX_ERROR_CHARS));
    body.push('}');
    json_response(status, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for ApiResult {
    fn into_response(self) -> Response {
        match self {
            ApiResult::Data { json, warnings } => {
                let mut body = String::with_capacity(json.len() + 40);
                body.push_str("{\"status\":\"success\",\"data\":");
                body.push_str(&json);
                if !warnings.is_empty() {
                    body.push_str(",\"warnings\":");
                    json::write_str_array(&mut body, warnings.iter().map(String::as_str));
                }
                body.push('}');
                json_response(StatusCode::OK, body)
            }
            ApiResult::Error(e) => error_response(e.typ.status(), e.typ.name(), &e.message),
            ApiResult::NoContent => StatusCode::NO_CONTENT.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_prometheus_classes() {
        let cases = [
            (QueryError::Parse("1:3: x".into()), ErrorType::BadData),
            (QueryError::Execution("x".into()), ErrorType::Execution),
            (
                QueryError::TooManySamples("query execution"),
                ErrorType::Execution,
            ),
            (QueryError::Timeout("query queue"), ErrorType::Timeout),
            (QueryError::Canceled("x"), ErrorType::Canceled),
            (QueryError::Storage("x".into()), ErrorType::Internal),
        ];
        for (e, want) in cases {
            assert_eq!(ApiError::from_query(&e).typ, want, "{e:?}");
        }
        assert_eq!(ErrorType::Execution.status().as_u16(), 422);
        assert_eq!(ErrorType::Timeout.status().as_u16(), 503);
    }

    #[test]
    fn long_texts_are_cut_to_a_prefix() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcd", 3), "abc...");
        assert_eq!(bounded("ééé", 2), "éé...");
        let long = "x".repeat(12_000);
        let e = ApiResult::Error(ApiError::bad_data(long)).into_response();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn too_many_samples_keeps_prometheus_text() {
        let e = ApiError::from_query(&QueryError::TooManySamples("query execution"));
        assert_eq!(
            e.message,
            "query processing would load too many samples into memory in query execution"
        );
    }
}
