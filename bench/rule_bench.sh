#!/usr/bin/env bash
# Ruler benchmark: 1,000 recording rules (bench/rule_bench_rules.py: 10 groups of 100) over the
# query suite's node-exporter-like data (SERIES series x HOURS h), evaluated by Prometheus 2.42,
# by `strata rule` with its embedded engine over the bucket, and by `strata rule --query` at a
# `strata query` over the same bucket; then the failover time of a rule group after SIGKILL of
# its owner in a three-node `strata node --role rule` cluster.
#
#   bench/rule_bench.sh [STAGE...]   stages: gen prometheus embedded querier failover
#                                    (default: all of them, in that order)
#
# gen         the data as promtool blocks, generated to END near now (rules evaluate at now, so
#             the query suite's fixed 2024 data would answer nothing): START is 2 h aligned,
#             HOURS-4 h before now, so the data runs 2-4 h into the future; cached in $BLOCKS
#             and regenerated when it no longer covers now + 1 h
# prometheus  Prometheus with hard links of the blocks in its data dir and the rule file
# embedded    `strata rule` over a FILESYSTEM bucket of hard links of the blocks
# querier     `strata query` over that bucket and `strata rule --query` at it
#   each: time per group iteration from prometheus_rule_group_last_duration_seconds (ITERATIONS
#   iterations per group after the first, cold one, which is reported apart), and the number of
#   bench:* series the server answers afterwards (all three must produce the same count)
# failover    RUNS runs of: three rule nodes (3 groups), SIGKILL of group g0's owner at a random
#             phase, time until another node holds it and until its first evaluation there
#
# Knobs: SERIES=10000 HOURS=24 INTERVAL=30s ITERATIONS=4 RUNS=5 FAILOVER_INTERVAL=30s
# LEASE=15s (the default --rule.lease-duration) DIR=/tmp/rule-bench BLOCKS=$DIR/blocks-...
# STRATA_BIN=target/release/strata PORT=19300 (ports PORT..PORT+30)
# SUITE_BLOCKS=DIR: instead of generating, copy the query suite's cached blocks (e.g.
# bench/.cache/blocks-10000x24h) moved by whole 2 h windows to end 2-4 h after now, with
# SHIFT_BIN (`cargo build --release -p storage --example shift_blocks`); HOURS must match them
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERIES="${SERIES:-10000}"
HOURS="${HOURS:-24}"
INTERVAL="${INTERVAL:-30s}"
ITERATIONS="${ITERATIONS:-4}"
RUNS="${RUNS:-5}"
FAILOVER_INTERVAL="${FAILOVER_INTERVAL:-30s}"
LEASE="${LEASE:-15s}"
DIR="${DIR:-/tmp/rule-bench}"
BLOCKS="${BLOCKS:-$DIR/blocks-${SERIES}x${HOURS}h-now}"
STRATA_BIN="${STRATA_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/strata}"
PORT="${PORT:-19300}"
SUITE_BLOCKS="${SUITE_BLOCKS:-}"
SHIFT_BIN="${SHIFT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/shift_blocks}"
TIMEOUT=1800
PIDS=()

log() { echo "[rule_bench] $*" >&2; }

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT

stage_gen() {
    local now end
    now=$(date +%s)
    if [[ -f "$BLOCKS/.complete" ]]; then
        end=$(cat "$BLOCKS/.end")
        if ((end > now + 3600)); then
            log "blocks cached in $BLOCKS (data ends $(((end - now) / 60)) min from now)"
            return
        fi
        log "cached blocks end too early; regenerating"
    fi
    rm -rf "$BLOCKS"
    mkdir -p "$BLOCKS"
    local start=$((now / 7200 * 7200 - (HOURS - 4) * 3600))
    if [[ -n "$SUITE_BLOCKS" ]]; then
        # The query suite's cached day moved to end near now: minutes instead of hours of
        # generating, and the same series and values the query suite reads.
        local suite_start
        suite_start=$(python3 -c 'import json,glob,sys; print(min(json.load(open(m))["minTime"] for m in glob.glob(sys.argv[1] + "/*/meta.json")) // 1000)' "$SUITE_BLOCKS")
        log "shifting the suite's blocks in $SUITE_BLOCKS by $((start - suite_start)) s into $BLOCKS"
        "$SHIFT_BIN" "$SUITE_BLOCKS" "$BLOCKS" $((start - suite_start))
    else
        log "generating $SERIES series over $HOURS h from $start into $BLOCKS"
        python3 "$ROOT/bench/gen_node_exporter.py" --series "$SERIES" --hours "$HOURS" \
            --start "$start" "$BLOCKS"
    fi
    echo $((start + HOURS * 3600)) >"$BLOCKS/.end"
    touch "$BLOCKS/.complete"
}

rules() {
    mkdir -p "$DIR"
    python3 "$ROOT/bench/rule_bench_rules.py" --interval "$INTERVAL" >"$DIR/rules.yml"
}

