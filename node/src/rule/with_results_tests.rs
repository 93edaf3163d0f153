use super::*;
use crate::rule::alert::LabelMap;
use crate::rule::results::Results;
use crate::store::convert::decode_chunks;
use std::collections::BTreeMap;
use std::sync::Arc;

fn label_map(pairs: &[(&str, &str)]) -> LabelMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A ruler's StoreAPI over results holding `series` at `ts` (value = ts / 1000).
async fn store(series: &[&[(&str, &str)]], ts: &[i64], ext: &[(&str, &str)]) -> QueryStore {
    let r = Arc::new(Results::new(i64::MAX / 4));
    for &t in ts {
        let samples: Vec<(LabelMap, f64)> = series
            .iter()
            .map(|l| (label_map(l), t as f64 / 1000.0))
            .collect();
        r.append(t, &samples).await;
    }
    let ext: BTreeMap<String, String> = label_map(ext);
    crate::rule::grpc::results_store(r, &ext)
}

/// The answer as a querier reads it: consecutive frames of one series chained, decoded.
async fn read(s: &WithResults<QueryStore>, name: &str) -> Vec<(String, Vec<(i64, f64)>)> {
    let req = pb::SeriesRequest {
        min_time: 0,
        max_time: 100_000,
        matchers: vec![pb::LabelMatcher {
            r#type: pb::label_matcher::Type::Re as i32,
            name: "__name__".into(),
            value: name.into(),
        }],
        ..Default::default()
    };
    let mut frames = Store::series(s, Request::new(req))
        .await
        .expect("series")
        .into_inner();
    let mut out: Vec<(String, Vec<pb::AggrChunk>)> = Vec::new();
    while let Some(f) = frames.next().await {
        let Some(series_response::Result::Series(x)) = f.expect("frame").result else {
            continue;
        };
        let key = labels_from_pb(x.labels).to_string();
        match out.last_mut() {
            Some((k, chunks)) if *k == key => chunks.extend(x.chunks),
            _ => out.push((key, x.chunks)),
        }
    }
    out.into_iter()
        .map(|(k, c)| (k, decode_chunks(&c, 0, 100_000).expect("decode")))
        .collect()
}

#[tokio::test]
async fn a_series_in_the_bucket_and_in_the_results_is_read_once_per_timestamp() {
    // The "bucket" holds the uploaded first two evaluations, the results all three.
    let bucket = store(&[&[("__name__", "rec")]], &[1_000, 2_000], &[]).await;
    let results = store(&[&[("__name__", "rec")]], &[1_000, 2_000, 3_000], &[]).await;
    let both = WithResults::new(bucket, results);
    let got = read(&both, "rec").await;
    assert_eq!(got.len(), 1, "one series: {got:?}");
    assert_eq!(got[0].1, vec![(1_000, 1.0), (2_000, 2.0), (3_000, 3.0)]);
}

#[tokio::test]
async fn series_of_both_sides_come_in_label_order() {
    let bucket = store(&[&[("__name__", "b")], &[("__name__", "d")]], &[1_000], &[]).await;
    let results = store(&[&[("__name__", "a")], &[("__name__", "c")]], &[1_000], &[]).await;
    let both = WithResults::new(bucket, results);
    let names: Vec<String> = read(&both, ".+").await.into_iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [
            "{__name__=\"a\"}",
            "{__name__=\"b\"}",
            "{__name__=\"c\"}",
            "{__name__=\"d\"}"
        ]
    );
}

#[tokio::test]
async fn info_advertises_both_label_sets_the_whole_range_and_the_rules_api() {
    let bucket = store(&[&[("__name__", "b")]], &[1_000], &[("site", "a")]).await;
    let empty = store(&[], &[], &[("replica", "r1")]).await;
    let before = Info::info(
        &WithResults::new(bucket.clone(), empty),
        Request::new(Default::default()),
    )
    .await
    .expect("info")
    .into_inner();
    assert_eq!(
        before.label_sets.len(),
        1,
        "no results yet: the bucket's coverage alone"
    );
    assert!(before.rules.is_some(), "the node serves the Rules API");
    let results = store(&[&[("__name__", "r")]], &[5_000], &[("replica", "r1")]).await;
    let both = WithResults::new(bucket, results);
    let info = Info::info(&both, Request::new(Default::default()))
        .await
        .expect("info")
        .into_inner();
    let sets: Vec<String> = info
        .label_sets
        .iter()
        .map(|s| labels_from_pb(s.labels.clone()).to_string())
        .collect();
    assert_eq!(sets, ["{site=\"a\"}", "{replica=\"r1\"}"]);
    let store = info.store.expect("store info");
    assert_eq!((store.min_time, store.max_time), (1_000, i64::MAX));
    let names = Store::label_names(
        &both,
        Request::new(pb::LabelNamesRequest {
            start: 0,
            end: 10_000,
            ..Default::default()
        }),
    )
    .await
    .expect("names")
    .into_inner()
    .names;
    assert_eq!(names, ["__name__", "replica", "site"]);
}
