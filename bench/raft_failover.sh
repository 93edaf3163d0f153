#!/usr/bin/env bash
# Raft failover benchmark (issue 4, "Measure"): a 3-node cluster of real `strata node`
# processes on loopback; leader SIGKILL -> new leader, `strata cluster leave` of the leader ->
# new leader, and SIGTERM of the leader (graceful leave) -> new leader, REPS tries each on a
# fresh cluster, medians printed.
#
#   bench/raft_failover.sh              release build, then 10 tries of each
#   REPS=3 BUILD=debug bench/raft_failover.sh
#
# Knobs: REPS=10, KINDS=kill,leave,term, BUILD=release|debug, BASE_PORT=23900 (uses BASE_PORT..BASE_PORT+199),
# STRATA_BIN (skip the build and use this binary), RAFT_FLAGS (extra node flags, e.g.
# "--raft.heartbeat-interval 100ms --raft.election-timeout-min 400ms --raft.election-timeout-max 800ms").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BUILD="${BUILD:-release}"
if [[ -z "${STRATA_BIN:-}" ]]; then
    if [[ "$BUILD" == release ]]; then
        (cd "$ROOT" && cargo build --release -p node --bin strata)
    else
        (cd "$ROOT" && cargo build -p node --bin strata)
    fi
    STRATA_BIN="$TARGET/$BUILD/strata"
fi
echo "strata: $STRATA_BIN; $(nproc) cores; REPS=${REPS:-10}" >&2
STRATA_BIN="$STRATA_BIN" exec python3 "$ROOT/bench/raft_failover.py"
