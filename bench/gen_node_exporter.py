#!/usr/bin/env python3
"""Node-exporter-like benchmark data as promtool blocks.

Writes one OpenMetrics file per 2 h window (so promtool parses each sample once and disk use
stays bounded), turns it into a block with `promtool tsdb create-blocks-from openmetrics`, and
deletes the text. 100 series per instance: CPU, memory, network, disk, filesystem, load,
context switches, an info metric and a classic histogram; counters only go up.

Usage: gen_node_exporter.py --series 10000 --hours 24 --interval 15 --start 1704067200 OUT
"""

import argparse
import os
import random
import subprocess
import sys
import time

WINDOW = 7200  # promtool cuts 2 h-aligned blocks
CDF = [0.05, 0.1, 0.2, 0.35, 0.55, 0.75, 0.88, 0.95, 0.98, 0.995, 1.0]


def families(instances):
    """(name, kind, [label strings]) for every metric family; kind: counter|gauge|info|hist."""
    fams = []

    def add(name, kind, label_sets):
        sets = []
        for inst in instances:
            for ls in label_sets:
                extra = "".join(f',{k}="{v}"' for k, v in ls)
                sets.append(f'instance="{inst}",job="node"{extra}')
        fams.append((name, kind, sets))

    modes = ["idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"]
    add("node_cpu_seconds_total", "cpu", [[("cpu", c), ("mode", m)] for c in range(4) for m in modes])
    for g in ["MemAvailable", "MemTotal", "Cached", "Buffers"]:
        add(f"node_memory_{g}_bytes", "mem", [[]])
    for d in ["receive", "transmit"]:
        add(f"node_network_{d}_bytes_total", "counter_big", [[("device", x)] for x in ["eth0", "eth1"]])
    for d in ["read", "written"]:
        add(f"node_disk_{d}_bytes_total", "counter_big", [[("device", x)] for x in ["sda", "sdb"]])
    add("node_disk_io_time_seconds_total", "counter_small", [[("device", x)] for x in ["sda", "sdb"]])
    mounts = [[("mountpoint", m)] for m in ["/", "/var", "/home"]]
    add("node_filesystem_avail_bytes", "fs_avail", mounts)
    add("node_filesystem_size_bytes", "fs_size", mounts)
    for l in ["1", "5", "15"]:
        add(f"node_load{l}", "load", [[]])
    add("node_context_switches_total", "counter_mid", [[]])
    add("node_intr_total", "counter_mid", [[]])
    add("node_vmstat_pgfault", "counter_mid", [[]])
    add("node_vmstat_pgmajfault", "counter_small", [[]])
    add("node_procs_running", "small_gauge", [[]])
    add("node_netstat_Tcp_CurrEstab", "small_gauge", [[]])
    add("node_sockstat_TCP_inuse", "small_gauge", [[]])
    add("node_filefd_allocated", "small_gauge", [[]])
    add("node_entropy_available_bits", "small_gauge", [[]])
    add("node_hwmon_temp_celsius", "temp", [[("chip", "coretemp"), ("sensor", f"temp{i}")] for i in range(5)])
    add("node_network_up", "info", [[("device", x)] for x in ["eth0", "eth1"]])
    add("node_boot_time_seconds", "const", [[]])
    add("node_time_seconds", "time", [[]])
    fams.append(("node_uname_info", "info",
                 [f'instance="{inst}",job="node",nodename="{inst.split(":")[0]}",release="6.1.0-{i % 7}"'
                  for i, inst in enumerate(instances)]))
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]
    handlers = ["/api", "/metrics"]
    for part in ["bucket", "sum", "count"]:
        sets = []
        for inst in instances:
            for h in handlers:
                base = f'handler="{h}",instance="{inst}",job="node"'
                if part == "bucket":
                    sets.extend(f'{base},le="{b}"' for b in bounds)
                else:
                    sets.append(base)
        fams.append((f"http_request_duration_seconds_{part}", f"hist_{part}", sets))
    return fams


