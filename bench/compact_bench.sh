#!/usr/bin/env bash
# Compaction bench: a day of 2h blocks (the query bench's data, `bench/query_bench.sh gen`)
# compacted once
#
#   fs       by `strata compact` through a FILESYSTEM bucket (wall time of the pass)
#   s3       by `strata compact` through s3s-fs on loopback (SigV4; wall time of the pass)
#   prom     by Prometheus 2.42 in its own data dir (sum of its logged `compact blocks`
#            durations; it starts compacting a minute after start-up)
#   cluster  two groups (the day uploaded twice, cluster="a" and "b") by one `strata node
#            --role compact`, then by three: time from start until every group is settled
#
# Usage: bench/compact_bench.sh [STAGE...]   (default: fs s3 prom cluster)
# Knobs (environment):
#   BLOCKS     promtool blocks to compact (default bench/.cache/blocks-10000x24h); read only:
#              each stage copies what it consumes into WORK and deletes it afterwards
#   STRATA_BIN the strata binary (default target/release/strata)
#   S3_SERVER  the s3s-fs example server (cargo build --release -p storage --features testing
#              --example s3_server; default target/release/examples/s3_server)
#   WORK=/tmp/compact-bench  PORT=19600 (ports PORT..PORT+40 on loopback)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BLOCKS="${BLOCKS:-$ROOT/bench/.cache/blocks-10000x24h}"
STRATA_BIN="${STRATA_BIN:-$ROOT/target/release/strata}"
S3_SERVER="${S3_SERVER:-$ROOT/target/release/examples/s3_server}"
WORK="${WORK:-/tmp/compact-bench}"
PORT="${PORT:-19600}"
PIDS=()

log() { echo "[compact_bench $(date -u +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap cleanup EXIT

# wait_until SECONDS WHAT CMD...: polls CMD every 0.5 s until it succeeds.
wait_until() {
    local limit="$1" what="$2"
    shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > end)); then
            log "timed out after ${limit}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

samples_in() { # total numSamples of the meta.json files under $1 (blocks without deletion marks)
    python3 - "$1" <<'PY'
import json, os, sys
root = sys.argv[1]
n = 0
for d in os.listdir(root):
    p = os.path.join(root, d)
    if os.path.exists(os.path.join(p, "meta.json")) and not os.path.exists(os.path.join(p, "deletion-mark.json")):
        n += json.load(open(os.path.join(p, "meta.json")))["stats"]["numSamples"]
print(n)
PY
}

upload() { # upload OBJSTORE-FLAG DATA-DIR LABEL [BLOCKS-DIR]: the bench blocks into a bucket
    "$STRATA_BIN" tools bucket upload "$1" --data-dir "$2" --path "${4:-$BLOCKS}" --label "$3" \
        >/dev/null 2>>"$WORK/upload.log"
}

renamed_copy() { # renamed_copy DEST: the bench blocks under new ULIDs (data files hard-linked),
    # so that a second upload is a second group rather than "already present"
    python3 - "$BLOCKS" "$1" <<'PY'
import json, os, sys
src, dest = sys.argv[1], sys.argv[2]
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
for d in sorted(os.listdir(src)):
    if not os.path.exists(os.path.join(src, d, "meta.json")):
        continue
    new = d[:-1] + alphabet[(alphabet.index(d[-1]) + 1) % 32]
    os.makedirs(os.path.join(dest, new, "chunks"))
    for root, _, files in os.walk(os.path.join(src, d)):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), os.path.join(src, d))
            if rel != "meta.json":
                os.link(os.path.join(root, f), os.path.join(dest, new, rel))
    meta = json.load(open(os.path.join(src, d, "meta.json")))
    meta["ulid"] = new
    meta["compaction"]["sources"] = [new]
    json.dump(meta, open(os.path.join(dest, new, "meta.json"), "w"), indent="\t")
PY
}

