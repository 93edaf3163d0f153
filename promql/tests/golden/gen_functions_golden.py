#!/usr/bin/env python3
"""Records Prometheus 2.42's answers for PromQL function math into functions_golden.tsv.

Generates pseudo-random series (counters with resets and jittered intervals, gauges with
huge, tiny, NaN and infinite values, classic histogram buckets, values for the math and date
functions), turns them into a block with promtool, serves it from the installed Prometheus
2.42, asks it instant queries, and writes one line per answer together with the exact input
the Rust function gets (the window's samples as promtool dumps them).

Usage: python3 gen_functions_golden.py [OUT]   (needs prometheus and promtool on PATH)

Line format (tab-separated): kind, name, args (space-separated), expected, data.
`expected` is a float (Python repr) or `none` when Prometheus returned no sample.
Range functions: a `window` row (name = window id, args = start and end ms relative to
BASE_MS, data = `ms:value,...`) is followed by `range` rows (args = window id and the
function's parameters); the evaluation time is the window's end.
"""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BASE_MS = 1_700_000_000_000
RNG = random.Random(20230131)


def fmt_value(v):
    if v != v:
        return "NaN"
    if v == float("inf"):
        return "+Inf"
    if v == float("-inf"):
        return "-Inf"
    return repr(float(v))


def fmt_ts(ms):
    return f"{ms // 1000}.{ms % 1000:03d}"


def counter(n):
    """A counter with jittered 15s scrapes, gaps and occasional resets."""
    t, v, out = BASE_MS, RNG.choice([0.0, 3.0, 1000.0, RNG.uniform(0, 50)]), []
    for _ in range(n):
        out.append((t, v))
        t += 15_000 + RNG.randint(-700, 700)
        if RNG.random() < 0.05:
            t += RNG.randint(30_000, 120_000)  # missed scrapes
        if RNG.random() < 0.04:
            v = RNG.choice([0.0, RNG.uniform(0, 5)])  # reset
        else:
            v += RNG.choice([0.0, 1.0, RNG.uniform(0, 100), RNG.expovariate(0.1)])
    return out


def gauge(n, kind):
    t, out = BASE_MS + RNG.randint(0, 9_999), []
    for _ in range(n):
        if kind == "normal":
            v = RNG.gauss(50, 30)
        elif kind == "large":
            v = RNG.choice([1.0, -1.0]) * 10 ** RNG.uniform(10, 300)
        elif kind == "offset":
            v = 1e9 + RNG.random()
        else:  # special
            v = RNG.choice([float("nan"), float("inf"), float("-inf"), 0.0, -0.0, RNG.gauss(0, 1)])
        out.append((t, v))
        t += 10_000 + RNG.randint(0, 3_000)
    return out