class State:
    """Per-series values carried across windows."""

    def __init__(self, fams, seed):
        self.rng = random.Random(seed)
        self.values = {}
        for name, kind, sets in fams:
            self.values[name] = [self.initial(kind, i) for i in range(len(sets))]

    def initial(self, kind, i):
        r = self.rng.random()
        return {
            "mem": 8e9 + r * 8e9, "fs_avail": 5e10 + r * 5e10, "fs_size": 1e11,
            "load": r * 4, "small_gauge": float(int(r * 200)), "temp": 40 + r * 20,
            "info": 1.0, "const": 1.7e9, "time": 0.0,
        }.get(kind, float(int(r * 1e6)))

    def step(self, name, kind, t, n):
        """Advances family `name` to time t; returns its values."""
        v = self.values[name]
        rnd = self.rng.random
        if kind == "cpu":
            for i in range(n):
                v[i] += (13.0 if i % 8 == 0 else 0.3) * rnd()
        elif kind == "counter_big":
            for i in range(n):
                v[i] += float(int(rnd() * 2e6))
        elif kind == "counter_mid":
            for i in range(n):
                v[i] += float(int(rnd() * 5e4))
        elif kind == "counter_small":
            for i in range(n):
                v[i] += round(rnd() * 3, 3)
        elif kind in ("mem", "fs_avail"):
            for i in range(n):
                v[i] = max(1e6, v[i] + float(int((rnd() - 0.5) * 5e7)))
        elif kind == "load":
            for i in range(n):
                v[i] = round(abs(v[i] + (rnd() - 0.5) * 0.4), 2)
        elif kind == "small_gauge":
            for i in range(n):
                v[i] = float(max(0, int(v[i] + (rnd() - 0.5) * 10)))
        elif kind == "temp":
            for i in range(n):
                v[i] = round(min(95.0, max(20.0, v[i] + (rnd() - 0.5))), 1)
        elif kind == "time":
            for i in range(n):
                v[i] = float(t)
        elif kind == "hist_bucket":
            # 11 cumulative buckets per (instance, handler); a monotone CDF keeps them ordered.
            for j in range(0, n, 11):
                reqs = int(rnd() * 50)
                shift = rnd() * 0.1
                for b, c in enumerate(CDF):
                    v[j + b] += float(int(reqs * min(1.0, c + shift if b < 10 else 1.0)))
        elif kind == "hist_count":
            buckets = self.values["http_request_duration_seconds_bucket"]
            for i in range(n):
                v[i] = buckets[i * 11 + 10]
        elif kind == "hist_sum":
            for i in range(n):
                v[i] += round(rnd() * 5, 3)
        return v


def fmt(v):
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def write_window(path, fams, state, start, end, interval):
    with open(path, "w", buffering=1 << 20) as f:
        # Families are written one after another, each time-major, as OpenMetrics requires;
        # histogram parts must advance together, so all values are computed per timestamp first.
        per_family = {name: [] for name, _, _ in fams}
        for t in range(start, end, interval):
            for name, kind, sets in fams:
                vals = state.step(name, kind, t, len(sets))
                per_family[name].append((t, list(vals)))
        for name, kind, sets in fams:
            f.write(f"# HELP {name} benchmark data\n# TYPE {name} gauge\n")
            out = []
            for t, vals in per_family[name]:
                ts = str(t)
                for ls, v in zip(sets, vals):
                    out.append(f"{name}{{{ls}}} {fmt(v)} {ts}\n")
                if len(out) > 200_000:
                    f.write("".join(out))
                    out.clear()
            f.write("".join(out))
            per_family[name] = None
        f.write("# EOF\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--interval", type=int, default=15)
    ap.add_argument("--start", type=int, default=1704067200)
    ap.add_argument("out")
    a = ap.parse_args()
    if a.start % WINDOW:
        sys.exit("--start must be 2 h aligned")
    n_inst = max(1, a.series // 100)
    instances = [f"host-{i:04d}:9100" for i in range(n_inst)]
    fams = families(instances)
    total = sum(len(s) for _, _, s in fams)
    print(f"{total} series on {n_inst} instances, {a.hours} h at {a.interval} s", flush=True)
    state = State(fams, seed=7)
    os.makedirs(a.out, exist_ok=True)
    end = a.start + a.hours * 3600
    for w in range(a.start, end, WINDOW):
        t0 = time.time()
        om = os.path.join(a.out, f"window-{w}.om")
        write_window(om, fams, state, w, min(w + WINDOW, end), a.interval)
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, a.out],
                       check=True, stdout=subprocess.DEVNULL)
        os.remove(om)
        print(f"window {w}: block made in {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
