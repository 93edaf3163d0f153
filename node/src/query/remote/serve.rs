//! A StoreAPI (`thanos.Store` and `thanos.info.Info`) over any [`SeriesSource`]: the querier's
//! own (`--grpc-address`) over the federation, so that queriers stack (`strata query
//! --endpoint <querier's gRPC>`), and the ruler's over its results.
//!
//! Series are read from the source's per-request view and sent re-encoded as XOR chunks; a
//! federation's failing stores become warning frames, or the call's error when the request
//! disables partial response. Info advertises, for a querier, the union of the stores' label
//! sets and time ranges (all time while no store has answered, so an upper querier never
//! prunes it); for a ruler, its external labels and the Rules API.
//!
//! A Series request's `max_resolution_window` and `aggregates` are honoured: the federation
//! reads downsampled data up to that window, decodes the asked aggregate (sum / count for
//! count and sum together), and sends the decoded values as raw XOR chunks, which the asking
//! querier reads as they are.
//!
//! Unfinished: hints, sharding, `without_replica_labels`, request limits; series are gathered
//! whole before the first frame is sent.

use super::view::FederatedSource;
use crate::http::store_params::StoreOptions;
use crate::http::SeriesSource;
use crate::store::convert::{aggregates_from_pb, chunk_to_pb, labels_to_pb, matchers_from_pb};
use promql::{QueryError, Queryable, SampleBudget, SelectHints};
use proto::thanos::info::info_server::{Info, InfoServer};
use proto::thanos::info::{self as infopb};
use proto::thanos::store_server::{Store, StoreServer};
use proto::thanos::{self as pb, series_response, SeriesResponse};
use std::sync::Arc;
use storage::chunkenc::xor::XorAppender;
use storage::downsample::AggrType;
use storage::labels::Labels;
use tonic::{Request, Response, Status};

/// Samples per re-encoded chunk (Prometheus' head cuts chunks at 120).
const SAMPLES_PER_CHUNK: usize = 120;

/// The earliest timestamp a ruler serves, asked at each Info.
pub type MinTime = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the served component is, for Info.
#[derive(Clone)]
enum Advert {
    /// A querier: the union of its stores' label sets and time ranges.
    Query,
    /// A ruler: its external labels, data from `min_time` on, and the Rules API.
    Rule { labels: Labels, min_time: MinTime },
}

/// The StoreAPI over a series source.
#[derive(Clone)]
pub struct QueryStore {
    source: Arc<dyn SeriesSource>,
    advert: Advert,
}

impl std::fmt::Debug for QueryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.advert {
            Advert::Query => "query",
            Advert::Rule { .. } => "rule",
        };
        f.debug_struct("QueryStore").field("kind", &kind).finish()
    }
}

impl QueryStore {
    /// A querier's StoreAPI over its federation.
    pub fn federation(source: FederatedSource) -> Self {
        QueryStore {
            source: Arc::new(source),
            advert: Advert::Query,
        }
    }

    /// A ruler's StoreAPI over `source` (whose series carry `labels`), holding data from
    /// `min_time()` on.
    pub fn rule(source: Arc<dyn SeriesSource>, labels: Labels, min_time: MinTime) -> Self {
        QueryStore {
            source,
            advert: Advert::Rule { labels, min_time },
        }
    }

    /// `thanos.Store`, ready for the gRPC server.
    pub fn store_server(&self) -> StoreServer<Self> {
        StoreServer::new(self.clone()).max_encoding_message_size(usize::MAX)
    }

    /// `thanos.info.Info`, ready for the gRPC server.
    pub fn info_server(&self) -> InfoServer<Self> {
        InfoServer::new(self.clone())
    }

    /// The source as one request sees it.
    fn view(&self, opts: &StoreOptions) -> Arc<dyn SeriesSource> {
        self.source
            .for_request(opts)
            .unwrap_or_else(|| self.source.clone())
    }

    fn store_type(&self) -> pb::StoreType {
        match self.advert {
            Advert::Query => pb::StoreType::Query,
            Advert::Rule { .. } => pb::StoreType::Rule,
        }
    }

    /// Label sets and time range served.
    async fn coverage(&self) -> (Vec<Labels>, i64, i64) {
        if let Advert::Rule { labels, min_time } = &self.advert {
            let sets = if labels.is_empty() {
                Vec::new()
            } else {
                vec![labels.clone()]
            };
            return (sets, min_time(), i64::MAX);
        }
        let statuses = self.source.stores().await;
        let answered: Vec<_> = statuses.iter().filter(|s| s.last_error.is_none()).collect();
        if answered.is_empty() {
            return (Vec::new(), i64::MIN, i64::MAX);
        }
        let mut sets: Vec<Labels> = answered
            .iter()
            .flat_map(|s| s.label_sets.iter().cloned())
            .collect();
        sets.sort();
        sets.dedup();
        let min = answered
            .iter()
            .map(|s| s.min_time)
            .min()
            .unwrap_or(i64::MIN);
        let max = answered
            .iter()
            .map(|s| s.max_time)
            .max()
            .unwrap_or(i64::MAX);
        (sets, min, max)
    }
}