def histogram(n, nonmonotonic):
    les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    if RNG.random() < 0.3:
        les = ["-1", "-0.5"] + les
    counts = [0.0] * len(les)
    series = {le: [] for le in les}
    t = BASE_MS
    for _ in range(n):
        for _ in range(RNG.randint(0, 20)):
            obs = RNG.randint(0, len(les) - 1)
            for i in range(obs, len(les)):
                counts[i] += 1
        for i, le in enumerate(les):
            c = counts[i]
            if nonmonotonic and RNG.random() < 0.2:
                c = max(0.0, c - RNG.randint(1, 5))
            series[le].append((t, c))
        t += 15_000
    return series


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, data_dir, workdir):
        self.port = free_port()
        cfg = os.path.join(workdir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {scrape_interval: 1h}\n")
        self.log = open(os.path.join(workdir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={data_dir}", "--storage.tsdb.retention.time=100y"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("prometheus did not become ready")

    def query(self, expr, t_ms):
        body = urllib.parse.urlencode({"query": expr, "time": fmt_ts(t_ms)}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/query", body) as r:
            doc = json.load(r)
        if doc["status"] != "success":
            raise RuntimeError(f"{expr}: {doc}")
        return doc["data"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def go_float(s):
    return float({"+Inf": "inf", "-Inf": "-inf", "NaN": "nan"}.get(s, s))


def vector_by(data, label):
    return {r["metric"].get(label, ""): go_float(r["value"][1]) for r in data["result"]}


def dump(data_dir):
    os.makedirs(os.path.join(data_dir, "wal"), exist_ok=True)
    out = subprocess.run(["promtool", "tsdb", "dump", data_dir], check=True,
                         capture_output=True, text=True).stdout
    series = {}
    for line in out.splitlines():
        labels, value, ts = line.rsplit(" ", 2)
        series.setdefault(labels, []).append((int(ts), go_float(value)))
    return series


def labels_key(name, **labels):
    pairs = [f'__name__="{name}"'] + [f'{k}="{v}"' for k, v in sorted(labels.items())]
    return "{" + ", ".join(pairs) + "}"


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "functions_golden.tsv")
    work = tempfile.mkdtemp(prefix="golden-")
    try:
        run(work, out_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


MATH_VALUES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 0.1, 3.14159, 10.0, -10.0, 1e-300,
               1e300, 123456.789, float("inf"), float("-inf"), float("nan")]
DATE_VALUES = [0, -1, 1136239445, 1230767999, 1230768000, 1456790399, 1456790400, 1483191420,
               1672493820, 1454284800, 1485907200, -2206310400, 951782400, 4102444800, 86399.9,
               -86400.5, 253402300799, -62135596800, 1e12, 1e17, -1e17, 1e19, float("nan"),
               float("inf"), float("-inf"), -1e-3, 2**53 + 0.5]
UNARY = ["abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "deg", "rad",
         "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
         "atanh"]
DATES = ["day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute",
         "month", "year"]
REPLACE = [  # (template, regex, source value)
    ("$1", "(.*)", "abc"), ("$1x", "(a)(b)", "ab"), ("${1}x", "(a)(b)", "ab"), ("$$1", "(a)", "a"),
    ("a$", "(a)", "a"), ("${1", "(a)", "a"), ("$01", "(a)", "a"), ("$3", "(a)(b)", "ab"),
    ("$name-$2", "(?P<name>a)(b)", "ab"), ("${name}x", "(?P<name>a)(b)", "ab"), ("$0", "a(b)", "ab"),
    ("", ".*", "ab"), ("x$1", "(a)|(b)", "b"), ("$2", "(a)|(b)", "a"), ("<$1>", "[a-z]+", "ab"),
    ("$1", "(.*)", ""), ("$1", "(?i)(AB)", "ab"), ("$1.$2", "(\\w+)-(\\d+)", "host-42"),
]


def run(work, out_path):
    om = os.path.join(work, "input.om")
    lines = []

    def put(name, labels, points):
        lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for t, v in points:
            lines.append(f"{name}{{{lab}}} {fmt_value(v)} {fmt_ts(t)}")

    lines.append("# TYPE ctr counter")
    for i in range(8):
        put("ctr_total", {"id": str(i)}, counter(170))
    lines.append("# TYPE g gauge")
    kinds = ["normal"] * 3 + ["large"] * 3 + ["offset"] * 2 + ["special"] * 3
    for i, kind in enumerate(kinds):
        put("g", {"id": str(i), "kind": kind}, gauge(200, kind))
    lines.append("# TYPE h histogram")
    for i in range(8):
        for le, pts in histogram(100, nonmonotonic=i >= 5).items():
            put("h_bucket", {"id": str(i), "le": le}, pts)
    eval_math = BASE_MS + 3_000_000
    lines.append("# TYPE m gauge")
    for i, v in enumerate(MATH_VALUES):
        put("m", {"i": str(i)}, [(eval_math - 1000, v)])
    lines.append("# TYPE d gauge")
    for i, v in enumerate(DATE_VALUES):
        put("d", {"i": str(i)}, [(eval_math - 1000, float(v))])
    lines.append("# TYPE lr gauge")
    for i, (_, _, src) in enumerate(REPLACE):
        put("lr", {"i": str(i), "src": src}, [(eval_math - 1000, 1.0)])
    lines.append("# EOF")
    with open(om, "w") as f:
        f.write("\n".join(lines) + "\n")

    data = os.path.join(work, "data")
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data],
                   check=True, capture_output=True)
    samples = dump(data)
    prom = Prometheus(data, work)
    rows = []
    try:
        record_range_functions(prom, samples, rows)
        record_quantiles(prom, samples, rows)
        record_elementwise(prom, eval_math, rows)
    finally:
        prom.stop()
    with open(out_path, "w") as f:
        f.write("# Generated by gen_functions_golden.py from Prometheus 2.42; do not edit.\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    print(f"{len(rows)} rows -> {out_path}")


def window(points, start, end):
    return [(t, v) for t, v in points if start <= t <= end]


def fmt_points(points):
    """Samples as `ms:value`, times relative to BASE_MS to keep the file small."""
    return ",".join(f"{t - BASE_MS}:{repr(v)}" for t, v in points)


RANGE_FUNCS = ["rate", "increase", "delta", "irate", "idelta", "deriv", "resets", "changes",
               "avg_over_time", "sum_over_time", "count_over_time", "min_over_time",
               "max_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
               "present_over_time"]


def record_range_functions(prom, samples, rows):
    """One `window` row per (series, eval time, range), then one `range` row per function."""
    evals = [BASE_MS + 600_000, BASE_MS + 1_234_567, BASE_MS + 2_390_500]
    ranges = [("1m", 60_000), ("5m", 300_000), ("10m", 600_000)]
    exprs = [(f, f"{f}(SEL)", "") for f in RANGE_FUNCS]
    exprs += [("predict_linear", "predict_linear(SEL, 600)", "600"),
              ("holt_winters", "holt_winters(SEL, 0.3, 0.6)", "0.3 0.6"),
              ("holt_winters", "holt_winters(SEL, 0.9, 0.1)", "0.9 0.1"),
              ("quantile_over_time", "quantile_over_time(0.3, SEL)", "0.3"),
              ("quantile_over_time", "quantile_over_time(0.9, SEL)", "0.9")]
    wid = 0
    for metric in ["ctr_total", "g"]:
        ids = sorted({k for k in samples if k.startswith("{__name__=\"" + metric + "\"")})
        for t in evals:
            for rname, rms in ranges:
                answers = [(func, param, vector_by(
                    prom.query(tmpl.replace("SEL", f"{metric}[{rname}]"), t), "id"))
                    for func, tmpl, param in exprs]
                for key in ids:
                    sid = key.split('id="')[1].split('"')[0]
                    w = window(samples[key], t - rms, t)
                    if not w:
                        continue
                    wid += 1
                    rows.append(("window", str(wid), f"{t - rms - BASE_MS} {t - BASE_MS}", "",
                                 fmt_points(w)))
                    for func, param, got in answers:
                        exp = repr(got[sid]) if sid in got else "none"
                        rows.append(("range", func, f"{wid} {param}".strip(), exp, ""))


def instant(points, t):
    """The 5m-lookback instant sample at t (no stale markers in this data)."""
    w = window(points, t - 300_000, t)
    return w[-1][1] if w else None


def record_quantiles(prom, samples, rows):
    for t in [BASE_MS + 600_000, BASE_MS + 1_000_000, BASE_MS + 1_490_000]:
        for q in ["0", "0.1", "0.5", "0.9", "0.99", "1", "-0.5", "1.5", "NaN"]:
            got = vector_by(prom.query(f"histogram_quantile({q}, h_bucket)", t), "id")
            for i in range(8):
                buckets = []
                for key, pts in samples.items():
                    if key.startswith('{__name__="h_bucket"') and f'id="{i}"' in key:
                        le = key.split('le="')[1].split('"')[0]
                        v = instant(pts, t)
                        if v is not None:
                            buckets.append(f"{le}:{repr(v)}")
                exp = repr(got[str(i)]) if str(i) in got else "none"
                rows.append(("histogram_quantile", "histogram_quantile", q, exp, ",".join(buckets)))
            for sel in ["g", 'g{kind="normal"}', 'g{kind="special"}']:
                res = prom.query(f"quantile({q}, {sel})", t)["result"]
                exp = repr(go_float(res[0]["value"][1])) if res else "none"
                vals = []
                for key, pts in samples.items():
                    if key.startswith('{__name__="g"') and (sel == "g" or sel[2:-1] in key):
                        v = instant(pts, t)
                        if v is not None:
                            vals.append(repr(v))
                rows.append(("quantile", "quantile", q, exp, ",".join(vals)))


def record_elementwise(prom, t, rows):
    for f in UNARY:
        got = vector_by(prom.query(f"{f}(m)", t), "i")
        for i, v in enumerate(MATH_VALUES):
            rows.append(("unary", f, repr(v), repr(got[str(i)]), ""))
    for n in ["1", "0.1", "5", "0.25", "3", "-2"]:
        got = vector_by(prom.query(f"round(m, {n})", t), "i")
        for i, v in enumerate(MATH_VALUES):
            rows.append(("round", "round", f"{repr(v)} {n}", repr(got[str(i)]), ""))
    for lo, hi in [("-1", "1"), ("0", "NaN"), ("NaN", "0"), ("-Inf", "+Inf"), ("2", "2"), ("5", "-5")]:
        got = vector_by(prom.query(f"clamp(m, {lo}, {hi})", t), "i")
        for i, v in enumerate(MATH_VALUES):
            exp = repr(got[str(i)]) if str(i) in got else "none"
            rows.append(("clamp", "clamp", f"{repr(v)} {lo} {hi}", exp, ""))
    for f in ["clamp_min", "clamp_max"]:
        for b in ["0", "-1", "NaN", "+Inf", "-Inf"]:
            got = vector_by(prom.query(f"{f}(m, {b})", t), "i")
            for i, v in enumerate(MATH_VALUES):
                rows.append((f, f, f"{repr(v)} {b}", repr(got[str(i)]), ""))
    for f in DATES:
        got = vector_by(prom.query(f"{f}(d)", t), "i")
        for i, v in enumerate(DATE_VALUES):
            rows.append(("date", f, repr(float(v)), repr(got[str(i)]), ""))
    for i, (tmpl, regex, _) in enumerate(REPLACE):
        q = f'label_replace(lr{{i="{i}"}}, "dst", {json.dumps(tmpl)}, "src", {json.dumps(regex)})'
        res = prom.query(q, t)["result"]
        dst = res[0]["metric"].get("dst", "<absent>") if res else "<none>"
        rows.append(("label_replace", "label_replace", "", dst,
                     "\x1f".join([tmpl, regex, REPLACE[i][2]])))


if __name__ == "__main__":
    main()
