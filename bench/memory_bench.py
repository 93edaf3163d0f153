#!/usr/bin/env python3
"""RSS of Prometheus and `strata query` around heavy queries (issue 12, item 3).

Run against servers started by `bench/query_bench.sh gen serve` (same blocks for both):

    SERIES=2000 HOURS=24 bench/query_bench.sh gen serve
    python3 bench/memory_bench.py --end <data end, unix s> \
        --prometheus-port 19190 --prometheus-pid $(cat bench/.cache/run-2000x24h/prometheus.pid) \
        --strata-port 19902 --strata-pid $(cat bench/.cache/run-2000x24h/strata.pid)
    bench/query_bench.sh stop

For each query and server: RSS before it (after the previous one settled), the peak while it
ran (sampled every 20 ms from /proc/<pid>/status), RSS once it settled (stable for 3 s or
60 s passed), the HTTP status and the wall time.
"""

import argparse
import threading
import time
import urllib.error
import urllib.parse
import urllib.request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def settle(pid, stable_s=3.0, limit_s=60.0):
    """RSS once it stops falling: no drop of more than 1 MiB for `stable_s`."""
    start = time.monotonic()
    low, since = rss_kib(pid), time.monotonic()
    while time.monotonic() - start < limit_s:
        time.sleep(0.2)
        now = rss_kib(pid)
        if now < low - 1024:
            low, since = now, time.monotonic()
        elif time.monotonic() - since >= stable_s:
            break
    return rss_kib(pid)


def run(port, pid, path, params):
    peak = [rss_kib(pid)]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(pid))
            except (OSError, RuntimeError):
                return
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    body = urllib.parse.urlencode(params).encode()
    began = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", body, timeout=600) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except (urllib.error.URLError, ConnectionError) as e:
        status, text = "down", str(e).encode()
    took = time.monotonic() - began
    done.set()
    t.join()
    return status, took, peak[0], text[:160]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--end", type=int, required=True)
    ap.add_argument("--prometheus-port", type=int, default=19190)
    ap.add_argument("--prometheus-pid", type=int)
    ap.add_argument("--strata-port", type=int, default=19902)
    ap.add_argument("--strata-pid", type=int)
    ap.add_argument("--only", help="run only the cases whose name contains this")
    a = ap.parse_args()
    day, six = 86400, 6 * 3600
    cases = [
        ("count_values 24h/15s", "/api/v1/query_range",
         {"query": 'count_values("v", node_cpu_seconds_total)', "start": a.end - day,
          "end": a.end, "step": 15}),
        ("count_values 6h/15s", "/api/v1/query_range",
         {"query": 'count_values("v", node_cpu_seconds_total)', "start": a.end - six,
          "end": a.end, "step": 15}),
        ("rate(up[1y:1ms])", "/api/v1/query", {"query": "rate(up[1y:1ms])", "time": a.end}),
        ("max_over_time(up[1d:1ms])", "/api/v1/query",
         {"query": "max_over_time(up[1d:1ms])", "time": a.end}),
    ]
    servers = [(name, port, pid) for name, port, pid in
               [("prometheus", a.prometheus_port, a.prometheus_pid),
                ("strata", a.strata_port, a.strata_pid)] if pid]
    print(f"{'case':28} {'server':10} {'status':>6} {'time s':>7} "
          f"{'before MiB':>10} {'peak MiB':>9} {'after MiB':>9}")
    for name, path, params in cases:
        if a.only and a.only not in name:
            continue
        for server, port, pid in servers:
            before = settle(pid)
            status, took, peak, text = run(port, pid, path, params)
            after = settle(pid)
            print(f"{name:28} {server:10} {status!s:>6} {took:7.1f} {before / 1024:10.0f} "
                  f"{peak / 1024:9.0f} {after / 1024:9.0f}", flush=True)
            if status != 200:
                print(f"    {text!r}", flush=True)


if __name__ == "__main__":
    main()
