//! The sidecar's StoreAPI (`thanos.Store`, `thanos.info.Info`) over Prometheus' remote read and
//! label APIs, as Thanos' pkg/store/prometheus.go: every series carries the external labels
//! (they win over a series' own label of the same name); matchers on external labels are
//! answered by the sidecar and not sent to Prometheus.

use super::prometheus::{PromClient, PromError};
use super::state::PromState;
use crate::store::convert::{labels_to_pb, matchers_from_pb};
use proto::prometheus as prompb;
use proto::thanos::info::info_server::{Info, InfoServer};
use proto::thanos::info::{self as infopb};
use proto::thanos::store_server::{Store, StoreServer};
use proto::thanos::{self as pb, series_response, SeriesBatch, SeriesResponse};
use std::collections::BTreeSet;
use std::sync::Arc;
use storage::labels::Labels;
use storage::matcher::Matcher;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Largest request accepted.
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// The StoreAPI of one Prometheus.
#[derive(Debug, Clone)]
pub struct SidecarStore {
    client: PromClient,
    state: Arc<PromState>,
}

impl SidecarStore {
    /// The StoreAPI over `client`, with labels and time range from `state`.
    pub fn new(client: PromClient, state: Arc<PromState>) -> Self {
        SidecarStore { client, state }
    }

    /// `thanos.Store`, ready for the gRPC server.
    pub fn store_server(&self) -> StoreServer<Self> {
        StoreServer::new(self.clone())
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(usize::MAX)
    }

    /// `thanos.info.Info`, ready for the gRPC server.
    pub fn info_server(&self) -> InfoServer<Self> {
        InfoServer::new(self.clone()).max_decoding_message_size(MAX_REQUEST_BYTES)
    }

    fn external_labels(&self) -> Result<Labels, Status> {
        self.state.external_labels().ok_or_else(|| {
            Status::unavailable(
                "sidecar is not ready: Prometheus' external labels are not known yet",
            )
        })
    }
}

/// Splits `matchers` into a verdict on the external labels and the matchers left for
/// Prometheus: `None` when an external label fails its matcher (nothing can match).
pub fn split_external(matchers: Vec<Matcher>, ext: &Labels) -> Option<Vec<Matcher>> {
    let mut rest = Vec::with_capacity(matchers.len());
    for m in matchers {
        match ext.get(m.name()) {
            Some(v) if !m.matches(v) => return None,
            Some(_) => {}
            None => rest.push(m),
        }
    }
    Some(rest)
}

fn parse_matchers(ms: &[pb::LabelMatcher]) -> Result<Vec<Matcher>, Status> {
    matchers_from_pb(ms).map_err(|e| Status::invalid_argument(format!("bad matcher: {e}")))
}

fn prom_status(e: PromError) -> Status {
    tracing::warn!(error = %e, "StoreAPI request to Prometheus failed");
    if e.is_unreachable() {
        Status::unavailable(e.to_string())
    } else {
        Status::internal(e.to_string())
    }
}

/// `start`/`end` of label requests; both zero means no bound.
fn label_range(start: i64, end: i64) -> Result<Option<(i64, i64)>, Status> {
    if start == 0 && end == 0 {
        return Ok(None);
    }
    if start > end {
        return Err(Status::invalid_argument(format!(
            "start {start} is after end {end}"
        )));
    }
    Ok(Some((start, end)))
}

fn truncate<T>(mut v: Vec<T>, limit: i64) -> Vec<T> {
    if let Ok(n) = usize::try_from(limit) {
        if n > 0 {
            v.truncate(n);
        }
    }
    v
}

/// A remote read chunk as a StoreAPI raw chunk (Prometheus counts encodings from UNKNOWN = 0,
/// Thanos from XOR = 0).
fn chunk_to_pb(c: prompb::Chunk) -> Result<pb::AggrChunk, Status> {
    let enc = match prompb::chunk::Encoding::try_from(c.r#type) {
        Ok(prompb::chunk::Encoding::Xor) => pb::chunk::Encoding::Xor,
        Ok(prompb::chunk::Encoding::Histogram) => pb::chunk::Encoding::Histogram,
        Ok(prompb::chunk::Encoding::FloatHistogram) => pb::chunk::Encoding::FloatHistogram,
        _ => {
            return Err(Status::internal(format!(
                "Prometheus sent a chunk with unknown encoding {}",
                c.r#type
            )))
        }
    };
    Ok(pb::AggrChunk {
        min_time: c.min_time_ms,
        max_time: c.max_time_ms,
        raw: Some(pb::Chunk {
            r#type: enc as i32,
            data: c.data.into(),
            hash: 0,
        }),
        ..Default::default()
    })
}

