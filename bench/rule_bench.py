#!/usr/bin/env python3
"""Helpers of bench/rule_bench.sh.

  watch URL ITERATIONS TIMEOUT   scrapes URL/metrics every 0.5 s and records each group's
                                 prometheus_rule_group_last_duration_seconds whenever its
                                 last_evaluation_timestamp moves, until every group has
                                 ITERATIONS+1 iterations (the first, cold one reported apart)
  count URL                      number of bench:* series (and samples' sum) the server answers
                                 at now, through its /api/v1/query
  failover BIN DIR RUNS ...      three-node rule cluster, SIGKILL of a group's owner, RUNS times
"""

import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

LINE = re.compile(r'^(\w+)\{(.*)\} (\S+)')


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def group_gauges(text, name):
    """{rule_group: value} of metric `name` in a /metrics text."""
    out = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(1) != name:
            continue
        g = re.search(r'rule_group="([^"]*)"', m.group(2))
        if g:
            out[g.group(1)] = float(m.group(3))
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def watch(url, iterations, timeout):
    seen = {}  # group -> [(eval_ts, duration)]
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            text = get(url + "/metrics")
        except OSError as e:
            print(f"scrape failed: {e}", file=sys.stderr)
            time.sleep(1)
            continue
        last = group_gauges(text, "prometheus_rule_group_last_evaluation_timestamp_seconds")
        dur = group_gauges(text, "prometheus_rule_group_last_duration_seconds")
        for g, ts in last.items():
            if ts <= 0 or g not in dur:
                continue
            its = seen.setdefault(g, [])
            if not its or its[-1][0] != ts:
                its.append((ts, dur[g]))
        if seen and all(len(v) > iterations for v in seen.values()):
            break
        time.sleep(0.5)
    else:
        print(f"timeout after {timeout} s: {[(g, len(v)) for g, v in seen.items()]}", file=sys.stderr)
    first = [v[0][1] for v in seen.values() if v]
    steady = [d for v in seen.values() for _, d in v[1:]]
    res = {"groups": len(seen), "iterations": len(steady)}
    if first:
        res["first_median_s"] = statistics.median(first)
        res["first_max_s"] = max(first)
    if steady:
        res.update(median_s=statistics.median(steady), p90_s=pct(steady, 0.9), max_s=max(steady))
    print(json.dumps(res))


def count(url):
    q = urllib.parse.urlencode({"query": 'count({__name__=~"bench:.*"})'})
    r = json.loads(get(f"{url}/api/v1/query?{q}", timeout=120))
    res = r["data"]["result"]
    print(res[0]["value"][1] if res else "0")


# ---- failover -------------------------------------------------------------------------------

FAILOVER_RULES = "groups:\n" + "".join(
    f"- name: g{i}\n  rules:\n  - record: up_{i}\n    expr: vector({i})\n" for i in range(3))


def owners(http):
    """{group name: owner node id} from `/api/v1/status/cluster`-like status of one node."""
    s = json.loads(get(f"http://{http}/api/v1/status/cluster", timeout=3))
    jobs = s.get("data", s).get("jobs", [])
    out = {}
    for j in jobs:
        if j.get("kind") == "rule-group" and j.get("state") == "assigned":
            out[j["spec"].rsplit(";", 1)[1]] = j["owner"]
    return out


def node_ids(http):
    s = json.loads(get(f"http://{http}/api/v1/status/cluster", timeout=3))
    return s.get("data", s).get("node_id")


def group_value(http, name, group):
    g = group_gauges(get(f"http://{http}/metrics", timeout=3), name)
    return next((v for k, v in g.items() if k.endswith(";" + group)), 0.0)


def iterations(http, group):
    return group_value(http, "prometheus_rule_group_iterations_total", group)


def wait(what, f, timeout=120, every=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = f()
            if v is not None:
                return v
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(every)
    raise SystemExit(f"timeout waiting for {what}")


def secs(d):
    """Seconds of a duration like 30s, 1m or 500ms."""
    for suffix, mul in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if d.endswith(suffix):
            return float(d[: -len(suffix)]) * mul
    raise SystemExit(f"bad duration {d}")


def failover(bin_, base, runs, interval, lease, port0):
    results = []
    for run in range(runs):
        d = os.path.join(base, f"run{run}")
        subprocess.run(["rm", "-rf", d], check=True)
        os.makedirs(d)
        rules = os.path.join(d, "rules.yml")
        with open(rules, "w") as f:
            f.write(FAILOVER_RULES)
        grpc = [f"127.0.0.1:{port0 + 10 * i}" for i in range(3)]
        http = [f"127.0.0.1:{port0 + 10 * i + 1}" for i in range(3)]
        peers = [a for g in grpc for a in ("--cluster.peers", g)]
        procs = []
        try:
            for i in range(3):
                os.makedirs(f"{d}/node{i}/bucket")
                log = open(f"{d}/node{i}.log", "w")
                procs.append(subprocess.Popen(
                    [bin_, "node", "--role=rule", f"--data-dir={d}/node{i}", "--cluster.insecure",
                     *peers, f"--grpc-address={grpc[i]}", f"--http-address={http[i]}",
                     f"--rule-file={rules}", f"--eval-interval={interval}",
                     f"--rule.lease-duration={lease}"], stdout=log, stderr=log))
            ids = [wait("node ids", lambda i=i: node_ids(http[i])) for i in range(3)]
            own = wait("three groups assigned", lambda: (lambda o: o if len(o) == 3 else None)(owners(http[0])))
            victim_id = own["g0"]
            victim = ids.index(victim_id)
            wait("g0 evaluated by its owner", lambda: iterations(http[victim], "g0") > 0 or None, 300)
            # Kill at a random phase of the interval, as a crash would.
            time.sleep(random.uniform(0, secs(interval)))
            survivors = [i for i in range(3) if i != victim]
            before = {i: iterations(http[i], "g0") for i in survivors}
            last_old = group_value(http[victim], "prometheus_rule_group_last_evaluation_timestamp_seconds", "g0")
            procs[victim].send_signal(signal.SIGKILL)
            killed = time.time()
            new_owner = wait("g0 re-assigned", lambda: next(
                (o for i in survivors for o in [owners(http[i]).get("g0")] if o not in (None, victim_id)),
                None), 300)
            assigned = time.time() - killed
            n = ids.index(new_owner)
            wait("g0 evaluated by the new owner", lambda: iterations(http[n], "g0") > before[n] or None, 300, 0.05)
            first_eval = time.time() - killed
            first_new = group_value(http[n], "prometheus_rule_group_last_evaluation_timestamp_seconds", "g0")
            # Evaluations stay on the group's aligned ticks: the gap counts the missed ones.
            missed = round((first_new - last_old) / secs(interval)) - 1
            r = {"run": run, "assigned_s": round(assigned, 2), "first_eval_s": round(first_eval, 2),
                 "missed": missed}
            print(json.dumps(r), flush=True)
            results.append(r)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    for k in ("assigned_s", "first_eval_s", "missed"):
        xs = [r[k] for r in results]
        print(f"{k}: median {statistics.median(xs):.2f} max {max(xs):.2f} over {len(xs)} runs")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "watch":
        watch(args[0], int(args[1]), float(args[2]))
    elif cmd == "count":
        count(args[0])
    elif cmd == "failover":
        failover(args[0], args[1], int(args[2]), args[3], args[4], int(args[5]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
