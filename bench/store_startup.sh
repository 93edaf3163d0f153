#!/usr/bin/env bash
# Store start-up bench: `strata store` (the store gateway) over many small blocks in an S3 bucket
# (s3s-fs on loopback, SigV4), or in a FILESYSTEM bucket (BACKEND=fs).
#
#   bench/store_startup.sh [STAGE...]     stages: build gen run (default: all of them)
#
# build  release builds of `strata` and of the storage examples (s3_server, gen_small_blocks)
# gen    BLOCKS consecutive 2 h blocks of SERIES series, as a shipper uploads them, cached
#        under $CACHE/small-<blocks>x<series>/bkt (skipped when complete)
# run    starts s3s-fs over the cache and a store node over it; prints the time until the
#        store answers (block list read), until every block is open, the store's RSS once
#        idle, the bucket operations of the first sync and of one later sync, the index
#        headers' disk use, and the RSS after a Series request touching every block (through
#        `strata query --endpoint`, /api/v1/series over all time)
#
# Knobs: BLOCKS=10000 SERIES=6 BACKEND=s3|fs CACHE=bench/.cache S3_PORT=19500 GRPC=19501
# HTTP=19502 QHTTP=19503 SYNC=20s (the store's --sync-block-duration); INDEX=1 writes the
# bucket index first (`strata tools bucket index` over the cache directory; the store then
# reads it instead of listing), INDEX=0 removes it. STRATA_BIN, EXAMPLES (directory of the
# release s3_server and gen_small_blocks) and RUN (scratch directory) point elsewhere, e.g. at
# a shared release binary and a cache made by another checkout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BLOCKS="${BLOCKS:-10000}"
SERIES="${SERIES:-6}"
BACKEND="${BACKEND:-s3}"
CACHE="${CACHE:-$ROOT/bench/.cache}"
S3_PORT="${S3_PORT:-19500}"
GRPC="${GRPC:-19501}"
HTTP="${HTTP:-19502}"
SYNC="${SYNC:-20s}"
INDEX="${INDEX:-0}"
QHTTP="${QHTTP:-19503}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
STRATA_BIN="${STRATA_BIN:-$TARGET/release/strata}"
EXAMPLES="${EXAMPLES:-$TARGET/release/examples}"
DATA="$CACHE/small-${BLOCKS}x${SERIES}"
RUN="${RUN:-$CACHE/startup-run}"

log() { echo "[store_startup] $*" >&2; }
now_ms() { date +%s%3N; }

stage_build() {
    (cd "$ROOT" && cargo build --release -p node --bin strata &&
        cargo build --release -p storage --features testing --example s3_server \
            --example gen_small_blocks)
}

stage_gen() {
    if [[ -f "$DATA/.complete" ]]; then
        log "blocks cached in $DATA"
        return
    fi
    rm -rf "$DATA"
    mkdir -p "$DATA/bkt"
    log "writing $BLOCKS blocks of $SERIES series into $DATA/bkt"
    "$EXAMPLES/gen_small_blocks" "$DATA/bkt" "$BLOCKS" "$SERIES"
    touch "$DATA/.complete"
}

metric() { # name [label filter]
    curl -sf "http://127.0.0.1:$HTTP/metrics" | grep -E "^$1(\{|\s)" | grep -F "${2:-}" |
        awk '{s += $2} END {print s + 0}'
}

ops() {
    curl -sf "http://127.0.0.1:$HTTP/metrics" |
        grep -E '^strata_objstore_bucket_operations_total' |
        sed -E 's/.*operation="([a-z_]+)".*\} ([0-9.e+]+)/\1=\2/' | sort | tr '\n' ' '
}

