//! Mapping `object_store` errors to `ErrorKind`s callers can branch on.

use super::{BucketError, ErrorKind};
use object_store::client::{HttpError, HttpErrorKind};
use std::error::Error as StdError;

/// Who the request authenticated as, for messages about refused credentials.
#[derive(Debug, Clone, Default)]
pub(crate) enum Identity {
    /// A backend without credentials (local directory, memory).
    #[default]
    None,
    /// Static credentials from the config; the access key id is safe to print.
    AccessKey(String),
    /// Credentials from the `AWS_*` environment or instance metadata.
    Ambient,
}

/// Converts an `object_store` error for `op` on `path` into a `BucketError`.
pub(crate) fn from_object_store(
    op: &'static str,
    path: &str,
    err: object_store::Error,
    identity: &Identity,
) -> BucketError {
    let kind = classify(&err);
    let detail = short_detail(&err);
    let message = if kind == ErrorKind::Unauthorized {
        let who = match identity {
            Identity::AccessKey(id) => format!("for access key id {id:?}"),
            Identity::Ambient => "from the AWS_* environment or instance profile".to_string(),
            Identity::None => String::new(),
        };
        format!(
            "the server refused the credentials {who} (check access_key and secret_key): {detail}"
        )
    } else if kind == ErrorKind::Timeout {
        format!("no response in time (see http_config timeouts): {detail}")
    } else if kind == ErrorKind::Unavailable {
        format!("endpoint unreachable or failing: {detail}")
    } else {
        detail
    };
    BucketError {
        kind,
        op,
        path: path.to_string(),
        message,
        source: Some(Box::new(err)),
    }
}

/// Longest detail kept in a message; the whole chain stays in the error's source.
const DETAIL_LIMIT: usize = 240;

/// The most specific part of `err`: its innermost cause (each `object_store` layer repeats its
/// source's text), with an S3 error document reduced to its code and message.
fn short_detail(err: &object_store::Error) -> String {
    let mut innermost: &(dyn StdError + 'static) = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let text = match text.find("<?xml").or_else(|| text.find("<Error>")) {
        Some(at) => {
            let document = &text[at..];
            let head = text[..at].trim_end().trim_end_matches(':');
            let code = xml_element(document, "Code");
            let message = xml_element(document, "Message");
            match (code, message) {
                (Some(c), Some(m)) => format!("{head}: {c}: {m}"),
                (Some(c), None) => format!("{head}: {c}"),
                _ => head.to_string(),
            }
        }
        None => text,
    };
    bounded(&text, DETAIL_LIMIT)
}

fn xml_element<'a>(document: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = document.find(&open)? + open.len();
    let len = document[start..].find(&format!("</{name}>"))?;
    Some(document[start..start + len].trim())
}

fn bounded(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn classify(err: &object_store::Error) -> ErrorKind {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => return ErrorKind::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => return ErrorKind::Unauthorized,
        _ => {}
    }
    // Transport failures carry an `HttpError` somewhere in the chain.
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Timeout => ErrorKind::Timeout,
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Other,
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ErrorKind::Timeout;
            }
        }
        cur = e.source();
    }
    // object_store keeps the HTTP status in a private type; its message is stable:
    // "Server returned non-2xx status code: 503 Service Unavailable: ...".
    classify_status_text(&err.to_string())
}

fn classify_status_text(text: &str) -> ErrorKind {
    if text.contains("Server returned error response") {
        // A 200 whose body says InternalError or SlowDown: S3's way of saying "retry".
        return ErrorKind::Unavailable;
    }
    let Some(rest) = text.split("status code: ").nth(1).and_then(|r| r.get(..3)) else {
        return ErrorKind::Other;
    };
    match rest.parse::<u16>() {
        Ok(401 | 403) => ErrorKind::Unauthorized,
        Ok(404) => ErrorKind::NotFound,
        Ok(408) => ErrorKind::Timeout,
        Ok(429) => ErrorKind::Unavailable,
        Ok(s) if (500..600).contains(&s) => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_maps_to_kinds() {
        let t = |s| classify_status_text(s);
        assert_eq!(
            t("Error performing GET x in 1ms - Server returned non-2xx status code: 503 Service Unavailable: slow"),
            ErrorKind::Unavailable
        );
        assert_eq!(
            t("Server returned non-2xx status code: 500 Internal Server Error: "),
            ErrorKind::Unavailable
        );
        assert_eq!(
            t("Server returned non-2xx status code: 403 Forbidden: "),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            t("Server returned non-2xx status code: 400 Bad Request: "),
            ErrorKind::Other
        );
        assert_eq!(
            t("Server returned error response: <Error><Code>SlowDown"),
            ErrorKind::Unavailable
        );
        assert_eq!(t("something else"), ErrorKind::Other);
    }

    #[test]
    fn details_are_the_innermost_cause_with_s3_documents_reduced_to_their_code() {
        let inner: Box<dyn StdError + Send + Sync> = "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>".into();
        let err = object_store::Error::Generic {
            store: "S3",
            source: inner,
        };
        assert_eq!(
            short_detail(&err),
            "Server returned non-2xx status code: 403 Forbidden: SignatureDoesNotMatch: The request signature we calculated does not match"
        );
        let long = object_store::Error::Generic {
            store: "S3",
            source: "x".repeat(1000).into(),
        };
        assert_eq!(short_detail(&long).len(), DETAIL_LIMIT + 3);
    }

    #[test]
    fn refused_credentials_message_names_key_id() {
        let err = object_store::Error::PermissionDenied {
            path: "p".into(),
            source: "SignatureDoesNotMatch".into(),
        };
        let e = from_object_store("get", "p", err, &Identity::AccessKey("AKIAX".into()));
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        assert!(e.message.contains("refused the credentials"), "{e}");
        assert!(e.message.contains("AKIAX"), "{e}");
    }
}
