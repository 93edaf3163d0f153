#!/usr/bin/env python3
"""A/B of two Strata stacks against one Prometheus, interleaved per case (same window, same load).

bench/ab_suite.py PROM_PORT A_PORT B_PORT REPS [variants]  -> per case medians, ratios A/P, B/P, geomeans.
Each round asks P, A, B in a rotating order; answers' shapes must agree with Prometheus'.
"""
import math, statistics, sys
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from run_suite import QUERIES, ask, shape

pp, pa, pb, reps = (int(x) for x in sys.argv[1:5])
wanted = (sys.argv[5] if len(sys.argv) > 5 else "instant,1h,6h,24h").split(",")
END = int(__import__("os").environ.get("END", 1704067200 + 24 * 3600))
variants = [("instant", None)] if "instant" in wanted else []
variants += [(f"range {h}h", h) for h in (1, 6, 24) if f"{h}h" in wanted]
ra, rb, kinds = [], [], {}
bad = 0
print(f"{'query':<50} {'variant':<9} {'prom':>7} {'A':>7} {'B':>7} {'A/P':>5} {'B/P':>5} {'B/A':>5}")
for q in QUERIES:
    for name, h in variants:
        if h is None:
            path, form = "/api/v1/query", {"query": q, "time": END}
        else:
            path, form = "/api/v1/query_range", {"query": q, "start": END - h * 3600, "end": END, "step": 60}
        docs = {}
        for port in (pp, pa, pb):
            docs[port] = ask(port, path, form, 120)[1]
        ok = shape(docs[pp]) is not None and shape(docs[pp]) == shape(docs[pa]) == shape(docs[pb])
        bad += not ok
        same = docs[pa].get("data") == docs[pb].get("data")
        diff_ab = globals().get("diff_ab", 0) + (not same)
        globals()["diff_ab"] = diff_ab
        t = {pp: [], pa: [], pb: []}
        order = [pp, pa, pb]
        for i in range(reps):
            for port in order[i % 3:] + order[:i % 3]:
                t[port].append(ask(port, path, form, 120)[0])
        m = {p: statistics.median(v) * 1000 for p, v in t.items()}
        a, b = m[pa] / m[pp], m[pb] / m[pp]
        ra.append(a); rb.append(b)
        kinds.setdefault(name.split()[0], []).append((a, b))
        print(f"{q[:50]:<50} {name:<9} {m[pp]:7.1f} {m[pa]:7.1f} {m[pb]:7.1f} {a:5.2f} {b:5.2f} {b/a:5.2f}{'' if ok else '  DISAGREE'}{'' if same else '  A!=B'}", flush=True)
g = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))
print(f"\ngeomean over {len(ra)} cases: A/P {g(ra):.3f}  B/P {g(rb):.3f}  (B/A {g(rb)/g(ra):.3f})")
for k, v in sorted(kinds.items()):
    print(f"  {k}: A/P {g([x for x, _ in v]):.3f}  B/P {g([y for _, y in v]):.3f}")
print(f"worst: A {max(ra):.2f}  B {max(rb):.2f}; cases whose shapes disagree with Prometheus: {bad}; cases where A's and B's answers differ: {globals().get('diff_ab', 0)}")