compact_pass() { # compact_pass NAME OBJSTORE-FLAG DATA-DIR: one timed pass
    local t0 t1
    t0="$(now)"
    "$STRATA_BIN" compact "$2" --data-dir "$3" --http-address 127.0.0.1:0 \
        --consistency-delay 0s --delete-delay 0s --log.level info 2>"$WORK/$1.log"
    t1="$(now)"
    local merges
    merges="$(grep -c 'uploaded compacted block' "$WORK/$1.log" || true)"
    echo "$1: strata compact pass $(secs "$t0" "$t1") s ($merges merges)"
}

stage_fs() {
    local dir="$WORK/fs"
    rm -rf "$dir" && mkdir -p "$dir"
    upload --objstore.config="$(printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$dir/bucket")" \
        "$dir" 'cluster="bench"'
    local before
    before="$(samples_in "$dir/bucket")"
    compact_pass fs --objstore.config="$(printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$dir/bucket")" "$dir"
    echo "fs: samples before $before after $(samples_in "$dir/bucket"), blocks after $(ls "$dir/bucket" | grep -c '^01' || true)"
    rm -rf "$dir"
}

stage_s3() {
    local dir="$WORK/s3"
    rm -rf "$dir" && mkdir -p "$dir/root/bkt" "$dir/scratch"
    "$S3_SERVER" "$dir/root" "$PORT" >"$WORK/s3-server.log" 2>&1 &
    PIDS+=($!)
    wait_until 30 "the S3 server" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT"
    local cfg
    cfg="$(printf 'type: S3\nconfig:\n  bucket: bkt\n  endpoint: 127.0.0.1:%s\n  access_key: AKIASTRATATEST\n  secret_key: strata-secret-123\n  insecure: true\n' "$PORT")"
    upload --objstore.config="$cfg" "$dir/scratch" 'cluster="bench"'
    local before
    before="$(samples_in "$dir/root/bkt")"
    compact_pass s3 --objstore.config="$cfg" "$dir/scratch"
    echo "s3: samples before $before after $(samples_in "$dir/root/bkt")"
    cleanup
    rm -rf "$dir"
}

