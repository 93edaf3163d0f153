//! Differential test of `promql::functions` against answers recorded from Prometheus 2.42
//! (`tests/golden/gen_functions_golden.py` wrote `functions_golden.tsv` from real series served
//! by the installed Prometheus). Every answer must agree within Prometheus' own test tolerance
//! (relative 1e-6, NaN equals NaN); most agree bit for bit.

use promql::functions::{histogram, labels, math, range, time};
use std::collections::HashMap;
use storage::labels::Labels;

const GOLDEN: &str = include_str!("golden/functions_golden.tsv");

type Window = (i64, i64, Vec<(i64, f64)>);

fn num(s: &str) -> f64 {
    let s = s.trim();
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("bad number {s:?} in the golden file: {e}")),
    }
}

fn expected(s: &str) -> Option<f64> {
    (s != "none").then(|| num(s))
}

fn points(data: &str) -> Vec<(i64, f64)> {
    data.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (t, v) = p
                .split_once(':')
                .unwrap_or_else(|| panic!("bad point {p:?}"));
            (
                t.parse().unwrap_or_else(|e| panic!("bad time {t:?}: {e}")),
                num(v),
            )
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    exact: usize,
    close: usize,
    close_kinds: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: &str, got: Option<f64>, want: Option<f64>) {
        match (got, want) {
            (None, None) => self.exact += 1,
            (Some(g), Some(w)) if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) => {
                self.exact += 1
            }
            // -0 and +0 print the same in Prometheus' JSON.
            (Some(g), Some(w)) if g == w => self.exact += 1,
            (Some(g), Some(w)) if (g - w).abs() / (g.abs() + w.abs()) < 1e-6 => {
                self.close += 1;
                self.close_kinds
                    .push(what.split(' ').take(4).collect::<Vec<_>>().join(" "));
            }
            _ => self.failures.push(format!(
                "{what}: got {got:?}, Prometheus 2.42 says {want:?}"
            )),
        }
    }
}

fn run_range(func: &str, args: &[&str], w: &Window) -> Option<f64> {
    let (start, end, p) = (w.0, w.1, &w.2);
    let param = |i: usize| args.get(i).map_or(f64::NAN, |s| num(s));
    match func {
        "rate" => range::extrapolated_rate(p, start, end, true, true),
        "increase" => range::extrapolated_rate(p, start, end, true, false),
        "delta" => range::extrapolated_rate(p, start, end, false, false),
        "irate" => range::instant_delta(p, true),
        "idelta" => range::instant_delta(p, false),
        "deriv" => range::deriv(p),
        "resets" => Some(range::resets(p)),
        "changes" => Some(range::changes(p)),
        "avg_over_time" => range::avg_over_time(p),
        "sum_over_time" => range::sum_over_time(p),
        "count_over_time" => range::count_over_time(p),
        "min_over_time" => range::min_over_time(p),
        "max_over_time" => range::max_over_time(p),
        "stddev_over_time" => range::stddev_over_time(p),
        "stdvar_over_time" => range::stdvar_over_time(p),
        "last_over_time" => range::last_over_time(p),
        "present_over_time" => range::present_over_time(p),
        "predict_linear" => range::predict_linear(p, end, param(0)),
        "holt_winters" => range::holt_winters(p, param(0), param(1))
            .unwrap_or_else(|e| panic!("holt_winters: {e}")),
        "quantile_over_time" => range::quantile_over_time(param(0), p),
        other => panic!("unknown range function {other}"),
    }
}

fn run_elementwise(kind: &str, name: &str, args: &[&str]) -> Option<f64> {
    let a = |i: usize| args.get(i).map_or(f64::NAN, |s| num(s));
    match kind {
        "unary" => math::unary(name).map(|f| f(a(0))),
        "round" => Some(math::round(a(0), a(1))),
        "clamp" => math::clamp(a(0), a(1), a(2)),
        "clamp_min" => Some(math::clamp_min(a(0), a(1))),
        "clamp_max" => Some(math::clamp_max(a(0), a(1))),
        "date" => time::date_part(name, a(0)),
        other => panic!("unknown kind {other}"),
    }
}

fn run_label_replace(expected_dst: &str, data: &str) -> Result<(), String> {
    let parts: Vec<&str> = data.split('\u{1f}').collect();
    let [template, regex, src] = parts[..] else {
        return Err(format!("bad label_replace row {data:?}"));
    };
    let input = if src.is_empty() {
        Labels::from_pairs([("i", "x")])
    } else {
        Labels::from_pairs([("i", "x"), ("src", src)])
    };
    let out = labels::label_replace(&input, "dst", template, "src", regex)?;
    let got = out.get("dst").unwrap_or("<absent>");
    if got == expected_dst {
        Ok(())
    } else {
        Err(format!(
            "label_replace template {template:?} regex {regex:?} on {src:?}: got {got:?}, \
             Prometheus 2.42 says {expected_dst:?}"
        ))
    }
}

#[test]
fn functions_agree_with_prometheus_2_42() {
    let mut windows: HashMap<&str, Window> = HashMap::new();
    let mut tally = Tally::default();
    let mut per_kind: HashMap<String, usize> = HashMap::new();
    for (n, line) in GOLDEN.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [kind, name, args, want, data] = cols[..] else {
            panic!("line {}: expected 5 columns: {line:?}", n + 1);
        };
        let args: Vec<&str> = args.split(' ').filter(|s| !s.is_empty()).collect();
        let what = format!("line {} {kind} {name} {args:?}", n + 1);
        *per_kind.entry(kind.to_string()).or_default() += 1;
        match kind {
            "window" => {
                let start: i64 = args[0].parse().unwrap_or_else(|e| panic!("{what}: {e}"));
                let end: i64 = args[1].parse().unwrap_or_else(|e| panic!("{what}: {e}"));
                windows.insert(name, (start, end, points(data)));
            }
            "range" => {
                let w = windows
                    .get(args[0])
                    .unwrap_or_else(|| panic!("{what}: unknown window"));
                tally.check(&what, run_range(name, &args[1..], w), expected(want));
            }
            "histogram_quantile" => {
                let mut buckets: Vec<(f64, f64)> = data
                    .split(',')
                    .filter_map(|b| b.split_once(':'))
                    .map(|(le, c)| (num(le), num(c)))
                    .collect();
                let got = histogram::bucket_quantile(num(args[0]), &mut buckets);
                tally.check(&what, Some(got), expected(want));
            }
            "quantile" => {
                let mut values: Vec<f64> =
                    data.split(',').filter(|v| !v.is_empty()).map(num).collect();
                let got = histogram::quantile(num(args[0]), &mut values);
                tally.check(&what, Some(got), expected(want));
            }
            "label_replace" => {
                if let Err(e) = run_label_replace(want, data) {
                    tally.failures.push(format!("{what}: {e}"));
                } else {
                    tally.exact += 1;
                }
            }
            _ => tally.check(&what, run_elementwise(kind, name, &args), expected(want)),
        }
    }
    let mut kinds: Vec<_> = per_kind.into_iter().collect();
    kinds.sort();
    println!("rows per kind: {kinds:?}");
    println!(
        "{} bit-exact, {} within 1e-6, {} wrong",
        tally.exact,
        tally.close,
        tally.failures.len()
    );
    println!("not bit-exact: {:?}", tally.close_kinds);
    assert!(tally.exact > 4000, "the golden file looks truncated");
    assert!(
        tally.failures.is_empty(),
        "{} disagreements:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}
