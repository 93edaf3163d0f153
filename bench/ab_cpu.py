#!/usr/bin/env python3
"""CPU per query of two Strata stacks (querier + store), interleaved: bench/ab_cpu.py ROUNDS VARIANTS
A: querier 19692 (pids /tmp/qb-qcpu/{strata,store}.pid), B: querier 19702 (/tmp/qb-qcpu-B)."""
import os, sys, urllib.request, urllib.parse
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from run_suite import QUERIES
rounds = int(sys.argv[1]); variants = sys.argv[2].split(",")
tck = os.sysconf("SC_CLK_TCK")
def pids(d): return [int(open(f"{d}/{n}.pid").read()) for n in ("strata", "store")]
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) * 1000.0 / tck
stacks = {"A": (19692, pids("/tmp/qb-qcpu")), "B": (19702, pids("/tmp/qb-qcpu-B"))}
END = 1704067200 + 24 * 3600
cases = []
for q in QUERIES:
    for v in variants:
        if v == "instant":
            cases.append(("/api/v1/query", {"query": q, "time": END}))
        else:
            h = int(v[:-1]); cases.append(("/api/v1/query_range", {"query": q, "start": END - h * 3600, "end": END, "step": 60}))
tot = {k: [0.0, 0.0] for k in stacks}; n = 0
for r in range(rounds):
    for i, (path, form) in enumerate(cases):
        data = urllib.parse.urlencode(form).encode()
        order = ["A", "B"] if (r + i) % 2 == 0 else ["B", "A"]
        for k in order:
            port, ps = stacks[k]
            c0 = [cpu(p) for p in ps]
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)).read()
            c1 = [cpu(p) for p in ps]
            tot[k][0] += c1[0] - c0[0]; tot[k][1] += c1[1] - c0[1]
        n += 1
for k, (q, s) in tot.items():
    print(f"{k}: querier {q / n:.2f} ms CPU/query, store {s / n:.2f} ms, both {(q + s) / n:.2f} ms ({n} queries each)")
a, b = sum(tot["A"]), sum(tot["B"])
print(f"B/A CPU: querier {tot['B'][0] / tot['A'][0]:.3f}, store {tot['B'][1] / tot['A'][1]:.3f}, both {b / a:.3f}")