/// Reads every series of a remote read answer, external labels added, merged where Prometheus
/// split one series over frames, sorted by labels.
async fn read_all(
    client: &PromClient,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    ext: &Labels,
) -> Result<Vec<pb::Series>, Status> {
    let mut frames = client
        .remote_read(matchers, mint, maxt)
        .await
        .map_err(prom_status)?;
    let mut out: Vec<(Labels, Vec<pb::AggrChunk>)> = Vec::new();
    while let Some(frame) = frames.next().await.map_err(prom_status)? {
        for s in frame.chunked_series {
            let own = Labels::from_pairs(s.labels.into_iter().map(|l| (l.name, l.value)));
            let labels = own.merged(ext);
            let chunks = s
                .chunks
                .into_iter()
                .map(chunk_to_pb)
                .collect::<Result<Vec<_>, _>>()?;
            match out.last_mut() {
                Some((last, c)) if *last == labels => c.extend(chunks),
                _ => out.push((labels, chunks)),
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out
        .into_iter()
        .map(|(labels, mut chunks)| {
            chunks.sort_by_key(|c| (c.min_time, c.max_time));
            pb::Series {
                labels: labels_to_pb(&labels),
                chunks,
            }
        })
        .collect())
}

/// Sends `series` one per frame, or in batches of `batch` when asked.
fn stream(series: Vec<pb::Series>, batch: i64) -> ReceiverStream<Result<SeriesResponse, Status>> {
    let batch = usize::try_from(batch).unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut msgs: Vec<series_response::Result> = Vec::new();
        if batch == 0 {
            msgs.extend(series.into_iter().map(series_response::Result::Series));
        } else {
            let mut it = series.into_iter().peekable();
            while it.peek().is_some() {
                let part: Vec<pb::Series> = it.by_ref().take(batch).collect();
                msgs.push(series_response::Result::Batch(SeriesBatch { series: part }));
            }
        }
        for m in msgs {
            if tx
                .send(Ok(SeriesResponse { result: Some(m) }))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

#[tonic::async_trait]
impl Store for SidecarStore {
    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let ext = self.external_labels()?;
        Ok(Response::new(pb::InfoResponse {
            labels: labels_to_pb(&ext),
            min_time: self.state.min_time(),
            max_time: i64::MAX,
            store_type: pb::StoreType::Sidecar as i32,
            label_sets: vec![pb::LabelSet {
                labels: labels_to_pb(&ext),
            }],
        }))
    }

    type SeriesStream = ReceiverStream<Result<SeriesResponse, Status>>;

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let r = request.into_inner();
        let matchers = parse_matchers(&r.matchers)?;
        if r.min_time > r.max_time {
            return Err(Status::invalid_argument(format!(
                "min_time {} is after max_time {}",
                r.min_time, r.max_time
            )));
        }
        let ext = self.external_labels()?;
        let Some(matchers) = split_external(matchers, &ext) else {
            return Ok(Response::new(stream(Vec::new(), 0)));
        };
        if matchers.is_empty() {
            return Err(Status::invalid_argument(
                "no matchers specified (excluding external labels)",
            ));
        }
        // Do not ask for more than Prometheus holds (or --min-time allows).
        let mint = r.min_time.max(self.state.min_time());
        let series = if r.skip_chunks {
            let sets = self
                .client
                .series(&matchers, mint, r.max_time)
                .await
                .map_err(prom_status)?;
            let mut sets: Vec<Labels> = sets.iter().map(|l| l.merged(&ext)).collect();
            sets.sort();
            sets.dedup();
            sets.iter()
                .map(|l| pb::Series {
                    labels: labels_to_pb(l),
                    chunks: Vec::new(),
                })
                .collect()
        } else if mint > r.max_time {
            Vec::new()
        } else {
            read_all(&self.client, &matchers, mint, r.max_time, &ext).await?
        };
        let series = truncate(series, r.limit);
        tracing::debug!(series = series.len(), "StoreAPI Series");
        Ok(Response::new(stream(series, r.response_batch_size)))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let r = request.into_inner();
        let matchers = parse_matchers(&r.matchers)?;
        let range = label_range(r.start, r.end)?;
        let ext = self.external_labels()?;
        let Some(matchers) = split_external(matchers, &ext) else {
            return Ok(Response::new(pb::LabelNamesResponse::default()));
        };
        let mut names: BTreeSet<String> = self
            .client
            .label_names(&matchers, range)
            .await
            .map_err(prom_status)?
            .into_iter()
            .collect();
        if !names.is_empty() {
            names.extend(ext.iter().map(|l| l.name.clone()));
        }
        Ok(Response::new(pb::LabelNamesResponse {
            names: truncate(names.into_iter().collect(), r.limit),
            warnings: Vec::new(),
            hints: None,
        }))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let r = request.into_inner();
        if r.label.is_empty() {
            return Err(Status::invalid_argument(
                "label name parameter cannot be empty",
            ));
        }
        let matchers = parse_matchers(&r.matchers)?;
        let range = label_range(r.start, r.end)?;
        let ext = self.external_labels()?;
        let Some(matchers) = split_external(matchers, &ext) else {
            return Ok(Response::new(pb::LabelValuesResponse::default()));
        };
        let values = match ext.get(&r.label) {
            Some(v) => vec![v.to_string()],
            None => {
                let mut v = self
                    .client
                    .label_values(&r.label, &matchers, range)
                    .await
                    .map_err(prom_status)?;
                v.sort();
                v.dedup();
                v
            }
        };
        Ok(Response::new(pb::LabelValuesResponse {
            values: truncate(values, r.limit),
            warnings: Vec::new(),
            hints: None,
        }))
    }
}

#[tonic::async_trait]
impl Info for SidecarStore {
    async fn info(
        &self,
        _request: Request<infopb::InfoRequest>,
    ) -> Result<Response<infopb::InfoResponse>, Status> {
        let ext = self.external_labels()?;
        Ok(Response::new(infopb::InfoResponse {
            label_sets: vec![pb::ZLabelSet {
                labels: labels_to_pb(&ext),
            }],
            component_type: "sidecar".into(),
            store: Some(infopb::StoreInfo {
                min_time: self.state.min_time(),
                max_time: i64::MAX,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext() -> Labels {
        Labels::from_pairs([("region", "eu"), ("replica", "A")])
    }

    #[test]
    fn external_label_matchers_are_answered_locally() {
        let ms = vec![
            Matcher::equal("__name__", "up"),
            Matcher::equal("region", "eu"),
            Matcher::regex("replica", "A|B").unwrap(),
        ];
        let rest = split_external(ms, &ext()).unwrap();
        let names: Vec<&str> = rest.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["__name__"]);
        let ms = vec![
            Matcher::equal("__name__", "up"),
            Matcher::equal("region", "us"),
        ];
        assert!(split_external(ms, &ext()).is_none());
    }

    #[test]
    fn chunk_encodings_shift_by_one_and_unknown_is_an_error() {
        let c = |t: prompb::chunk::Encoding| prompb::Chunk {
            min_time_ms: 1,
            max_time_ms: 5,
            r#type: t as i32,
            data: vec![0, 1],
        };
        let x = chunk_to_pb(c(prompb::chunk::Encoding::Xor)).unwrap();
        assert_eq!(x.raw.unwrap().r#type, pb::chunk::Encoding::Xor as i32);
        let h = chunk_to_pb(c(prompb::chunk::Encoding::FloatHistogram)).unwrap();
        assert_eq!(
            h.raw.unwrap().r#type,
            pb::chunk::Encoding::FloatHistogram as i32
        );
        assert!(chunk_to_pb(c(prompb::chunk::Encoding::Unknown)).is_err());
    }
}
