//! The web UI every process with an HTTP port serves: plain HTML, CSS and JavaScript modules
//! carried in the binary (no build step, no request leaving the machine), one page per part —
//! query (`/graph`), stores, blocks, cluster, rules, alerts. The pages read the JSON APIs the
//! process serves and say so plainly where a part is not served here.
//!
//! - `assets`: the files under `node/ui/`, served under `/static/` with cache headers
//! - `blocks_api`: `GET /api/v1/blocks`, the bucket's blocks for the blocks page

mod assets;
pub mod blocks_api;
#[cfg(test)]
mod tests;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// The pages: URL path, title, and the module that draws it.
const PAGES: [(&str, &str, &str); 6] = [
    ("/graph", "Query", "graph.js"),
    ("/stores", "Stores", "stores.js"),
    ("/blocks", "Blocks", "blocks.js"),
    ("/cluster", "Cluster", "cluster.js"),
    ("/rules", "Rules", "rules.js"),
    ("/alerts", "Alerts", "alerts.js"),
];

/// The UI's routes; `/` redirects to `home` (`/graph` on a process, `/blocks` on
/// `strata tools bucket web`).
pub fn routes(home: &'static str) -> Router {
    let mut r = Router::new()
        .route("/", get(move || async move { Redirect::to(home) }))
        .route("/static/{*file}", get(asset));
    for (path, title, script) in PAGES {
        let html = page(title, script);
        r = r.route(path, get(move || async move { html_response(html) }));
    }
    r
}

/// A page: the shared shell with its title and module filled in.
fn page(title: &str, script: &str) -> String {
    assets::PAGE_HTML
        .replace("{{title}}", title)
        .replace("{{script}}", script)
        .replace("{{version}}", env!("CARGO_PKG_VERSION"))
}

fn html_response(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// `/static/<file>`: the asset with its content type, an ETag (its CRC32C) and a short max-age,
/// so a browser revalidates after an upgrade; 304 when the browser's copy is current.
async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = assets::find(&file) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such UI file: {file}\n"),
        )
            .into_response();
    };
    let etag = format!("\"{:08x}\"", crc32c::crc32c(a.body.as_bytes()));
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "public, max-age=300".to_string()),
    ];
    let current = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if current {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let mut resp = (cache, a.body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    resp
}