# A fresh directory of hard links to the blocks (the servers write beside them, never in them).
linked() {
    rm -rf "$1"
    mkdir -p "$1"
    for b in "$BLOCKS"/*/; do cp -al "${b%/}" "$1/"; done
}

wait_ready() { # name url pid logfile
    local deadline=$((SECONDS + 600))
    until curl -sf "$2/-/ready" >/dev/null; do
        kill -0 "$3" 2>/dev/null || { log "$1 exited"; tail -20 "$4" >&2; exit 1; }
        ((SECONDS < deadline)) || { log "$1 not ready after 600 s"; exit 1; }
        sleep 0.2
    done
}

measure() { # name url
    log "$1: waiting for $ITERATIONS iterations of every group after the first (interval $INTERVAL)"
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    local res
    res=$(python3 "$ROOT/bench/rule_bench.py" watch "$2" "$ITERATIONS" "$TIMEOUT")
    local series
    series=$(python3 "$ROOT/bench/rule_bench.py" count "$2")
    echo "$1: $res bench_series=$series load_before=\"$load_before\" load_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" |
        tee -a "$DIR/results.txt"
}

stage_prometheus() {
    rules
    local run="$DIR/prometheus"
    linked "$run/data"
    cat >"$run/prometheus.yml" <<YAML
global: {scrape_interval: 1m, evaluation_interval: $INTERVAL}
rule_files: ["$DIR/rules.yml"]
storage: {tsdb: {out_of_order_time_window: 1d}}
scrape_configs: []
YAML
    prometheus --config.file="$run/prometheus.yml" --web.listen-address="127.0.0.1:$PORT" \
        --storage.tsdb.path="$run/data" --storage.tsdb.retention.time=100y \
        --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h \
        >"$run/prometheus.log" 2>&1 &
    PIDS+=($!)
    wait_ready prometheus "http://127.0.0.1:$PORT" "$!" "$run/prometheus.log"
    measure "prometheus-2.42" "http://127.0.0.1:$PORT"
    cleanup
}

bucket_config() { printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$1"; }

stage_embedded() {
    rules
    local run="$DIR/embedded"
    linked "$run/bucket"
    "$STRATA_BIN" rule --rule-file "$DIR/rules.yml" --eval-interval "$INTERVAL" \
        --objstore.config "$(bucket_config "$run/bucket")" --data-dir "$run/rule" \
        --http-address "127.0.0.1:$((PORT + 1))" --grpc-address "127.0.0.1:$((PORT + 2))" \
        >"$run/rule.log" 2>&1 &
    PIDS+=($!)
    wait_ready "strata rule" "http://127.0.0.1:$((PORT + 1))" "$!" "$run/rule.log"
    measure "strata-rule-embedded" "http://127.0.0.1:$((PORT + 1))"
    cleanup
}

stage_querier() {
    rules
    local run="$DIR/querier"
    linked "$run/query/bucket"
    "$STRATA_BIN" query --data-dir "$run/query" --http-address "127.0.0.1:$((PORT + 3))" \
        --grpc-address "127.0.0.1:$((PORT + 4))" >"$run/query.log" 2>&1 &
    PIDS+=($!)
    wait_ready "strata query" "http://127.0.0.1:$((PORT + 3))" "$!" "$run/query.log"
    "$STRATA_BIN" rule --rule-file "$DIR/rules.yml" --eval-interval "$INTERVAL" \
        --query "127.0.0.1:$((PORT + 3))" --data-dir "$run/rule" \
        --http-address "127.0.0.1:$((PORT + 5))" --grpc-address "127.0.0.1:$((PORT + 6))" \
        >"$run/rule.log" 2>&1 &
    PIDS+=($!)
    wait_ready "strata rule" "http://127.0.0.1:$((PORT + 5))" "$!" "$run/rule.log"
    measure "strata-rule-via-querier" "http://127.0.0.1:$((PORT + 5))"
    cleanup
}

stage_failover() {
    log "failover: $RUNS runs, --eval-interval $FAILOVER_INTERVAL --rule.lease-duration $LEASE"
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    python3 "$ROOT/bench/rule_bench.py" failover "$STRATA_BIN" "$DIR/failover" "$RUNS" \
        "$FAILOVER_INTERVAL" "$LEASE" "$((PORT + 10))" | tee -a "$DIR/results.txt"
    echo "failover: load_before=\"$load_before\" load_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\"" |
        tee -a "$DIR/results.txt"
}

[[ -x "$STRATA_BIN" ]] || { log "no $STRATA_BIN (cargo build --release -p node --bin strata, or set STRATA_BIN)"; exit 1; }
stages=("$@")
((${#stages[@]} > 0)) || stages=(gen prometheus embedded querier failover)
for s in "${stages[@]}"; do
    case "$s" in
        gen | prometheus | embedded | querier | failover) "stage_$s" ;;
        *) log "unknown stage $s (gen prometheus embedded querier failover)"; exit 2 ;;
    esac
done
