//! A StoreAPI endpoint from the querier's side: its Info (label sets, time range) and its
//! Series, LabelNames and LabelValues, with chunks decoded to samples.
//!
//! The channel connects lazily and reconnects by itself, so one [`StoreEndpoint`] per address
//! lives as long as the address is a store source.

use super::convert::{decode_chunks_as, labels_from_pb, matcher_to_pb, ConvertError, Resolution};
use crate::server::grpc_metrics::{client_call, Call};
use promql::SeriesData;
use proto::thanos::info::info_client::InfoClient;
use proto::thanos::store_client::StoreClient;
use proto::thanos::{self as pb, series_response};
use std::sync::Arc;
use std::time::Duration;
use storage::labels::Labels;
use storage::matcher::Matcher;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

/// Largest frame accepted from a store: generous, since other StoreAPI servers may not split
/// as finely as Strata's (Thanos' querier accepts up to 2 GiB).
const MAX_FRAME_BYTES: usize = 64 << 20;

/// How long dialling a store may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Series per frame asked of stores (Thanos' `response_batch_size`): fewer, larger messages.
/// Stores that do not batch ignore it.
const RESPONSE_BATCH_SIZE: i64 = 64;

/// How long an Info call may take.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// A StoreAPI call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not a valid endpoint.
    #[error("store {address}: invalid address: {reason}")]
    Address {
        /// The store.
        address: String,
        /// Why.
        reason: String,
    },
    /// The store answered with an error status or could not be reached.
    #[error("store {address}: {} ({:?})", status.message(), status.code())]
    Rpc {
        /// The store.
        address: String,
        /// The gRPC status.
        status: tonic::Status,
    },
    /// The store sent a chunk Strata cannot decode.
    #[error("store {address}: series {labels}: {source}")]
    Decode {
        /// The store.
        address: String,
        /// The series.
        labels: Labels,
        /// Why.
        source: ConvertError,
    },
}

/// What a store serves, from its Info.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreMeta {
    /// External label sets of its data (empty: unknown, never excludes a query).
    pub label_sets: Vec<Labels>,
    /// Earliest timestamp served.
    pub min_time: i64,
    /// Latest timestamp served.
    pub max_time: i64,
    /// What the endpoint is (`store`, `sidecar`, `query`, `rule`, `receive`), as its Info says.
    pub component_type: String,
}

/// Series and warnings of one store.
#[derive(Debug, Default)]
pub struct SeriesAnswer {
    /// Series sorted by labels, with samples in the requested range.
    pub series: Vec<SeriesData>,
    /// Warnings the store sent.
    pub warnings: Vec<String>,
}

/// How the querier dials a store. TCP_NODELAY is tonic's default too, but it is stated here:
/// with Nagle on, a request's small last write waits for the store's delayed ACK (about
/// 40 ms), which is the whole cost of a small query.
fn endpoint(address: &str) -> Result<Endpoint, ClientError> {
    Ok(Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| ClientError::Address {
            address: address.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true))
}

/// One StoreAPI endpoint.
#[derive(Debug, Clone)]
pub struct StoreEndpoint {
    address: String,
    channel: Channel,
}