fn options(disabled: bool, strategy: i32) -> StoreOptions {
    let abort = strategy == pb::PartialResponseStrategy::Abort as i32;
    StoreOptions {
        partial_response: Some(!(disabled || abort)),
        ..Default::default()
    }
}

/// What a Series request reads: its `max_resolution_window` (refused when negative, as the
/// store refuses it) and, as engine hints, a function whose aggregate is the one asked.
fn series_read(r: &pb::SeriesRequest) -> Result<(i64, SelectHints), Status> {
    if r.max_resolution_window < 0 {
        return Err(Status::invalid_argument(format!(
            "max_resolution_window {} is negative",
            r.max_resolution_window
        )));
    }
    let aggrs =
        aggregates_from_pb(&r.aggregates).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((r.max_resolution_window, hints_for(&aggrs)))
}

/// Hints naming a function that reads `aggrs` (the inverse of Thanos' `aggrsFromFunc`): one
/// aggregate is read as itself, anything else as the average (sum / count); the counter
/// aggregate also marks the selection as a counter.
fn hints_for(aggrs: &[AggrType]) -> SelectHints {
    let func = match aggrs {
        [AggrType::Count] => Some("count_over_time"),
        [AggrType::Sum] => Some("sum_over_time"),
        [AggrType::Min] => Some("min_over_time"),
        [AggrType::Max] => Some("max_over_time"),
        [AggrType::Counter] => Some("rate"),
        _ => None,
    };
    SelectHints {
        counter: func == Some("rate"),
        func,
    }
}

fn status(e: QueryError) -> Status {
    match e {
        QueryError::Storage(m) => Status::unavailable(m),
        other => Status::internal(other.to_string()),
    }
}

fn parse(ms: &[pb::LabelMatcher]) -> Result<Vec<storage::matcher::Matcher>, Status> {
    matchers_from_pb(ms).map_err(|e| Status::invalid_argument(format!("bad matcher: {e}")))
}

/// `samples` as XOR chunks of at most [`SAMPLES_PER_CHUNK`].
fn encode(samples: &[(i64, f64)]) -> Result<Vec<pb::AggrChunk>, Status> {
    samples
        .chunks(SAMPLES_PER_CHUNK)
        .map(|run| {
            let mut app = XorAppender::new();
            for &(t, v) in run {
                app.append(t, v)
                    .map_err(|e| Status::internal(format!("encoding a chunk: {e}")))?;
            }
            let (first, last) = (run[0].0, run[run.len() - 1].0);
            Ok(chunk_to_pb(&app.finish(), first, last))
        })
        .collect()
}

#[tonic::async_trait]
impl Store for QueryStore {
    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let (sets, min_time, max_time) = self.coverage().await;
        Ok(Response::new(pb::InfoResponse {
            labels: Vec::new(),
            min_time,
            max_time,
            store_type: self.store_type() as i32,
            label_sets: sets
                .iter()
                .map(|l| pb::LabelSet {
                    labels: labels_to_pb(l),
                })
                .collect(),
        }))
    }

    type SeriesStream = tokio_stream::Iter<std::vec::IntoIter<Result<SeriesResponse, Status>>>;

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let r = request.into_inner();
        let matchers = parse(&r.matchers)?;
        let (max_window, hints) = series_read(&r)?;
        let mut opts = options(r.partial_response_disabled, r.partial_response_strategy);
        opts.max_source_resolution = max_window;
        let view = self.view(&opts);
        let mut frames = Vec::new();
        let series: Vec<(Labels, Vec<(i64, f64)>)> = if r.skip_chunks {
            view.series(&matchers, r.min_time, r.max_time)
                .await
                .map_err(status)?
                .into_iter()
                .map(|l| (l, Vec::new()))
                .collect()
        } else {
            view.select_hinted(
                &matchers,
                r.min_time,
                r.max_time,
                &SampleBudget::unlimited(),
                hints,
            )
            .await
            .map_err(status)?
            .into_iter()
            .map(|s| (s.labels, s.samples))
            .collect()
        };
        for (labels, samples) in series {
            frames.push(Ok(SeriesResponse {
                result: Some(series_response::Result::Series(pb::Series {
                    labels: labels_to_pb(&labels),
                    chunks: encode(&samples)?,
                })),
            }));
        }
        for w in view.take_warnings() {
            frames.push(Ok(SeriesResponse {
                result: Some(series_response::Result::Warning(w)),
            }));
        }
        Ok(Response::new(tokio_stream::iter(frames)))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let r = request.into_inner();
        let matchers = parse(&r.matchers)?;
        let view = self.view(&options(
            r.partial_response_disabled,
            r.partial_response_strategy,
        ));
        let names = view
            .label_names(&matchers, r.start, r.end)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LabelNamesResponse {
            names,
            warnings: view.take_warnings(),
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
        let matchers = parse(&r.matchers)?;
        let view = self.view(&options(
            r.partial_response_disabled,
            r.partial_response_strategy,
        ));
        let values = view
            .label_values(&r.label, &matchers, r.start, r.end)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LabelValuesResponse {
            values,
            warnings: view.take_warnings(),
            hints: None,
        }))
    }
}

