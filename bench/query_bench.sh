#!/usr/bin/env bash
# Query benchmark: Strata's querier against Prometheus 2.42 over the same promtool blocks.
#
#   bench/query_bench.sh [STAGE...]      stages: gen build serve run stop (default: all of them)
#
# gen    node-exporter-like data (SERIES series over HOURS h at 15 s) as promtool blocks, cached
#        under $CACHE/blocks-<series>x<hours>h (skipped when the cache is complete)
# build  release build of `strata`
# serve  start Prometheus (2 h blocks, no compaction, no scraping) and `strata query` on copies
#        (hard links) of the cached blocks; waits until both are ready. MODE=storeapi serves the
#        blocks from `strata store` (the store gateway) instead, and `strata query --endpoint` reads
#        them over the StoreAPI (gRPC on loopback)
# run    the dashboard suite (bench/run_suite.py): median of REPS runs per case on both
# stop   stop both servers
#
# Knobs (environment): SERIES=10000 HOURS=24 REPS=5 CACHE=bench/.cache PROM_PORT=19190
# STRATA_PORT=19902 START=1704067200 (2 h aligned) MODE=embedded|storeapi STORE_GRPC=19903
# STORE_HTTP=19904 STRATA_GRPC=19905 RUN=$CACHE/run-<series>x<hours>h (the servers' working
# copies; give each concurrent user of a shared CACHE its own). BUCKET=fs|s3 (MODE=storeapi only):
# s3 puts the store's bucket behind s3s-fs on loopback (SigV4; S3_SERVER=the storage example
# `s3_server`, default $TARGET/release/examples/s3_server; S3_PORT=19906), the blocks uploaded
# through it with `strata tools bucket upload` so that s3s-fs holds their ETags.
# CACHING_BUCKET=<size> (BUCKET=s3 only, e.g. 1GB; default none): the store reads chunks through
# Thanos' caching bucket, `type: IN-MEMORY` with that `max_size`. A smoke run:
#   SERIES=200 HOURS=4 REPS=2 bench/query_bench.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERIES="${SERIES:-10000}"
HOURS="${HOURS:-24}"
REPS="${REPS:-5}"
CACHE="${CACHE:-$ROOT/bench/.cache}"
PROM_PORT="${PROM_PORT:-19190}"
STRATA_PORT="${STRATA_PORT:-19902}"
START="${START:-1704067200}"
MODE="${MODE:-embedded}"
STORE_GRPC="${STORE_GRPC:-19903}"
STORE_HTTP="${STORE_HTTP:-19904}"
STRATA_GRPC="${STRATA_GRPC:-19905}"
BUCKET="${BUCKET:-fs}"
S3_PORT="${S3_PORT:-19906}"
END=$((START + HOURS * 3600))
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
STRATA_BIN="${STRATA_BIN:-$TARGET/release/strata}"
BLOCKS="$CACHE/blocks-${SERIES}x${HOURS}h"
RUN="${RUN:-$CACHE/run-${SERIES}x${HOURS}h}"
S3_SERVER="${S3_SERVER:-$TARGET/release/examples/s3_server}"
CACHING_BUCKET="${CACHING_BUCKET:-}"

log() { echo "[query_bench] $*" >&2; }

stage_gen() {
    if [[ -f "$BLOCKS/.complete" ]]; then
        log "blocks cached in $BLOCKS"
        return
    fi
    rm -rf "$BLOCKS"
    mkdir -p "$BLOCKS"
    log "generating $SERIES series over $HOURS h into $BLOCKS"
    python3 "$ROOT/bench/gen_node_exporter.py" --series "$SERIES" --hours "$HOURS" \
        --start "$START" "$BLOCKS"
    touch "$BLOCKS/.complete"
}

stage_build() {
    log "building strata (release)"
    (cd "$ROOT" && cargo build --release -p node --bin strata)
}

wait_ready() { # name port pidfile
    local deadline=$((SECONDS + 300))
    until curl -sf "http://127.0.0.1:$2/-/ready" >/dev/null; do
        if ! kill -0 "$(cat "$3")" 2>/dev/null; then
            log "$1 exited; see $RUN/$1.log"
            tail -20 "$RUN/$1.log" >&2
            exit 1
        fi
        if ((SECONDS > deadline)); then
            log "$1 not ready after 300 s"
            exit 1
        fi
        sleep 0.2
    done
    log "$1 ready on port $2"
}

serve_s3() { # starts s3s-fs over $RUN/s3, uploads the blocks through it, prints the objstore config
    [[ -x "$S3_SERVER" ]] || { log "no $S3_SERVER (cargo build --release -p storage --features testing --example s3_server)"; exit 1; }
    mkdir -p "$RUN/s3/bkt"
    "$S3_SERVER" "$RUN/s3" "$S3_PORT" >"$RUN/s3.log" 2>&1 &
    echo $! >"$RUN/s3.pid"
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; do
        ((SECONDS < deadline)) || { log "s3 server not listening after 30 s"; exit 1; }
        sleep 0.2
    done
    local cfg
    cfg="$(printf 'type: S3\nconfig:\n  bucket: bkt\n  endpoint: 127.0.0.1:%s\n  access_key: AKIASTRATATEST\n  secret_key: strata-secret-123\n  insecure: true\n' "$S3_PORT")"
    log "uploading the blocks through s3s-fs on port $S3_PORT"
    "$STRATA_BIN" tools bucket upload --objstore.config="$cfg" --data-dir "$RUN/upload" --path "$BLOCKS" \
        >"$RUN/upload.log" 2>&1 || { tail -20 "$RUN/upload.log" >&2; exit 1; }
    printf '%s' "$cfg"
}

