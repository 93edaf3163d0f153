//! `GET /api/v1/blocks`: every block in the bucket with its meta.json, in the shape of Thanos'
//! bucket web (`data.blocks`, `data.refreshedAt`, `data.err`, `data.label`), plus the blocks
//! Strata could not read (`partial`: no meta.json yet; `corrupt`: unreadable meta.json).
//!
//! The listing is cached for [`MAX_AGE`], so a page left open (or many) cannot turn into a
//! LIST/GET storm against the bucket.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use storage::bucket::Bucket;
use tokio::sync::{watch, Mutex};

use crate::http::response::{error_response, ApiResult};
use crate::server::{BoxFuture, Component};

/// How long one listing of the bucket answers requests.
pub const MAX_AGE: Duration = Duration::from_secs(15);

/// The blocks endpoint over one bucket, a [`Component`] of every process that has a bucket.
#[derive(Clone)]
pub struct BlocksApi(Arc<Inner>);

struct Inner {
    bucket: Arc<dyn Bucket>,
    cache: Mutex<Option<(Instant, Arc<String>)>>,
}

impl BlocksApi {
    /// The endpoint over `bucket`.
    pub fn new(bucket: Arc<dyn Bucket>) -> Self {
        BlocksApi(Arc::new(Inner {
            bucket,
            cache: Mutex::new(None),
        }))
    }

    /// The endpoint's route (also what `strata tools bucket web` serves next to the UI).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/blocks", get(blocks))
            .with_state(self.clone())
    }

    /// The `data` object, from the cache when it is younger than [`MAX_AGE`].
    async fn data(&self) -> Result<Arc<String>, storage::bucket::BucketError> {
        let mut cache = self.0.cache.lock().await;
        if let Some((at, data)) = cache.as_ref() {
            if at.elapsed() < MAX_AGE {
                return Ok(data.clone());
            }
        }
        let fetched = storage::bucket::blocks::fetch_metas(self.0.bucket.as_ref()).await?;
        let data = Arc::new(data_json(&fetched).to_string());
        *cache = Some((Instant::now(), data.clone()));
        Ok(data)
    }
}

/// The `data` object for one listing.
fn data_json(f: &storage::bucket::blocks::FetchedMetas) -> Value {
    let blocks: Vec<Value> = f
        .metas
        .values()
        .filter_map(|m| serde_json::to_value(m).ok())
        .collect();
    let corrupt: Vec<Value> = f
        .corrupt
        .iter()
        .map(|(id, e)| json!({"ulid": id.to_string(), "error": e.to_string()}))
        .collect();
    let partial: Vec<String> = f.partial.iter().map(ToString::to_string).collect();
    json!({
        "blocks": blocks,
        "label": "",
        "refreshedAt": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "err": null,
        "partial": partial,
        "corrupt": corrupt,
    })
}

async fn blocks(State(api): State<BlocksApi>) -> Response {
    match api.data().await {
        Ok(data) => ApiResult::data(data.as_ref().clone()).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "listing the bucket's blocks for /api/v1/blocks");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("listing the bucket's blocks: {e}"),
            )
        }
    }
}

impl Component for BlocksApi {
    fn name(&self) -> &str {
        "blocks-api"
    }

    fn http(&self) -> Router {
        self.router()
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn run(self: Arc<Self>, _stop: watch::Receiver<bool>) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}
