//! Downsampled blocks through real processes: a FILESYSTEM bucket holds, for two HA replicas,
//! a 48 h raw block, its 5m block and that block's 1h block (made by storage's
//! `downsample_block`, as `strata compact` makes them); `strata store` serves it and
//! `strata query --endpoint` answers PromQL at `max_source_resolution` 0, 5m, 1h and `auto`;
//! `strata query` reading the bucket itself (the embedded mode) answers the same, and queries
//! over 1h data look back an hour (`--query.dynamic-lookback-delta`).
//!
//! References come from the raw samples the way Thanos answers: a function over a range reads
//! one aggregate per window of the resolution (windows end 1 ms before a multiple of the
//! resolution, and every raw sample here sits 1 ms before a whole minute, so the last sample of
//! each window is at the window's end): `max`/`min`/`sum_over_time` are exact over the windows
//! the range holds, `count_over_time` counts windows, `rate` reads the counter aggregate with
//! resets applied (exactly 1/s here, across two counter resets, and `resets` sees none, as in
//! Thanos), and `sum`/`avg` read each window's average (sum / count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod query_common;

use query_common::{enc, get, StrataQuery};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::block::meta::ThanosMeta;
use storage::block::{write_block, BlockWriterOptions};
use storage::bucket::blocks::{read_meta, upload_block};
use storage::bucket::Bucket;
use storage::downsample::{downsample_block, RES_1H, RES_5M};
use storage::labels::Labels;
use storage::testing::prometheus::free_port;

const MIN: i64 = 60_000;
const H: i64 = 3_600_000;
const HOURS: i64 = 48;
/// Counter resets at these sample indexes (11h40m and 33h20m into the data).
const RESETS: [i64; 2] = [700, 2000];

fn base() -> i64 {
    1_700_000_000_000 / H * H
}

/// Sample `i`'s timestamp: 1 ms before a whole minute, so that every 5th (and 60th) sample is
/// the last of its 5m (1h) window and sits at the window's end.
fn t_of(i: i64) -> i64 {
    base() + (i + 1) * MIN - 1
}

fn gauge(job: i64, i: i64) -> f64 {
    ((i * 37 + job * 11) % 101) as f64 - 50.0
}

/// The gauges of jobs a and b and a counter growing 60 per minute that resets twice (to the
/// 60 it grew since the previous scrape).
fn raw_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let n = HOURS * 60;
    let mut counter = Vec::new();
    let mut v = 0.0;
    for i in 0..n {
        v = if RESETS.contains(&i) { 60.0 } else { v + 60.0 };
        counter.push((t_of(i), v));
    }
    let mut out = vec![(
        Labels::from_pairs([("__name__", "c_total"), ("job", "a")]),
        counter,
    )];
    for (job, name) in [(0, "a"), (1, "b")] {
        out.push((
            Labels::from_pairs([("__name__", "g"), ("job", name)]),
            (0..n).map(|i| (t_of(i), gauge(job, i))).collect(),
        ));
    }
    out
}

fn open_bucket(dir: &Path) -> Arc<dyn Bucket> {
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    );
    let config = storage::bucket::config::BucketConfig::parse(&yaml, "test").unwrap();
    let metrics =
        storage::bucket::metrics::BucketMetrics::register(&prometheus::Registry::new()).unwrap();
    storage::bucket::open::open_bucket(&config, &Default::default(), &metrics).unwrap()
}

/// Per replica: the raw block, its 5m block, and the 5m block's 1h block.
fn build_bucket(work: &Path) -> PathBuf {
    let dir = work.join("bucket");
    std::fs::create_dir_all(&dir).unwrap();
    let bucket = open_bucket(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for replica in ["a", "b"] {
            let thanos = ThanosMeta {
                labels: BTreeMap::from([("replica".to_string(), replica.to_string())]),
                source: "test".into(),
                ..Default::default()
            };
            let (block_dir, meta) = write_block(
                &work.join(format!("raw-{replica}")),
                raw_series(),
                Some(thanos),
                BlockWriterOptions::default(),
            )
            .unwrap();
            let meta = upload_block(bucket.as_ref(), &block_dir, &meta, None)
                .await
                .unwrap();
            let scratch = work.join("downsample");
            let id5 = downsample_block(bucket.clone(), &meta, RES_5M, &scratch)
                .await
                .unwrap();
            let meta5 = read_meta(bucket.as_ref(), id5).await.unwrap();
            downsample_block(bucket.clone(), &meta5, RES_1H, &scratch)
                .await
                .unwrap();
        }
    });
    dir
}

/// A `strata store` process, killed when dropped.
struct Store {
    child: Option<Child>,
    grpc: String,
    log: PathBuf,
}

