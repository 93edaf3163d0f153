//! `--query.max-samples` bounds what a query holds, checked before it is allocated: the
//! shapes from issue 12 (count_values over many steps, label_replace copies, subqueries with
//! tiny steps) fail with Prometheus' samples-limit error. Each case runs in a child process
//! with a 3 GiB address space (`ulimit -v`), so an allocation sized by the query's steps or
//! series would abort it, and the child reports its peak resident set (`VmHWM`), which catches
//! the smaller buffers that would fit. (3 GiB, not less: each evaluation reserves a 512 MiB
//! stack, see `promql::stack`, and two may overlap.)

use promql::{Engine, EngineOptions, MemoryQueryable, QueryError, Value};
use std::future::Future;
use std::process::Command;
use storage::labels::Labels;

/// Set in the child to the name of the test it runs.
const CHILD: &str = "STRATA_MEMORY_BOUNDS_CHILD";
/// The child's address space, KiB.
const ADDRESS_SPACE_KIB: usize = 3 << 20;

/// What a case reported from its child: one line per query, and its peak RSS in bytes.
struct Outcome {
    lines: Vec<String>,
    peak: usize,
}

fn vm_hwm_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs `case` in a child of this test binary under a small address space; in the child, runs
/// it, prints its lines and peak, and exits.
fn isolated<F, Fut>(name: &str, case: F) -> Outcome
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Vec<String>>,
{
    if std::env::var(CHILD).as_deref() == Ok(name) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let lines = rt.block_on(case());
        // libtest's "test name ... " has no line end yet.
        println!();
        for line in lines {
            println!("OUT {line}");
        }
        println!("HWM {}", vm_hwm_bytes());
        std::process::exit(0);
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child for {name} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("OUT ").map(str::to_owned))
        .collect();
    let peak = stdout
        .lines()
        .find_map(|l| l.strip_prefix("HWM ")?.parse().ok())
        .unwrap_or_else(|| panic!("no peak from the child of {name}: {stdout}"));
    Outcome { lines, peak }
}

const MB: usize = 1 << 20;
const DAY_MS: i64 = 86_400_000;
const SCRAPE_MS: i64 = 15_000;

/// `up` for 10 targets and `node_cpu_seconds_total` for 16 CPUs/modes, scraped every 15 s
/// for a day; CPU counters grow by a different amount per series, so nearly every value of
/// the counters is distinct (what makes count_values produce many series).
fn node_exporter_day() -> MemoryQueryable {
    let mut q = MemoryQueryable::new();
    let times = || (0..DAY_MS / SCRAPE_MS).map(|k| k * SCRAPE_MS);
    for i in 0..10 {
        let samples: Vec<(i64, f64)> = times().map(|t| (t, 1.0)).collect();
        q.append(
            Labels::from_pairs([
                ("__name__", "up".to_string()),
                ("instance", format!("host{i}:9100")),
            ]),
            &samples,
        );
    }
    for cpu in 0..16 {
        let samples: Vec<(i64, f64)> = times()
            .map(|t| (t, (t / SCRAPE_MS) as f64 * (1.0 + cpu as f64 / 7.0)))
            .collect();
        q.append(
            Labels::from_pairs([
                ("__name__", "node_cpu_seconds_total".to_string()),
                ("cpu", cpu.to_string()),
            ]),
            &samples,
        );
    }
    q
}

fn engine(max_samples: usize) -> Engine {
    Engine::new(EngineOptions {
        max_samples,
        ..EngineOptions::default()
    })
}

fn too_many() -> QueryError {
    QueryError::TooManySamples("query execution")
}

fn series_count(v: &Value) -> usize {
    match v {
        Value::Matrix(m) => m.len(),
        Value::Vector(v) => v.len(),
        _ => 0,
    }
}

/// A query's outcome as one line: the number of series, or the error.
fn line(r: Result<promql::QueryResult, QueryError>) -> String {
    match r {
        Ok(r) => format!("{} series", series_count(&r.value)),
        Err(e) => format!("error: {e}"),
    }
}

fn too_many_line() -> String {
    format!("error: {}", too_many())
}

/// The distinct values of `node_exporter_day`'s CPU counters from step 0 to `last`: the
/// series `count_values("v", node_cpu_seconds_total)` makes.
fn distinct_cpu_values(last: i64) -> usize {
    let mut seen = std::collections::HashSet::new();
    for k in 0..=last {
        for cpu in 0..16 {
            seen.insert((k as f64 * (1.0 + cpu as f64 / 7.0)).to_bits());
        }
    }
    seen.len()
}