prom_metric() { # prom_metric NAME: a Prometheus self-metric's value
    curl -fsS "127.0.0.1:$((PORT + 1))/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

prom_idle() { # compaction has run and nothing is being written now
    local triggered
    triggered="$(prom_metric prometheus_tsdb_compactions_triggered_total)"
    [[ "${triggered:-0}" != 0 ]] || return 1
    ! compgen -G "$WORK/prom/data/*.tmp-for-creation" >/dev/null
}

stage_prom() {
    local dir="$WORK/prom"
    rm -rf "$dir" && mkdir -p "$dir/data"
    cp -r "$BLOCKS"/01* "$dir/data/"
    printf 'global: {scrape_interval: 1h}\n' >"$dir/prometheus.yml"
    local before
    before="$(samples_in "$dir/data")"
    prometheus --config.file="$dir/prometheus.yml" --web.listen-address="127.0.0.1:$((PORT + 1))" \
        --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=100y \
        --storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=31d \
        >"$WORK/prom.log" 2>&1 &
    PIDS+=($!)
    wait_until 60 "Prometheus ready" curl -fsS "127.0.0.1:$((PORT + 1))/-/ready"
    # The first compaction is triggered a minute after start-up; then it runs plan after plan.
    wait_until 900 "Prometheus' compaction" prom_idle
    local last=-1 count
    while :; do
        count="$(prom_metric prometheus_tsdb_compactions_total)"
        [[ "$count" == "$last" ]] && prom_idle && break
        last="$count"
        sleep 10
    done
    cleanup
    python3 - "$WORK/prom.log" <<'PY'
import re, sys
unit = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
total, n = 0.0, 0
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if 'msg="compact blocks"' not in line:
        continue
    d = re.search(r"duration=(\S+)", line).group(1)
    total += sum(float(v) * unit[u] for v, u in re.findall(r"([0-9.]+)(h|ms|us|µs|ns|m|s)", d))
    n += 1
print(f"prom: compact blocks {total:.1f} s in total ({n} compactions)")
PY
    echo "prom: samples before $before after $(samples_in "$dir/data"), blocks after $(ls "$dir/data" | grep -c '^01' || true)"
    rm -rf "$dir"
}

cluster_settled() { # cluster_settled BUCKET SAMPLES: both groups hold SETTLED_BLOCKS live blocks,
    # compacted ones among them, none overlapping, with all SAMPLES samples each
    python3 - "$1" "$2" "${SETTLED_BLOCKS:-6}" <<'PY'
import json, os, sys, collections
root, want, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
live = collections.defaultdict(list)
for d in os.listdir(root):
    p = os.path.join(root, d)
    if os.path.exists(os.path.join(p, "meta.json")) and not os.path.exists(os.path.join(p, "deletion-mark.json")):
        m = json.load(open(os.path.join(p, "meta.json")))
        live[m["thanos"]["labels"]["cluster"]].append(m)
def ok(metas):
    metas.sort(key=lambda m: m["minTime"])
    return (len(metas) == count
            and any(m["compaction"]["level"] > 1 for m in metas)
            and all(a["maxTime"] <= b["minTime"] for a, b in zip(metas, metas[1:]))
            and sum(m["stats"]["numSamples"] for m in metas) == want)
sys.exit(0 if len(live) == 2 and all(ok(v) for v in live.values()) else 1)
PY
}

cluster_run() { # cluster_run NODES: time until two groups settle under NODES compact nodes
    local n="$1" dir="$WORK/cluster$1"
    rm -rf "$dir" && mkdir -p "$dir"
    local cfg
    cfg="$(printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$dir/bucket")"
    upload --objstore.config="$cfg" "$dir/up" 'cluster="a"'
    renamed_copy "$dir/blocks-b"
    upload --objstore.config="$cfg" "$dir/up" 'cluster="b"' "$dir/blocks-b"
    rm -rf "$dir/blocks-b"
    head -c 32 /dev/urandom | base64 >"$dir/secret"
    local peers=() i
    for ((i = 0; i < n; i++)); do peers+=(--cluster.peers "127.0.0.1:$((PORT + 10 + 2 * i))"); done
    # A lone node forms its cluster only when told to; three form one by the lowest address.
    ((n > 1)) || peers+=(--cluster.bootstrap)
    local t0 t1
    t0="$(now)"
    for ((i = 0; i < n; i++)); do
        "$STRATA_BIN" node --role compact --data-dir "$dir/node$i" --objstore.config="$cfg" \
            --cluster.secret-file "$dir/secret" "${peers[@]}" \
            --grpc-address "127.0.0.1:$((PORT + 10 + 2 * i))" \
            --http-address "127.0.0.1:$((PORT + 11 + 2 * i))" \
            --consistency-delay 0s --delete-delay 0s --wait-interval 5s \
            --compact.concurrency 1 2>"$WORK/cluster$n-node$i.log" &
        PIDS+=($!)
    done
    wait_until 1800 "$n node(s) to settle two groups" cluster_settled "$dir/bucket" "$(samples_in "$BLOCKS")"
    t1="$(now)"
    cleanup
    echo "cluster$n: two groups settled in $(secs "$t0" "$t1") s"
    for ((i = 0; i < n; i++)); do
        echo "cluster$n: node$i completed $(grep -c 'job completed' "$WORK/cluster$n-node$i.log" || true) job(s), uploaded $(grep -c 'uploaded compacted block' "$WORK/cluster$n-node$i.log" || true) block(s)"
    done
    rm -rf "$dir"
}

stage_cluster() {
    cluster_run 1
    cluster_run 3
}

main() {
    [[ -f "$BLOCKS/.complete" ]] || { log "no blocks at $BLOCKS; run bench/query_bench.sh gen"; exit 1; }
    [[ -x "$STRATA_BIN" ]] || { log "no strata binary at $STRATA_BIN"; exit 1; }
    mkdir -p "$WORK"
    local stages=("$@")
    ((${#stages[@]})) || stages=(fs s3 prom cluster)
    echo "# $(date -u +%FT%TZ) $("$STRATA_BIN" --version 2>/dev/null || echo strata) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    for s in "${stages[@]}"; do
        case "$s" in
        fs | s3 | prom | cluster) "stage_$s" ;;
        *) log "unknown stage $s (fs s3 prom cluster)"; exit 2 ;;
        esac
        echo "# after $s load: $(cut -d' ' -f1-3 /proc/loadavg)"
    done
}

main "$@"
