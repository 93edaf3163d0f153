//! One `thanos.Store` and `thanos.info.Info` for a node whose store role serves the bucket's
//! blocks and whose rule role holds results that are not in the bucket yet: a gRPC port carries
//! one `thanos.Store`, so the store role's service is wrapped to answer from both, and a
//! recording rule's output is queryable at once through any querier, not after its block's
//! upload (2 h by default).
//!
//! Series: when the results hold nothing for the request (most requests), the inner stream
//! passes through untouched. Otherwise the inner answer is gathered, the results' series are
//! added, and all are sent in label order, a series present in both as two consecutive frames
//! (the bucket's first). A querier chains consecutive frames of one series and keeps one sample
//! per timestamp where chunks overlap (`crate::store::client`, as Thanos' querier), so a sample
//! already uploaded and still in memory counts once. Label names and values are the union.
//!
//! Info: the union of the label sets (a side without any adds the empty set, which never
//! excludes), the earliest min time and the latest max time, and the Rules API.

use crate::query::remote::serve::QueryStore;
use crate::store::convert::labels_from_pb;
use proto::thanos::info::info_server::Info;
use proto::thanos::info::{self as infopb};
use proto::thanos::store_server::Store;
use proto::thanos::{self as pb, series_response, SeriesResponse};
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

/// A stream of Series frames.
pub type Frames = Pin<Box<dyn Stream<Item = Result<SeriesResponse, Status>> + Send>>;

/// `inner` (the store role's StoreAPI) answering with the rule role's `results` too.
#[derive(Clone)]
pub struct WithResults<S> {
    inner: S,
    results: QueryStore,
}

impl<S> WithResults<S> {
    /// `inner` extended with `results` (a ruler's StoreAPI, `QueryStore::rule`).
    pub fn new(inner: S, results: QueryStore) -> Self {
        WithResults { inner, results }
    }
}

/// The results' frames for `r`: series, and everything else (warnings).
async fn own_frames(
    results: &QueryStore,
    r: pb::SeriesRequest,
) -> Result<(Vec<pb::Series>, Vec<SeriesResponse>), Status> {
    let mut frames = Store::series(results, Request::new(r)).await?.into_inner();
    let (mut series, mut rest) = (Vec::new(), Vec::new());
    while let Some(f) = frames.next().await {
        match f? {
            SeriesResponse {
                result: Some(series_response::Result::Series(s)),
            } => series.push(s),
            other => rest.push(other),
        }
    }
    Ok((series, rest))
}

/// Label sets of one side; none stands for the empty set (it holds series without any).
fn sets_or_empty<T: Default>(sets: Vec<T>) -> Vec<T> {
    if sets.is_empty() {
        vec![T::default()]
    } else {
        sets
    }
}

/// `a` and `b` sorted and without duplicates.
fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.extend(b);
    a.sort();
    a.dedup();
    a
}

/// Every series of `series` in label order, the earlier of two equal ones first.
fn in_label_order(series: Vec<pb::Series>) -> Vec<pb::Series> {
    let mut keyed: Vec<_> = series
        .into_iter()
        .map(|s| (labels_from_pb(s.labels.clone()), s))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, s)| s).collect()
}

fn series_frame(s: pb::Series) -> Result<SeriesResponse, Status> {
    Ok(SeriesResponse {
        result: Some(series_response::Result::Series(s)),
    })
}

#[tonic::async_trait]
impl<S> Store for WithResults<S>
where
    S: Store + Clone,
    S::SeriesStream: Send + 'static,
{
    async fn info(
        &self,
        request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let inner = Store::info(&self.inner, Request::new(*request.get_ref()))
            .await?
            .into_inner();
        let own = Store::info(&self.results, request).await?.into_inner();
        if own.min_time == i64::MAX {
            // No results yet: the bucket's coverage alone is exact.
            return Ok(Response::new(inner));
        }
        let mut label_sets = sets_or_empty(inner.label_sets);
        label_sets.extend(sets_or_empty(own.label_sets));
        label_sets.dedup();
        Ok(Response::new(pb::InfoResponse {
            label_sets,
            min_time: inner.min_time.min(own.min_time),
            max_time: inner.max_time.max(own.max_time),
            ..inner
        }))
    }

    type SeriesStream = Frames;

    async fn series(
        &self,
        request: Request<pb::SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        let r = request.into_inner();
        let (own, own_rest) = own_frames(&self.results, r.clone()).await?;
        let mut inner: Frames = Box::pin(
            Store::series(&self.inner, Request::new(r))
                .await?
                .into_inner(),
        );
        if own.is_empty() && own_rest.is_empty() {
            return Ok(Response::new(inner));
        }
        let (mut series, mut rest) = (Vec::new(), Vec::new());
        while let Some(f) = inner.next().await {
            match f?.result {
                Some(series_response::Result::Series(s)) => series.push(s),
                Some(series_response::Result::Batch(b)) => series.extend(b.series),
                other => rest.push(SeriesResponse { result: other }),
            }
        }
        series.extend(own);
        let frames: Vec<Result<SeriesResponse, Status>> = in_label_order(series)
            .into_iter()
            .map(series_frame)
            .chain(rest.into_iter().chain(own_rest).map(Ok))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(frames))))
    }

    async fn label_names(
        &self,
        request: Request<pb::LabelNamesRequest>,
    ) -> Result<Response<pb::LabelNamesResponse>, Status> {
        let own = Store::label_names(&self.results, Request::new(request.get_ref().clone()))
            .await?
            .into_inner();
        let mut inner = Store::label_names(&self.inner, request).await?.into_inner();
        inner.names = union(inner.names, own.names);
        inner.warnings.extend(own.warnings);
        Ok(Response::new(inner))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::LabelValuesResponse>, Status> {
        let own = Store::label_values(&self.results, Request::new(request.get_ref().clone()))
            .await?
            .into_inner();
        let mut inner = Store::label_values(&self.inner, request)
            .await?
            .into_inner();
        inner.values = union(inner.values, own.values);
        inner.warnings.extend(own.warnings);
        Ok(Response::new(inner))
    }
}

#[tonic::async_trait]
impl<S> Info for WithResults<S>
where
    S: Info + Clone,
{
    async fn info(
        &self,
        request: Request<infopb::InfoRequest>,
    ) -> Result<Response<infopb::InfoResponse>, Status> {
        let mut inner = Info::info(&self.inner, Request::new(*request.get_ref()))
            .await?
            .into_inner();
        let own = Info::info(&self.results, request).await?.into_inner();
        // The node serves its groups over the Rules API whether or not they produced results.
        inner.rules = own.rules;
        let own_min = own.store.as_ref().map_or(i64::MAX, |s| s.min_time);
        if own_min == i64::MAX {
            return Ok(Response::new(inner));
        }
        let own_max = own.store.as_ref().map_or(i64::MAX, |s| s.max_time);
        let mut label_sets = sets_or_empty(std::mem::take(&mut inner.label_sets));
        label_sets.extend(sets_or_empty(own.label_sets));
        label_sets.dedup();
        inner.label_sets = label_sets;
        match &mut inner.store {
            Some(store) => {
                store.min_time = store.min_time.min(own_min);
                store.max_time = store.max_time.max(own_max);
            }
            None => inner.store = own.store,
        }
        Ok(Response::new(inner))
    }
}

#[cfg(test)]
#[path = "with_results_tests.rs"]
mod tests;
