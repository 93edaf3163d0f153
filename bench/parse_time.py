#!/usr/bin/env python3
"""Wall time of `/api/v1/query` for long operator chains (issue 12, items 1-2).

The querier should serve an empty bucket, so the time is the parse plus the request:

    strata query --http-address=127.0.0.1:19393 --data-dir=/tmp/empty &
    python3 bench/parse_time.py --port 19393 --terms 1000 2501 5000 10000

Prints the median of --reps requests per chain shape and length, with status.
"""

import argparse
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request

SHAPES = {
    "1+1+...": lambda n: "+".join(["1"] * n),
    "up or up or ...": lambda n: " or ".join(["up"] * n),
}


def ask(port, query):
    body = urllib.parse.urlencode({"query": query, "time": 0}).encode()
    began = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query", body,
                                    timeout=120) as r:
            status = r.status
            r.read()
    except urllib.error.HTTPError as e:
        status = e.code
        e.read()
    return status, time.monotonic() - began


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--terms", type=int, nargs="+", required=True)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    for shape, make in SHAPES.items():
        for n in a.terms:
            q = make(n)
            runs = [ask(a.port, q) for _ in range(a.reps)]
            statuses = sorted({s for s, _ in runs})
            med = statistics.median(t for _, t in runs)
            print(f"{shape:18} {n:>6} terms  status {statuses}  median {med:.3f} s  "
                  f"max {max(t for _, t in runs):.3f} s", flush=True)


if __name__ == "__main__":
    main()
