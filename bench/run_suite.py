#!/usr/bin/env python3
"""Runs the dashboard query suite against Prometheus and Strata and prints median latencies.

Each query runs as an instant query at the end of the data and as range queries over the last
1 h, 6 h and 24 h (clipped to the data) at a 60 s step, like Grafana sends them (POST form).
Runs alternate between the servers; one warm-up run each is not counted. Prints per case the
median latency on both, the ratio Strata/Prometheus, whether the answers agree (same series
count), and the geometric mean of the ratios over the cases both answered.
"""

import argparse
import json
import math
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

QUERIES = [
    'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))',
    'avg by (mode) (rate(node_cpu_seconds_total[5m]))',
    '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    'topk(5, sum by (instance) (rate(node_network_receive_bytes_total[5m])))',
    'rate(node_network_transmit_bytes_total{device="eth0"}[5m])',
    'irate(node_network_receive_bytes_total[5m])',
    'node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes',
    '1 - node_filesystem_avail_bytes / node_filesystem_size_bytes',
    'sum by (mountpoint) (node_filesystem_avail_bytes)',
    'avg_over_time(node_load1[10m])',
    'max_over_time(node_load5[1h])',
    'bottomk(3, avg_over_time(node_memory_MemAvailable_bytes[30m]))',
    'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))',
    'histogram_quantile(0.9, sum by (le, handler) (rate(http_request_duration_seconds_bucket[5m])))',
    'sum(rate(http_request_duration_seconds_sum[5m])) / sum(rate(http_request_duration_seconds_count[5m]))',
    'sum by (device) (rate(node_disk_read_bytes_total[5m]))',
    'quantile(0.95, rate(node_disk_io_time_seconds_total[5m]))',
    'increase(node_context_switches_total[1h])',
    'sum by (instance) (rate(node_vmstat_pgfault[5m]))',
    'count by (release) (node_uname_info)',
    'node_load1 * on (instance) group_left (nodename) node_uname_info',
    'max_over_time(sum by (instance) (rate(node_cpu_seconds_total{mode="user"}[5m]))[1h:1m])',
    'stddev by (instance) (node_hwmon_temp_celsius)',
    'predict_linear(node_filesystem_avail_bytes{mountpoint="/"}[1h], 4 * 3600) < 0',
]


def ask(port, path, form, timeout):
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
    elapsed = time.perf_counter() - t0
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {"status": "error", "error": body[:200].decode(errors="replace")}
    return elapsed, doc


def shape(doc):
    """A cheap agreement check: series count and point count."""
    if doc.get("status") != "success":
        return None
    res = doc["data"]["result"]
    if doc["data"]["resultType"] in ("vector", "matrix"):
        return (len(res), sum(len(s.get("values", [1])) for s in res))
    return (1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus-port", type=int, required=True)
    ap.add_argument("--strata-port", type=int, required=True)
    ap.add_argument("--end", type=int, required=True, help="end of the data, unix seconds")
    ap.add_argument("--hours", type=int, required=True, help="length of the data")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--variants", default="instant,1h,6h,24h",
                    help="comma-separated subset of instant,1h,6h,24h (for quick looks)")
    a = ap.parse_args()

    wanted = set(a.variants.split(","))
    variants = [("instant", None)] if "instant" in wanted else []
    for h in (1, 6, 24):
        if f"{h}h" in wanted:
            variants.append((f"range {h}h", min(h, a.hours)))
    rows, ratios, cold, errors = [], [], [], 0
    by_kind, worst = {}, None
    print(f"{'query':<60} {'variant':<9} {'prom ms':>9} {'strata ms':>10} {'ratio':>7}  agree")
    for q in QUERIES:
        for name, hours in variants:
            if hours is None:
                path, form = "/api/v1/query", {"query": q, "time": a.end}
            else:
                path = "/api/v1/query_range"
                form = {"query": q, "start": a.end - hours * 3600, "end": a.end, "step": 60}
            # The first request of a case (untimed in the medians) finds caches cold for it.
            cp, pw = ask(a.prometheus_port, path, form, a.timeout)
            cs, sw = ask(a.strata_port, path, form, a.timeout)
            times = {"p": [], "s": []}
            for _ in range(a.reps):
                tp, _ = ask(a.prometheus_port, path, form, a.timeout)
                ts, sd = ask(a.strata_port, path, form, a.timeout)
                times["p"].append(tp)
                times["s"].append(ts)
            mp = statistics.median(times["p"]) * 1000
            ms = statistics.median(times["s"]) * 1000
            if pw.get("status") != "success":
                errors += 1
                agree = "PROMETHEUS ERR " + str(pw.get("error", ""))[:40]
                ratio_s = "-"
            elif sw.get("status") != "success":
                errors += 1
                agree = "ERR " + str(sw.get("error", ""))[:40]
                ratio_s = "-"
            else:
                ratio = ms / mp if mp > 0 else float("inf")
                ratios.append(ratio)
                cold.append(cs / cp if cp > 0 else float("inf"))
                by_kind.setdefault(name.split()[0], []).append(ratio)
                if worst is None or ratio > worst[0]:
                    worst = (ratio, q, name, mp, ms)
                ratio_s = f"{ratio:.2f}"
                agree = "yes" if shape(pw) == shape(sw) else f"NO {shape(sw)} vs {shape(pw)}"
            label = q if len(q) <= 60 else q[:57] + "..."
            print(f"{label:<60} {name:<9} {mp:>9.1f} {ms:>10.1f} {ratio_s:>7}  {agree}", flush=True)
            rows.append((q, name, mp, ms))
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"\ngeometric mean of Strata/Prometheus over {len(ratios)} cases: {geo:.3f}")
        for kind, rs in sorted(by_kind.items()):
            g = math.exp(sum(math.log(r) for r in rs) / len(rs))
            print(f"  {kind} cases: {len(rs)}, geometric mean {g:.3f}")
        cg = math.exp(sum(math.log(r) for r in cold) / len(cold))
        print(f"  first request of each case (cold caches): geometric mean {cg:.3f}, worst {max(cold):.2f}")
        r, q, name, mp, ms = worst
        print(f"worst case: {r:.2f} ({q}, {name}: {ms:.1f} ms vs {mp:.1f} ms)")
    if errors:
        print(f"{errors} cases failed (not in the geometric mean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