#[test]
fn count_values_over_a_day_holds_only_the_points_present() {
    let out = isolated(
        "count_values_over_a_day_holds_only_the_points_present",
        || async {
            let q = node_exporter_day();
            let end = DAY_MS - SCRAPE_MS;
            let query = r#"count_values("v", node_cpu_seconds_total)"#;
            vec![
                // About 47,000 distinct values over 5,760 steps: a cell per step for each
                // would be 270 million; the points present are 16 per step, 92,160, on top
                // of the 92,160 input samples.
                line(
                    engine(1_000_000)
                        .range_query(&q, query, 0, end, SCRAPE_MS)
                        .await,
                ),
                // Under what the input and output points need together: refused.
                line(
                    engine(150_000)
                        .range_query(&q, query, 0, end, SCRAPE_MS)
                        .await,
                ),
            ]
        },
    );
    let last = (DAY_MS - SCRAPE_MS) / SCRAPE_MS;
    assert_eq!(
        out.lines,
        vec![
            format!("{} series", distinct_cpu_values(last)),
            too_many_line()
        ]
    );
    // The answer's label sets and points are some MiB; the process and the day of data some
    // more. Dense output (270 million cells of 16 bytes) would not fit the address space.
    assert!(out.peak < 96 * MB, "peak RSS {} bytes", out.peak);
}

#[test]
fn label_replace_counts_its_copy_on_top_of_its_input() {
    let out = isolated(
        "label_replace_counts_its_copy_on_top_of_its_input",
        || async {
            let q = node_exporter_day();
            // 10 series over 1441 steps hold 14,410 samples; relabelling them holds a second copy
            // while the input is alive, as in Prometheus' rangeEval.
            let (start, end) = (DAY_MS - 6 * 3_600_000, DAY_MS - SCRAPE_MS);
            let query = r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#;
            vec![
                line(
                    engine(20_000)
                        .range_query(&q, "up", start, end, SCRAPE_MS)
                        .await,
                ),
                line(
                    engine(20_000)
                        .range_query(&q, query, start, end, SCRAPE_MS)
                        .await,
                ),
                line(
                    engine(30_000)
                        .range_query(&q, query, start, end, SCRAPE_MS)
                        .await,
                ),
            ]
        },
    );
    assert_eq!(
        out.lines,
        vec!["10 series".to_string(), too_many_line(), "10 series".into()]
    );
}

#[test]
fn subqueries_with_a_millisecond_step_fail_without_allocating_their_steps() {
    let out = isolated(
        "subqueries_with_a_millisecond_step_fail_without_allocating_their_steps",
        || async {
            let q = node_exporter_day();
            let e = engine(50_000_000);
            vec![
                line(e.instant_query(&q, "rate(up[1y:1ms])", DAY_MS).await),
                line(
                    e.instant_query(&q, "max_over_time(up[1d:1ms])", DAY_MS)
                        .await,
                ),
            ]
        },
    );
    // Under the default limit of 50 million, no per-step buffer of 3e10 (or 8.6e7) steps was
    // made: that alone would not fit the child's address space.
    assert_eq!(out.lines, vec![too_many_line(), too_many_line()]);
    assert!(out.peak < 96 * MB, "peak RSS {} bytes", out.peak);
}

#[test]
fn a_wide_subquery_stops_at_the_series_that_would_pass_the_limit() {
    let out = isolated(
        "a_wide_subquery_stops_at_the_series_that_would_pass_the_limit",
        || async {
            let q = node_exporter_day();
            // 864,000 inner steps fit a limit of a million once, not for ten targets.
            let e = engine(1_000_000);
            vec![
                line(
                    e.instant_query(&q, "max_over_time(up[1d:100ms])", DAY_MS)
                        .await,
                ),
                line(
                    e.instant_query(&q, "max_over_time(up[1d:1m])", DAY_MS)
                        .await,
                ),
            ]
        },
    );
    assert_eq!(out.lines, vec![too_many_line(), "10 series".into()]);
    // One series of 864,000 16-byte cells (about 13 MiB) besides the data, not ten.
    assert!(out.peak < 96 * MB, "peak RSS {} bytes", out.peak);
}

#[tokio::test]
async fn subquery_ranges_past_the_time_range_are_an_error_not_an_overflow() {
    let q = node_exporter_day();
    let r = engine(50_000_000)
        .instant_query(
            &q,
            "max_over_time(up[290000000y:1d] offset 290000000y)",
            DAY_MS,
        )
        .await;
    assert!(r.is_err(), "{r:?}");
}