cleanup() {
    for p in "$RUN"/*.pid; do
        [[ -f "$p" ]] || continue
        kill -TERM "$(cat "$p")" 2>/dev/null || true
        rm -f "$p"
    done
}

stage_run() {
    [[ -f "$DATA/.complete" ]] || { log "no blocks; run the gen stage first"; exit 1; }
    rm -rf "$RUN"
    mkdir -p "$RUN"
    trap cleanup EXIT
    if [[ "$INDEX" == 1 ]]; then
        "$STRATA_BIN" tools bucket index \
            --objstore.config="$(printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$DATA/bkt")" >&2
    else
        rm -f "$DATA/bkt/bucket-index.json.gz"
    fi
    local config
    if [[ "$BACKEND" == s3 ]]; then
        "$EXAMPLES/s3_server" "$DATA" "$S3_PORT" >"$RUN/s3.log" 2>&1 &
        echo $! >"$RUN/s3.pid"
        until grep -q serving "$RUN/s3.log"; do sleep 0.1; done
        config="$(printf 'type: S3\nconfig:\n  bucket: bkt\n  endpoint: 127.0.0.1:%s\n  access_key: AKIASTRATATEST\n  secret_key: strata-secret-123\n  insecure: true\n' "$S3_PORT")"
    else
        config="$(printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$DATA/bkt")"
    fi
    local t0 ready="" all=""
    t0=$(now_ms)
    "$STRATA_BIN" store \
        --data-dir="$RUN/store" --grpc-address="127.0.0.1:$GRPC" --http-address="127.0.0.1:$HTTP" \
        --sync-block-duration="$SYNC" --objstore.config="$config" >"$RUN/store.log" 2>&1 &
    local pid=$!
    echo $pid >"$RUN/store.pid"
    local deadline=$((SECONDS + 900))
    while [[ -z "$all" ]]; do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$RUN/store.log" >&2; exit 1; }
        ((SECONDS < deadline)) || { log "not all open after 900 s"; exit 1; }
        if [[ -z "$ready" ]] && grep -qE "block list read|serving StoreAPI" "$RUN/store.log"; then
            ready=$(($(now_ms) - t0))
        fi
        if grep -q "blocks loaded; serving StoreAPI" "$RUN/store.log"; then
            all=$(($(now_ms) - t0))
        fi
        sleep 0.05
    done
    local first_ops
    first_ops="$(ops)"
    sleep 5
    local rss
    rss=$(ps -o rss= -p "$pid")
    # One later sync: wait until the sync counter moves.
    local syncs
    syncs=$(metric strata_store_block_syncs_total 'result="success"')
    local before
    before="$(ops)"
    until (($(metric strata_store_block_syncs_total 'result="success"') > syncs)); do
        kill -0 "$pid" 2>/dev/null || exit 1
        sleep 0.2
    done
    local after
    after="$(ops)"
    local disk
    disk=$(du -sk "$RUN/store/index-headers" 2>/dev/null | cut -f1)
    # A request touching every block, through a querier.
    "$STRATA_BIN" query --endpoint="127.0.0.1:$GRPC" --http-address="127.0.0.1:$QHTTP" \
        --grpc-address=127.0.0.1:0 --data-dir="$RUN/query" >"$RUN/query.log" 2>&1 &
    echo $! >"$RUN/query.pid"
    until curl -sf "http://127.0.0.1:$QHTTP/-/ready" >/dev/null; do sleep 0.1; done
    local t1 series_ms nseries
    t1=$(now_ms)
    nseries=$(curl -sf "http://127.0.0.1:$QHTTP/api/v1/series" --data-urlencode 'match[]={__name__=~".+"}' \
        --data-urlencode start=0 --data-urlencode end=4102444800 | grep -o '"__name__"' | wc -l)
    series_ms=$(($(now_ms) - t1))
    local rss_after
    rss_after=$(ps -o rss= -p "$pid")
    echo "backend=$BACKEND blocks=$BLOCKS series=$SERIES index=$INDEX"
    echo "ready (block list read, Info answers): ${ready} ms"
    echo "every block open (first sync done): ${all} ms"
    echo "blocks loaded: $(metric strata_store_blocks_loaded)"
    echo "RSS idle 5 s after: $rss KiB"
    echo "bucket operations, first sync: $first_ops"
    echo "bucket operations before a later sync: $before"
    echo "bucket operations after it:            $after"
    echo "index headers on disk: ${disk:-0} KiB ($(( ${disk:-0} * 1024 / BLOCKS )) bytes per block)"
    echo "series over every block: $nseries series in $series_ms ms; store RSS after: $rss_after KiB"
}

stages=("$@")
((${#stages[@]})) || stages=(build gen run)
for s in "${stages[@]}"; do
    case "$s" in
        build | gen | run) "stage_$s" ;;
        *) log "unknown stage $s (build gen run)"; exit 2 ;;
    esac
done
