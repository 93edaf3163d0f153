//! The UI's routes on a loopback server: pages, the redirect, assets with cache headers, every
//! module a page imports being served, and the blocks endpoint over an in-memory bucket.

use super::blocks_api::BlocksApi;
use super::*;
use std::sync::Arc;
use storage::block::BlockMeta;
use storage::bucket::{Bucket, ObjectStoreBucket};

/// Serves `router` on a loopback port; the server stops with the test's runtime.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn root_redirects_home_and_every_page_loads_its_module() {
    let base = serve(routes("/graph")).await;
    let c = client();
    let r = c.get(format!("{base}/")).send().await.expect("GET /");
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()[header::LOCATION], "/graph");
    for (path, title, script) in PAGES {
        let r = c
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET page");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/html")));
        let body = r.text().await.expect("body");
        assert!(
            body.contains(&format!("<title>{title} - Strata</title>")),
            "{path}: {body}"
        );
        assert!(
            body.contains(&format!("src=\"/static/{script}\"")),
            "{path}"
        );
        assert!(!body.contains("{{"), "{path}: an unfilled placeholder");
    }
}

#[tokio::test]
async fn assets_have_types_and_etags_and_revalidate_to_304() {
    let base = serve(routes("/graph")).await;
    let c = client();
    let r = c
        .get(format!("{base}/static/graph.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=300");
    let etag = r.headers()[header::ETAG].clone();
    let again = c
        .get(format!("{base}/static/graph.js"))
        .header(header::IF_NONE_MATCH, etag.clone())
        .send()
        .await
        .expect("GET");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let css = c
        .get(format!("{base}/static/style.css"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        css.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
    assert_ne!(
        css.headers()[header::ETAG],
        etag,
        "different files, different ETags"
    );
    let missing = c
        .get(format!("{base}/static/nope.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.is_ok_and(|t| t.contains("nope.js")));
}

/// A module imported with `from './x.js'` that is not in the asset table would break its page
/// only in a browser; this catches it at `cargo test`.
#[test]
fn every_imported_module_is_served() {
    for (_, _, script) in PAGES {
        let mut todo = vec![script.to_string()];
        while let Some(name) = todo.pop() {
            let a =
                assets::find(&name).unwrap_or_else(|| panic!("{name} is imported but not served"));
            for part in a.body.split("from './").skip(1) {
                if let Some((dep, _)) = part.split_once('\'') {
                    todo.push(dep.to_string());
                }
            }
        }
    }
}

#[test]
fn no_asset_loads_anything_from_another_host() {
    let files = [
        "style.css",
        "common.js",
        "chart.js",
        "complete.js",
        "graph.js",
        "stores.js",
        "blocks.js",
        "cluster.js",
        "rules.js",
        "alerts.js",
    ];
    for name in files {
        let a = assets::find(name).unwrap_or_else(|| panic!("{name} missing"));
        for bad in ["http://", "https://", "//fonts.", "@import url("] {
            // The SVG namespace is an identifier, not a request; links to other members'
            // pages (`http://${address}`) are followed only when clicked.
            let body = a
                .body
                .replace("http://www.w3.org/2000/svg", "")
                .replace("http://${", "");
            assert!(!body.contains(bad), "{name} refers to {bad}");
        }
    }
    assert!(!assets::PAGE_HTML.contains("https://"));
}

fn meta(ulid: &str, min: i64, max: i64, labels: &[(&str, &str)]) -> BlockMeta {
    let mut m = BlockMeta::new_level1(ulid.parse().expect("ulid"), min, max);
    m.thanos_mut().labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m
}

#[tokio::test]
async fn blocks_endpoint_lists_every_block_with_its_meta_and_the_unreadable_ones() {
    let bucket: Arc<dyn Bucket> = Arc::new(ObjectStoreBucket::in_memory());
    let a = meta(
        "01HF0000000000000000000001",
        0,
        7_200_000,
        &[("region", "eu")],
    );
    let b = meta(
        "01HF0000000000000000000002",
        7_200_000,
        14_400_000,
        &[("region", "us")],
    );
    for m in [&a, &b] {
        bucket
            .put(&format!("{}/meta.json", m.ulid), m.to_json().into())
            .await
            .expect("put meta");
    }
    bucket
        .put("01HF0000000000000000000003/meta.json", "{not json".into())
        .await
        .expect("put corrupt");
    bucket
        .put("01HF0000000000000000000004/index", "x".into())
        .await
        .expect("put partial");
    let base = serve(BlocksApi::new(bucket).router()).await;
    let text = client()
        .get(format!("{base}/api/v1/blocks"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["status"], "success");
    let blocks = v["data"]["blocks"].as_array().expect("blocks");
    assert_eq!(blocks.len(), 2, "{v}");
    assert_eq!(blocks[0]["ulid"], "01HF0000000000000000000001");
    assert_eq!(blocks[1]["thanos"]["labels"]["region"], "us");
    assert_eq!(blocks[1]["minTime"], 7_200_000);
    assert_eq!(
        v["data"]["corrupt"][0]["ulid"],
        "01HF0000000000000000000003"
    );
    assert_eq!(v["data"]["partial"][0], "01HF0000000000000000000004");
}