impl Store {
    fn start(work: &Path, bucket: &Path) -> Store {
        let grpc = format!("127.0.0.1:{}", free_port().expect("port"));
        let http = free_port().expect("port");
        let log = work.join("store.log");
        let objstore = format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            bucket.display()
        );
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("store")
            .arg(format!("--data-dir={}", work.join("store").display()))
            .arg(format!("--grpc-address={grpc}"))
            .arg(format!("--http-address=127.0.0.1:{http}"))
            .arg(format!("--objstore.config={objstore}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start strata store");
        let mut s = Store {
            child: Some(child),
            grpc,
            log,
        };
        let start = Instant::now();
        while !s.log_text().contains("serving StoreAPI") {
            if let Some(Ok(Some(st))) = s.child.as_mut().map(Child::try_wait) {
                panic!("store exited with {st}:\n{}", s.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "store not serving within 60s:\n{}",
                s.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== store =====\n{}", self.log_text());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn querier(work: &Path, store: &Store, extra: &[&str]) -> StrataQuery {
    let endpoint = format!("--endpoint={}", store.grpc);
    ready_querier(work, &endpoint, extra)
}

/// A querier reading the bucket's blocks itself (no endpoint).
fn embedded_querier(work: &Path, bucket: &Path, extra: &[&str]) -> StrataQuery {
    let objstore = format!(
        "--objstore.config=type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    ready_querier(work, &objstore, extra)
}

fn ready_querier(work: &Path, source: &str, extra: &[&str]) -> StrataQuery {
    let mut args = vec![source, "--query.replica-label=replica"];
    args.extend_from_slice(extra);
    let mut q = StrataQuery::spawn(work, &args);
    q.wait_until("ready", Duration::from_secs(30), |q| {
        query_common::request(q.port, "GET", "/-/ready", None).is_ok_and(|r| r.status == 200)
    });
    q
}

/// An instant query's vector as (labels, value), sorted by labels.
fn instant(q: &StrataQuery, expr: &str, t: i64, resolution: &str) -> Vec<(String, f64)> {
    let mut path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        enc(expr),
        t / 1000,
        t % 1000
    );
    if !resolution.is_empty() {
        path.push_str(&format!("&max_source_resolution={resolution}"));
    }
    let r = get(q.port, &path);
    assert_eq!(r.status, 200, "{path}: {}\n{}", r.body, q.log());
    let v = r.json();
    let mut out: Vec<(String, f64)> = v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: {v}"))
        .iter()
        .map(|s| {
            let value: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            (s["metric"].to_string(), value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The one value of an instant query that must answer one series.
fn one(q: &StrataQuery, expr: &str, t: i64, resolution: &str) -> f64 {
    let v = instant(q, expr, t, resolution);
    assert_eq!(v.len(), 1, "{expr} at {t} ({resolution}): {v:?}");
    v[0].1
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want}");
}

/// Gauge samples of `job` in `(from, to]`.
fn raw_in(job: i64, from: i64, to: i64) -> Vec<f64> {
    (0..HOURS * 60)
        .filter(|&i| t_of(i) > from && t_of(i) <= to)
        .map(|i| gauge(job, i))
        .collect()
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MAX, f64::min)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// `[range]` per resolution, not a multiple of it (so that Prometheus 2.42's closed and later
/// versions' left-open ranges agree), the windows it holds, and the span of raw data they cover.
struct Case {
    resolution: &'static str,
    range: &'static str,
    windows: usize,
    covered: i64,
}

const CASES: [Case; 2] = [
    Case {
        resolution: "5m",
        range: "58m30s",
        windows: 12,
        covered: H,
    },
    Case {
        resolution: "1h",
        range: "2h30m",
        windows: 3,
        covered: 3 * H,
    },
];

#[test]
fn functions_over_downsampled_blocks_answer_from_the_right_aggregate() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bucket = build_bucket(work);
    let store = Store::start(work, &bucket);
    let lower_grpc = format!("127.0.0.1:{}", free_port().expect("port"));
    let through_store = querier(work, &store, &[&format!("--grpc-address={lower_grpc}")]);
    let embedded = embedded_querier(work, &bucket, &[]);
    // A querier over the first querier's own StoreAPI, which passes the resolution on.
    let stacked = ready_querier(work, &format!("--endpoint={lower_grpc}"), &[]);
    for q in [&through_store, &embedded] {
        check_functions(q);
    }
    // Beyond the references: all paths give identical answers, series by series.
    let (start, end) = (base() + 2 * H - 1, base() + 47 * H - 1);
    for res in ["0s", "5m", "1h", "auto"] {
        for expr in [
            "g",
            "c_total",
            "sum(g)",
            "max_over_time(g[2h30m])",
            "min_over_time(g[58m30s])",
            "sum_over_time(g[2h30m])",
            "count_over_time(g[58m30s])",
            "rate(c_total[2h30m])",
            "increase(c_total[2h30m])",
            "resets(c_total[2h30m])",
        ] {
            for dedup in ["true", "false"] {
                let path = format!(
                    "/api/v1/query_range?query={}&start={}.{:03}&end={}.{:03}&step=3600\
                     &max_source_resolution={res}&dedup={dedup}",
                    enc(expr),
                    start / 1000,
                    start % 1000,
                    end / 1000,
                    end % 1000
                );
                let a = get(through_store.port, &path);
                let b = get(embedded.port, &path);
                let c = get(stacked.port, &path);
                for r in [&a, &b, &c] {
                    assert_eq!(r.status, 200, "{path}: {}", r.body);
                }
                let (a, b, c) = (a.json(), b.json(), c.json());
                assert!(
                    !a["data"]["result"].as_array().unwrap().is_empty(),
                    "{path}: {a}"
                );
                assert_eq!(a["data"], b["data"], "{path}: StoreAPI vs embedded");
                assert_eq!(a["data"], c["data"], "{path}: StoreAPI vs stacked queriers");
            }
        }
    }
}

/// The references above, asked of querier `q`.
fn check_functions(q: &StrataQuery) {
    // At the end of hours 3 (the start), 12 (after the first reset), 34 (after the second).
    for k in [3, 12, 20, 34, 47] {
        let t = base() + k * H - 1;
        for c in &CASES {
            let (res, r) = (c.resolution, c.range);
            let what = |f: &str| format!("{f} at hour {k}, max_source_resolution={res}");
            for (job, name) in [(0, "a"), (1, "b")] {
                let raw = raw_in(job, t - c.covered, t);
                let sel = format!("g{{job=\"{name}\"}}[{r}]");
                close(
                    one(q, &format!("max_over_time({sel})"), t, res),
                    max(&raw),
                    &what("max_over_time"),
                );
                close(
                    one(q, &format!("min_over_time({sel})"), t, res),
                    min(&raw),
                    &what("min_over_time"),
                );
                close(
                    one(q, &format!("sum_over_time({sel})"), t, res),
                    raw.iter().sum(),
                    &what("sum_over_time"),
                );
                close(
                    one(q, &format!("count_over_time({sel})"), t, res),
                    c.windows as f64,
                    &what("count_over_time"),
                );
            }
            close(
                one(q, &format!("rate(c_total[{r}])"), t, res),
                1.0,
                &what("rate"),
            );
            // Thanos' counter iterator applies resets, so `resets` over it sees none.
            close(
                one(q, &format!("resets(c_total[{r}])"), t, res),
                0.0,
                &what("resets"),
            );
            // Aggregations read each window's average; replicas are deduplicated.
            let window = if res == "5m" { 5 * MIN } else { H };
            let means: Vec<f64> = (0..2)
                .map(|job| mean(&raw_in(job, t - window, t)))
                .collect();
            close(one(q, "sum(g)", t, res), means.iter().sum(), &what("sum"));
            close(one(q, "avg(g)", t, res), mean(&means), &what("avg"));
            close(one(q, "count(g)", t, res), 2.0, &what("count"));
        }

        // max_source_resolution=0 (and none) still reads raw samples.
        for res in ["0", "0s", ""] {
            let what = |f: &str| format!("{f} at hour {k}, max_source_resolution={res:?}");
            close(
                one(q, "count_over_time(g{job=\"a\"}[58m30s])", t, res),
                59.0,
                &what("count_over_time"),
            );
            let at_t: f64 = (0..2).map(|job| gauge(job, (t - base()) / MIN)).sum();
            close(one(q, "sum(g)", t, res), at_t, &what("sum"));
            close(one(q, "rate(c_total[58m30s])", t, res), 1.0, &what("rate"));
            let reset_inside = RESETS
                .iter()
                .any(|&i| t_of(i) > t - 58 * MIN - 30_000 && t_of(i) <= t);
            close(
                one(q, "resets(c_total[58m30s])", t, res),
                f64::from(u8::from(reset_inside)),
                &what("resets"),
            );
        }
    }
}

/// The values of a range query's single series.
fn range_values(
    q: &StrataQuery,
    expr: &str,
    start: i64,
    end: i64,
    step_s: i64,
    extra: &str,
) -> Vec<f64> {
    let path = format!(
        "/api/v1/query_range?query={}&start={}.{:03}&end={}.{:03}&step={step_s}{extra}",
        enc(expr),
        start / 1000,
        start % 1000,
        end / 1000,
        end % 1000
    );
    let r = get(q.port, &path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    let v = r.json();
    let series = v["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{path}: {v}");
    series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn auto_resolution_is_a_fifth_of_the_step_and_the_flag_makes_it_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bucket = build_bucket(work);
    let store = Store::start(work, &bucket);
    let plain = querier(work, &store, &[]);
    let auto = querier(work, &store, &["--query.auto-downsampling"]);
    let (start, end) = (base() + 5 * H - 1, base() + 10 * H - 1);
    let expr = "count_over_time(g{job=\"a\"}[58m30s])";
    // A 1h step: step / 5 = 12m allows 5m blocks, not 1h ones.
    let auto_5m = range_values(
        &plain,
        expr,
        start,
        end,
        3600,
        "&max_source_resolution=auto",
    );
    assert_eq!(auto_5m, vec![12.0; 6]);
    // A 10h step allows 1h blocks (2h30m holds three 1h windows).
    let coarse = "count_over_time(g{job=\"a\"}[2h30m])";
    let auto_1h = range_values(
        &plain,
        coarse,
        start,
        start + 10 * H,
        36_000,
        "&max_source_resolution=auto",
    );
    assert_eq!(auto_1h, vec![3.0; 2]);
    // Without the parameter: raw, unless --query.auto-downsampling.
    assert_eq!(
        range_values(&plain, expr, start, end, 3600, ""),
        vec![59.0; 6]
    );
    assert_eq!(
        range_values(&auto, expr, start, end, 3600, ""),
        vec![12.0; 6]
    );
    // An explicit resolution wins over the flag.
    assert_eq!(
        range_values(&auto, expr, start, end, 3600, "&max_source_resolution=0s"),
        vec![59.0; 6]
    );
    // A bad value is Thanos' bad_data error.
    let r = get(
        plain.port,
        &format!(
            "/api/v1/query?query=g&time={}&max_source_resolution=soon",
            start / 1000
        ),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("max_source_resolution"), "{}", r.body);
}

#[test]
fn queries_over_hourly_data_look_back_an_hour_unless_dynamic_lookback_is_off() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let bucket = build_bucket(work);
    let dynamic = embedded_querier(work, &bucket, &[]);
    let fixed = embedded_querier(work, &bucket, &["--query.dynamic-lookback-delta=false"]);
    // The last raw sample and the last window of every resolution end at `last`.
    let last = t_of(HOURS * 60 - 1);
    let last_hour_mean = mean(&raw_in(0, last - H, last));
    let sel = "g{job=\"a\"}";
    // 30 minutes after the data: only a lookback of an hour reaches the last 1h sample.
    let t = last + 30 * MIN;
    close(
        one(&dynamic, sel, t, "1h"),
        last_hour_mean,
        "g at 1h resolution, 30m after the data",
    );
    assert!(instant(&fixed, sel, t, "1h").is_empty());
    // At 5m or raw resolution the lookback stays --query.lookback-delta's 5m.
    let last_5m_mean = mean(&raw_in(0, last - 5 * MIN, last));
    for (res, want) in [("5m", last_5m_mean), ("0s", gauge(0, HOURS * 60 - 1))] {
        assert!(instant(&dynamic, sel, t, res).is_empty(), "{res}");
        assert!(
            instant(&dynamic, sel, last + 6 * MIN, res).is_empty(),
            "{res}"
        );
        close(
            one(&dynamic, sel, last + 4 * MIN, res),
            want,
            &format!("g at {res}, 4m after the data"),
        );
    }
    // Auto resolution on a range query: a 1h step reads up to 12m, so 5m blocks with the 1h
    // lookback, and the point 30m after the data still finds the last 5m window.
    let path = format!(
        "/api/v1/query_range?query={}&start={}.{:03}&end={}.{:03}&step=3600&max_source_resolution=auto",
        enc(sel),
        (last - 30 * MIN) / 1000,
        (last - 30 * MIN) % 1000,
        (last + 30 * MIN) / 1000,
        (last + 30 * MIN) % 1000,
    );
    let points = |q: &StrataQuery| -> usize {
        let r = get(q.port, &path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()["data"]["result"][0]["values"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(points(&dynamic), 2, "{path}");
    assert_eq!(points(&fixed), 1, "{path}");
    // The flag shows in the flags API.
    let flags = get(fixed.port, "/api/v1/status/flags").json();
    assert_eq!(flags["data"]["query.dynamic-lookback-delta"], "false");
}