#[tonic::async_trait]
impl Info for QueryStore {
    async fn info(
        &self,
        _request: Request<infopb::InfoRequest>,
    ) -> Result<Response<infopb::InfoResponse>, Status> {
        let (sets, min_time, max_time) = self.coverage().await;
        Ok(Response::new(infopb::InfoResponse {
            label_sets: sets
                .iter()
                .map(|l| pb::ZLabelSet {
                    labels: labels_to_pb(l),
                })
                .collect(),
            component_type: match self.advert {
                Advert::Query => "query".into(),
                Advert::Rule { .. } => "rule".into(),
            },
            store: Some(infopb::StoreInfo {
                min_time,
                max_time,
                ..Default::default()
            }),
            rules: matches!(self.advert, Advert::Rule { .. }).then(infopb::RulesInfo::default),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_cut_into_chunks_that_decode_back() {
        let samples: Vec<(i64, f64)> = (0..250).map(|i| (i * 15_000, i as f64 / 3.0)).collect();
        let chunks = encode(&samples).expect("encoded");
        assert_eq!(chunks.len(), 3);
        assert_eq!((chunks[0].min_time, chunks[0].max_time), (0, 119 * 15_000));
        let mut back = Vec::new();
        for c in &chunks {
            let raw = c.raw.as_ref().expect("raw chunk");
            back.extend(storage::chunkenc::decode_xor(&raw.data).expect("decodes"));
        }
        assert_eq!(back, samples);
        assert!(encode(&[]).expect("empty").is_empty());
    }

    #[test]
    fn the_asked_aggregate_is_what_the_view_reads() {
        use crate::store::convert::AggrRead;
        let read_of = |aggrs: &[pb::Aggr]| {
            let r = pb::SeriesRequest {
                aggregates: aggrs.iter().map(|&a| a as i32).collect(),
                max_resolution_window: 300_000,
                ..Default::default()
            };
            let (window, hints) = series_read(&r).expect("valid");
            assert_eq!(window, 300_000);
            AggrRead::for_func(hints.func)
        };
        assert_eq!(read_of(&[pb::Aggr::Count]), AggrRead::Count);
        assert_eq!(read_of(&[pb::Aggr::Sum]), AggrRead::Sum);
        assert_eq!(read_of(&[pb::Aggr::Min]), AggrRead::Min);
        assert_eq!(read_of(&[pb::Aggr::Max]), AggrRead::Max);
        assert_eq!(read_of(&[pb::Aggr::Counter]), AggrRead::Counter);
        assert_eq!(
            read_of(&[pb::Aggr::Count, pb::Aggr::Sum]),
            AggrRead::Average
        );
        assert_eq!(read_of(&[]), AggrRead::Average);
        assert_eq!(read_of(&[pb::Aggr::Raw]), AggrRead::Average);
    }

    #[test]
    fn a_negative_window_or_an_unknown_aggregate_is_refused() {
        let r = pb::SeriesRequest {
            max_resolution_window: -1,
            ..Default::default()
        };
        let e = series_read(&r).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("max_resolution_window -1"), "{e}");
        let r = pb::SeriesRequest {
            aggregates: vec![42],
            ..Default::default()
        };
        assert_eq!(
            series_read(&r).expect_err("refused").code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn partial_response_follows_the_request_strategy() {
        assert_eq!(options(false, 0).partial_response, Some(true));
        assert_eq!(options(true, 0).partial_response, Some(false));
        assert_eq!(
            options(false, pb::PartialResponseStrategy::Abort as i32).partial_response,
            Some(false)
        );
    }
}