impl StoreEndpoint {
    /// An endpoint for `host:port` (plain gRPC; TLS is not supported yet). Connects lazily.
    pub fn new(address: &str) -> Result<Self, ClientError> {
        let channel = endpoint(address)?.connect_lazy();
        Ok(StoreEndpoint {
            address: address.to_string(),
            channel,
        })
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn rpc(&self, status: tonic::Status) -> ClientError {
        ClientError::Rpc {
            address: self.address.clone(),
            status,
        }
    }

    /// Records a unary call's outcome and maps its error.
    fn observed<T>(
        &self,
        call: Option<Call>,
        r: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<tonic::Response<T>, ClientError> {
        finish(call, r.as_ref().map_or_else(|s| s.code(), |_| Code::Ok));
        r.map_err(|s| self.rpc(s))
    }

    fn store(&self) -> StoreClient<Channel> {
        StoreClient::new(self.channel.clone()).max_decoding_message_size(MAX_FRAME_BYTES)
    }

    /// The store's label sets and time range: `thanos.info.Info`, or the legacy `Store.Info` for
    /// servers without the Info API.
    pub async fn info(&self) -> Result<StoreMeta, ClientError> {
        let timeout = |_| self.rpc(tonic::Status::deadline_exceeded("Info timed out"));
        let mut client = InfoClient::new(self.channel.clone());
        let call = client_call("thanos.info.Info", "Info");
        let modern =
            match tokio::time::timeout(INFO_TIMEOUT, client.info(pb::info::InfoRequest {})).await {
                Ok(m) => m,
                Err(e) => {
                    finish(call, Code::DeadlineExceeded);
                    return Err(timeout(e));
                }
            };
        finish(
            call,
            modern.as_ref().map_or_else(|s| s.code(), |_| Code::Ok),
        );
        match modern {
            Ok(r) => {
                let r = r.into_inner();
                let store = r.store.ok_or_else(|| {
                    self.rpc(tonic::Status::failed_precondition(
                        "the endpoint does not serve the StoreAPI",
                    ))
                })?;
                Ok(StoreMeta {
                    label_sets: r
                        .label_sets
                        .into_iter()
                        .map(|s| labels_from_pb(s.labels))
                        .collect(),
                    min_time: store.min_time,
                    max_time: store.max_time,
                    component_type: r.component_type,
                })
            }
            Err(s) if s.code() == Code::Unimplemented => {
                let call = client_call("thanos.Store", "Info");
                let mut store = self.store();
                let legacy = store.info(pb::InfoRequest {});
                let r = match tokio::time::timeout(INFO_TIMEOUT, legacy).await {
                    Ok(r) => r,
                    Err(e) => {
                        finish(call, Code::DeadlineExceeded);
                        return Err(timeout(e));
                    }
                };
                let r = self.observed(call, r)?.into_inner();
                Ok(StoreMeta {
                    label_sets: r
                        .label_sets
                        .into_iter()
                        .map(|s| labels_from_pb(s.labels))
                        .collect(),
                    min_time: r.min_time,
                    max_time: r.max_time,
                    component_type: legacy_component(r.store_type),
                })
            }
            Err(s) => Err(self.rpc(s)),
        }
    }

    /// Series matching `matchers` with samples in `[mint, maxt]`, decoded; with `skip_chunks`,
    /// labels only (every series the store lists, samples empty).
    pub async fn series(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
    ) -> Result<SeriesAnswer, ClientError> {
        self.series_at(matchers, mint, maxt, skip_chunks, Resolution::RAW)
            .await
    }

    /// [`StoreEndpoint::series`] at a resolution: downsampled chunks are asked as the
    /// aggregates `res.read` needs and decoded to samples from them.
    pub async fn series_at(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        skip_chunks: bool,
        res: Resolution,
    ) -> Result<SeriesAnswer, ClientError> {
        let req = pb::SeriesRequest {
            min_time: mint,
            max_time: maxt,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            skip_chunks,
            response_batch_size: RESPONSE_BATCH_SIZE,
            max_resolution_window: res.max_window,
            aggregates: res.read.to_pb(),
            ..Default::default()
        };
        // Handled once the stream ends or fails; dropped mid-stream (the query was cancelled),
        // the call counts as Canceled.
        let call = client_call("thanos.Store", "Series");
        let (call, opened) = match self.store().series(req).await {
            Ok(s) => (call, s),
            Err(s) => {
                finish(call, s.code());
                return Err(self.rpc(s));
            }
        };
        let mut stream = opened.into_inner();
        let mut call = call;
        let mut answer = SeriesAnswer::default();
        let mut decoding = Decoding::new(self.address.clone(), mint, maxt, skip_chunks, res);
        // A series may span consecutive frames: gather its chunks until the labels change.
        let mut current: Option<(Vec<pb::Label>, Vec<pb::AggrChunk>)> = None;
        while let Some(frame) = stream.message().await.map_err(|s| {
            finish(call.take(), s.code());
            self.rpc(s)
        })? {
            let series = match frame.result {
                Some(series_response::Result::Series(s)) => vec![s],
                Some(series_response::Result::Batch(b)) => b.series,
                Some(series_response::Result::Warning(w)) => {
                    answer.warnings.push(w);
                    continue;
                }
                Some(series_response::Result::Hints(_)) | None => continue,
            };
            for s in series {
                match &mut current {
                    Some((l, chunks)) if same_labels(l, &s.labels) => chunks.extend(s.chunks),
                    _ => {
                        if let Some(done) = current.take() {
                            decoding.push(done);
                        }
                        current = Some((s.labels, s.chunks));
                    }
                }
            }
        }
        finish(call, Code::Ok);
        if let Some(done) = current.take() {
            decoding.push(done);
        }
        answer.series = decoding.finish().await?;
        Ok(answer)
    }

    /// Label names of the series matching `matchers` in `[mint, maxt]`, and warnings.
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<(Vec<String>, Vec<String>), ClientError> {
        let req = pb::LabelNamesRequest {
            start: mint,
            end: maxt,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            ..Default::default()
        };
        let call = client_call("thanos.Store", "LabelNames");
        let r = self.store().label_names(req).await;
        let r = self.observed(call, r)?.into_inner();
        Ok((r.names, r.warnings))
    }

    /// Values of label `name` on the series matching `matchers` in `[mint, maxt]`, and warnings.
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<(Vec<String>, Vec<String>), ClientError> {
        let req = pb::LabelValuesRequest {
            label: name.to_string(),
            start: mint,
            end: maxt,
            matchers: matchers.iter().map(matcher_to_pb).collect(),
            ..Default::default()
        };
        let call = client_call("thanos.Store", "LabelValues");
        let r = self.store().label_values(req).await;
        let r = self.observed(call, r)?.into_inner();
        Ok((r.values, r.warnings))
    }
}

/// Whether two wire label sets are equal, compared from the last pair: neighbours in label
/// order usually share their first pairs (`__name__`, ...) and differ in a later one.
fn same_labels(a: &[pb::Label], b: &[pb::Label]) -> bool {
    a.len() == b.len() && a.iter().rev().zip(b.iter().rev()).all(|(x, y)| x == y)
}

/// Series received but not decoded yet: (wire labels, chunks).
type RawSeries = (Vec<pb::Label>, Vec<pb::AggrChunk>);

/// Series per decoding task: enough that a task's hand-off costs little next to its work.
const DECODE_GROUP: usize = 256;

/// Decodes a Series answer while it is still arriving: each complete group of
/// [`DECODE_GROUP`] series is decoded by a task of its own (on another core while this one
/// reads the stream); a small answer is decoded in place, without any hand-off.
struct Decoding {
    address: Arc<str>,
    mint: i64,
    maxt: i64,
    skip_chunks: bool,
    res: Resolution,
    group: Vec<RawSeries>,
    /// Tasks by group number; results are put back in that order.
    tasks: tokio::task::JoinSet<(usize, Result<Vec<SeriesData>, ClientError>)>,
    spawned: usize,
}

impl Decoding {
    fn new(address: String, mint: i64, maxt: i64, skip_chunks: bool, res: Resolution) -> Self {
        Decoding {
            address: address.into(),
            mint,
            maxt,
            skip_chunks,
            res,
            group: Vec::new(),
            tasks: tokio::task::JoinSet::new(),
            spawned: 0,
        }
    }

    fn push(&mut self, series: RawSeries) {
        self.group.push(series);
        if self.group.len() >= DECODE_GROUP && !self.skip_chunks {
            let group = std::mem::take(&mut self.group);
            let (address, mint, maxt, res, n) = (
                self.address.clone(),
                self.mint,
                self.maxt,
                self.res,
                self.spawned,
            );
            self.tasks
                .spawn(async move { (n, decode_group(&address, group, mint, maxt, false, res)) });
            self.spawned += 1;
        }
    }

    /// Every series decoded, in the order received; an error if any failed.
    async fn finish(mut self) -> Result<Vec<SeriesData>, ClientError> {
        let last = decode_group(
            &self.address,
            std::mem::take(&mut self.group),
            self.mint,
            self.maxt,
            self.skip_chunks,
            self.res,
        );
        if self.spawned == 0 {
            return last;
        }
        let mut parts: Vec<Option<Vec<SeriesData>>> = (0..self.spawned).map(|_| None).collect();
        while let Some(joined) = self.tasks.join_next().await {
            let (n, result) = joined.map_err(|e| ClientError::Rpc {
                address: self.address.to_string(),
                status: tonic::Status::internal(format!("decoding task failed: {e}")),
            })?;
            if let Some(slot) = parts.get_mut(n) {
                *slot = Some(result?);
            }
        }
        let mut out = Vec::new();
        for p in parts.into_iter().flatten() {
            out.extend(p);
        }
        out.extend(last?);
        Ok(out)
    }
}

/// Decodes one group of series; series without samples in range are dropped (kept, empty,
/// with `skip_chunks`).
fn decode_group(
    address: &str,
    group: Vec<RawSeries>,
    mint: i64,
    maxt: i64,
    skip_chunks: bool,
    res: Resolution,
) -> Result<Vec<SeriesData>, ClientError> {
    let mut out = Vec::with_capacity(group.len());
    for (labels, chunks) in group {
        let labels = labels_from_pb(labels);
        if skip_chunks {
            out.push(SeriesData {
                labels,
                samples: Vec::new(),
            });
            continue;
        }
        match decode_chunks_as(&chunks, mint, maxt, res.read) {
            Ok(samples) if samples.is_empty() => {}
            Ok(samples) => out.push(SeriesData { labels, samples }),
            Err(source) => {
                return Err(ClientError::Decode {
                    address: address.to_string(),
                    labels,
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Records `call` (if metered) as handled with `code`.
fn finish(call: Option<Call>, code: Code) {
    if let Some(c) = call {
        c.finish(code);
    }
}

/// The component name of the legacy `Store.Info` store type (Thanos' `component.FromProto`).
fn legacy_component(store_type: i32) -> String {
    match pb::StoreType::try_from(store_type) {
        Ok(pb::StoreType::Query) => "query",
        Ok(pb::StoreType::Rule) => "rule",
        Ok(pb::StoreType::Sidecar) => "sidecar",
        Ok(pb::StoreType::Store) => "store",
        Ok(pb::StoreType::Receive) => "receive",
        Ok(pb::StoreType::Debug) => "debug",
        _ => "unknown",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` wire series `s00000`.. with one chunk of samples at 0, 10, 20 each (value: the
    /// series number), in label order.
    fn raw_series(n: usize) -> Vec<RawSeries> {
        (0..n)
            .map(|i| {
                let mut app = storage::chunkenc::XorAppender::new();
                for t in [0, 10, 20] {
                    app.append(t, i as f64).expect("append");
                }
                let labels = super::super::convert::labels_to_pb(&Labels::from_pairs([(
                    "s",
                    format!("{i:05}"),
                )]));
                let chunk = super::super::convert::chunk_to_pb(&app.finish(), 0, 20);
                (labels, vec![chunk])
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn series_decoded_by_several_tasks_come_back_in_arrival_order() {
        let n = DECODE_GROUP * 3 + 17;
        let mut d = Decoding::new("store:1".into(), 10, 20, false, Resolution::RAW);
        for s in raw_series(n) {
            d.push(s);
        }
        assert_eq!(d.spawned, 3);
        let got = d.finish().await.expect("decoded");
        assert_eq!(got.len(), n);
        for (i, s) in got.iter().enumerate() {
            assert_eq!(s.labels.get("s"), Some(format!("{i:05}").as_str()));
            assert_eq!(s.samples, vec![(10, i as f64), (20, i as f64)]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_chunk_in_any_group_fails_the_answer_naming_store_and_series() {
        let mut series = raw_series(DECODE_GROUP * 2);
        series[5].1[0].raw.as_mut().expect("raw").data = vec![0xff; 3].into();
        let mut d = Decoding::new("store:1".into(), 0, 20, false, Resolution::RAW);
        for s in series {
            d.push(s);
        }
        let e = d.finish().await.expect_err("corrupt chunk");
        let text = e.to_string();
        assert!(text.contains("store:1") && text.contains("00005"), "{text}");
    }

    #[test]
    fn wire_label_sets_are_equal_only_when_every_pair_is() {
        let l = |pairs: &[(&str, &str)]| {
            super::super::convert::labels_to_pb(&Labels::from_pairs(pairs.iter().copied()))
        };
        let a = l(&[("__name__", "up"), ("instance", "a"), ("job", "x")]);
        assert!(same_labels(&a, &a.clone()));
        assert!(!same_labels(
            &a,
            &l(&[("__name__", "up"), ("instance", "b"), ("job", "x")])
        ));
        assert!(!same_labels(
            &a,
            &l(&[("__name__", "down"), ("instance", "a"), ("job", "x")])
        ));
        assert!(!same_labels(&a, &l(&[("instance", "a"), ("job", "x")])));
    }

    #[test]
    fn store_connections_are_dialled_with_nodelay() {
        let e = endpoint("127.0.0.1:10901").expect("endpoint");
        assert!(e.get_tcp_nodelay());
        assert_eq!(e.uri().to_string(), "http://127.0.0.1:10901/");
    }

    #[test]
    fn bad_address_is_an_address_error_naming_it() {
        let e = endpoint("bad host:1").expect_err("space in host");
        assert!(
            matches!(&e, ClientError::Address { address, .. } if address == "bad host:1"),
            "{e}"
        );
    }
}
