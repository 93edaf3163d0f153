#!/usr/bin/env python3
"""Raft failover benchmark: a 3-node cluster of real `strata node` processes on loopback.

Measures, REPS times each on a fresh cluster:
  kill   SIGKILL of the leader -> both survivors agree on a new leader
  leave  `strata cluster leave` of the leader -> both remaining nodes agree on a new leader
         (and on a membership of 2 voters); includes starting the CLI process
  term   SIGTERM of the leader (a graceful leave, then exit) -> the same
and prints every try and the medians. Issue 4's goals: under 2 s (kill), under 1 s (leave).
KINDS (default "kill,leave,term") picks which to run.
Status is polled every 20 ms over HTTP (/api/v1/status/cluster), so figures carry up to ~20 ms
of polling granularity.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

BIN = os.environ["STRATA_BIN"]
REPS = int(os.environ.get("REPS", "10"))
BASE = int(os.environ.get("BASE_PORT", "23900"))
POLL = 0.02
EXTRA = os.environ.get("RAFT_FLAGS", "").split()
KINDS = os.environ.get("KINDS", "kill,leave,term").split(",")


def status(http):
    try:
        with urllib.request.urlopen(f"http://{http}/api/v1/status/cluster", timeout=1) as r:
            return json.load(r)["data"]
    except Exception:
        return None


def wait(pred, deadline, what):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        v = pred()
        if v is not None:
            return v
        time.sleep(POLL)
    raise RuntimeError(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, trial):
        self.dir = tempfile.mkdtemp(prefix="strata-failover-")
        self.secret = os.path.join(self.dir, "secret")
        with open(self.secret, "w") as f:
            f.write("benchmark-cluster-secret-0123456789\n")
        port = BASE + (trial % 20) * 10
        self.nodes = [(f"127.0.0.1:{port + 2 * i}", f"127.0.0.1:{port + 2 * i + 1}") for i in range(3)]
        peers = sum((["--cluster.peers", g] for g, _ in self.nodes), [])
        self.procs = []
        for i, (g, h) in enumerate(self.nodes):
            log = open(os.path.join(self.dir, f"node{i}.log"), "w")
            self.procs.append(subprocess.Popen(
                [BIN, "node", "--data-dir", os.path.join(self.dir, f"data{i}"), "--grpc-address", g,
                 "--http-address", h, "--cluster.secret-file", self.secret, "--role", "store", *peers, *EXTRA],
                stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "info,openraft=warn"}))

    def agreed(self, idx, members):
        views = [status(self.nodes[i][1]) for i in idx]
        if any(v is None for v in views):
            return None
        leaders = {v["leader_id"] for v in views}
        if len(leaders) == 1 and None not in leaders and all(
                len([m for m in v["members"] if m["raft_role"] == "voter"]) == members for v in views):
            # Settled only once every node applied the log as it stood: a membership change in
            # its joint phase would leave the survivors of a leader loss without a quorum.
            last = max(v["last_log_index"] or 0 for v in views)
            again = [status(self.nodes[i][1]) for i in idx]
            if all(a is not None and (a["applied_index"] or 0) >= last and not a["membership_joint"]
                   for a in again):
                return leaders.pop()
        return None

    def leader_index(self, leader):
        for i, (_, h) in enumerate(self.nodes):
            s = status(h)
            if s and s["node_id"] == leader:
                return i
        raise RuntimeError("leader not found")

    def close(self, keep=False):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if keep:
            print(f"logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def trial(kind, n):
    c = Cluster(n)
    try:
        old = wait(lambda: c.agreed([0, 1, 2], 3), 60, "a 3-voter cluster")
        li = c.leader_index(old)
        rest = [i for i in range(3) if i != li]
        t0 = time.monotonic()
        if kind == "kill":
            c.procs[li].send_signal(signal.SIGKILL)
            want = 3  # the killed node stays a voter
        elif kind == "term":
            c.procs[li].send_signal(signal.SIGTERM)
            want = 2
        else:
            subprocess.run([BIN, "cluster", "leave", "--grpc-address", c.nodes[li][0],
                            "--cluster.secret-file", c.secret], check=True, capture_output=True)
            want = 2

        def new_leader():
            l = c.agreed(rest, want)
            return l if l is not None and l != old else None

        wait(new_leader, 30, "a new leader")
        d = time.monotonic() - t0
    except BaseException:
        c.close(keep=True)
        raise
    c.close()
    return d


def main():
    results = {}
    for kind in KINDS:
        xs = []
        for n in range(REPS):
            d = trial(kind, n)
            xs.append(d)
            print(f"{kind:5} try {n + 1:2}: {d * 1000:7.0f} ms", flush=True)
        results[kind] = xs
    print()
    goals = {"kill": 2.0, "leave": 1.0, "term": 1.0}
    for kind, xs in results.items():
        med = statistics.median(xs)
        print(f"{kind:5} median {med * 1000:6.0f} ms  min {min(xs) * 1000:6.0f}  max {max(xs) * 1000:6.0f}"
              f"  ({len(xs)} tries; goal < {goals[kind]:.0f} s: {'met' if med < goals[kind] else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(main())