stage_serve() {
    [[ -f "$BLOCKS/.complete" ]] || { log "no blocks; run the gen stage first"; exit 1; }
    [[ -x "$STRATA_BIN" ]] || { log "no $STRATA_BIN; run the build stage first"; exit 1; }
    stage_stop
    rm -rf "$RUN"
    mkdir -p "$RUN/prometheus" "$RUN/strata/bucket"
    for b in "$BLOCKS"/*/; do
        b="${b%/}"
        cp -al "$b" "$RUN/prometheus/"
        cp -al "$b" "$RUN/strata/bucket/"
    done
    cat >"$RUN/prometheus.yml" <<EOF
global: {scrape_interval: 1m, evaluation_interval: 1m}
scrape_configs: []
EOF
    # Same 2 h blocks for both: no compaction into longer blocks on the Prometheus side.
    prometheus --config.file="$RUN/prometheus.yml" --web.listen-address="127.0.0.1:$PROM_PORT" \
        --storage.tsdb.path="$RUN/prometheus" --storage.tsdb.retention.time=100y \
        --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h \
        >"$RUN/prometheus.log" 2>&1 &
    echo $! >"$RUN/prometheus.pid"
    if [[ "$MODE" == storeapi ]]; then
        local objstore
        objstore="$(printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$RUN/strata/bucket")"
        local store_flags=()
        if [[ "$BUCKET" == s3 ]]; then
            objstore="$(serve_s3)"
            if [[ -n "$CACHING_BUCKET" ]]; then
                store_flags+=("--store.caching-bucket.config=$(printf 'type: IN-MEMORY\nconfig:\n  max_size: %s\n' "$CACHING_BUCKET")")
            fi
        fi
        "$STRATA_BIN" store \
            --data-dir="$RUN/store" --grpc-address="127.0.0.1:$STORE_GRPC" \
            --http-address="127.0.0.1:$STORE_HTTP" --objstore.config="$objstore" \
            "${store_flags[@]}" \
            >"$RUN/store.log" 2>&1 &
        echo $! >"$RUN/store.pid"
        local deadline=$((SECONDS + 300))
        until grep -q "blocks loaded; serving StoreAPI" "$RUN/store.log"; do
            kill -0 "$(cat "$RUN/store.pid")" 2>/dev/null || { tail -20 "$RUN/store.log" >&2; exit 1; }
            ((SECONDS < deadline)) || { log "store not ready after 300 s"; exit 1; }
            sleep 0.2
        done
        log "store ready on gRPC port $STORE_GRPC"
        "$STRATA_BIN" query --http-address="127.0.0.1:$STRATA_PORT" --data-dir="$RUN/strata-query" \
            --grpc-address="127.0.0.1:$STRATA_GRPC" --endpoint="127.0.0.1:$STORE_GRPC" >"$RUN/strata.log" 2>&1 &
    else
        "$STRATA_BIN" query --http-address="127.0.0.1:$STRATA_PORT" --data-dir="$RUN/strata" \
            --grpc-address="127.0.0.1:$STRATA_GRPC" >"$RUN/strata.log" 2>&1 &
    fi
    echo $! >"$RUN/strata.pid"
    wait_ready prometheus "$PROM_PORT" "$RUN/prometheus.pid"
    wait_ready strata "$STRATA_PORT" "$RUN/strata.pid"
}

stage_run() {
    log "running the suite: $REPS runs per case, data ends at $END"
    echo "mode: $MODE; bucket: $BUCKET; caching bucket: ${CACHING_BUCKET:-none}; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$RUN/load.txt"
    python3 "$ROOT/bench/run_suite.py" --prometheus-port "$PROM_PORT" --strata-port "$STRATA_PORT" \
        --end "$END" --hours "$HOURS" --reps "$REPS" | tee "$RUN/results.txt"
    cat "$RUN/load.txt" >>"$RUN/results.txt"
    echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RUN/results.txt"
    echo "strata RSS: $(ps -o rss= -p "$(cat "$RUN/strata.pid")") KiB, prometheus RSS:" \
        "$(ps -o rss= -p "$(cat "$RUN/prometheus.pid")") KiB" | tee -a "$RUN/results.txt"
    if [[ -f "$RUN/store.pid" ]]; then
        echo "store RSS: $(ps -o rss= -p "$(cat "$RUN/store.pid")") KiB" | tee -a "$RUN/results.txt"
    fi
}

stage_stop() {
    for name in strata store prometheus s3; do
        local pidfile="$RUN/$name.pid"
        [[ -f "$pidfile" ]] || continue
        local pid
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            log "stopped $name ($pid)"
        fi
        rm -f "$pidfile"
    done
}

stages=("$@")
if ((${#stages[@]} == 0)); then
    stages=(gen build serve run stop)
    trap stage_stop EXIT
fi
for s in "${stages[@]}"; do
    case "$s" in
        gen | build | serve | run | stop) "stage_$s" ;;
        *) log "unknown stage $s (gen build serve run stop)"; exit 2 ;;
    esac
done
