#!/usr/bin/env bash
# Soak test (#12.8), by hand, not in CI: N uploads at concurrency C with
# 8-128 KB files against `fdfs server`, the server restarted every INTERVAL
# seconds (SIGTERM and kill -9 alternated), then a full read-back of every
# acknowledged file (CRC32 and size against the file id).
#
#   bench/soak.sh                       # N=1000000 C=256 INTERVAL=180
#   N=200000 INTERVAL=30 bench/soak.sh  # scaled down
#
# Env: N, C, INTERVAL (s), MIN_SIZE/MAX_SIZE (bytes), FDFS (binary; built
# with `cargo build --release -p fdfs` when unset), OUT (directory for the
# log, the timeline CSV and the ids; default a new temp directory),
# TRACKER_PORT, STORAGE_PORT (default: free ports).
#
# Prints and writes OUT/summary.txt: throughput over time (per 10 s),
# errors inside restart windows (from the kill to the server answering
# again, plus 2 s) and outside them (target 0), RSS and open fds of the
# server at the start and at the end (and before each restart), and the
# read-back result (lost or corrupt files, target 0). The upload runs with
# `fdfs bench --retry-failed`: a request refused in a restart window counts
# as an error there and is tried again 100 ms later on a new connection, so
# N files are acknowledged in the end.
set -euo pipefail

N=${N:-1000000}
C=${C:-256}
INTERVAL=${INTERVAL:-180}
MIN_SIZE=${MIN_SIZE:-8192}
MAX_SIZE=${MAX_SIZE:-131072}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TRACKER_PORT=${TRACKER_PORT:-$(free_port)}
STORAGE_PORT=${STORAGE_PORT:-$(free_port)}
OUT=${OUT:-$(mktemp -d /tmp/fdfs-soak.XXXXXX)}
DATA=$OUT/data
mkdir -p "$OUT" "$DATA"

if [[ -z "${FDFS:-}" ]]; then
    cargo build --release -q -p fdfs
    FDFS=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/fdfs
fi

LOG=$OUT/soak.log
WINDOWS=$OUT/restart-windows.txt   # start_epoch end_epoch signal
PROCS=$OUT/process-samples.txt     # epoch label pid rss_kb fds
: >"$WINDOWS"
: >"$PROCS"
log() { echo "$(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

SERVER_PID=
# Detached (its parent exits at once), so whoever kills it need not reap
# it: a zombie would still answer `kill -0`.
start_server() {
    (
        "$FDFS" server --base-path "$DATA" --tracker-port "$TRACKER_PORT" \
            --storage-port "$STORAGE_PORT" --http-port 0 --log-level warn \
            >>"$OUT/server.log" 2>&1 &
        echo $! >"$OUT/server.pid"
    )
    SERVER_PID=$(cat "$OUT/server.pid")
}

# Waits until the storage answers an upload through the tracker.
wait_ready() {
    local probe=$OUT/probe.bin
    head -c 1024 /dev/urandom >"$probe"
    for _ in $(seq 1 600); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server exited: $(tail -n 1 "$OUT/server.log")"
            return 1
        fi
        if "$FDFS" upload --tracker "127.0.0.1:$TRACKER_PORT" "$probe" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "server did not come back"
    return 1
}

sample() { # label
    local rss fds
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l)
    echo "$(date +%s) $1 $SERVER_PID $rss $fds" >>"$PROCS"
    log "$1: pid $SERVER_PID rss ${rss} kB, ${fds} fds"
}

# The server started last (the restarter starts new ones in a subshell).
current_server() { cat "$OUT/server.pid" 2>/dev/null || true; }

cleanup() {
    [[ -n "${RESTARTER:-}" ]] && kill "$RESTARTER" 2>/dev/null || true
    local pid
    pid=$(current_server)
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

log "soak: N=$N C=$C INTERVAL=${INTERVAL}s sizes $MIN_SIZE-$MAX_SIZE, binary $FDFS, out $OUT"
start_server
wait_ready

sample start-idle
T0=$(date +%s)
"$FDFS" bench upload --tracker "127.0.0.1:$TRACKER_PORT" --count "$N" --concurrency "$C" \
    --min-size "$MIN_SIZE" --max-size "$MAX_SIZE" --ids "$OUT/ids.txt" \
    --timeline "$OUT/timeline.csv" --retry-failed --quiet >"$OUT/bench-upload.txt" 2>&1 &
BENCH=$!
sleep 5
sample start-under-load

# Restarts until the load ends: odd restarts SIGTERM, even ones kill -9.
(
    n=0
    while sleep "$INTERVAL"; do
        kill -0 "$BENCH" 2>/dev/null || exit 0
        n=$((n + 1))
        if ((n % 2)); then sig=TERM; else sig=KILL; fi
        sample "before-restart-$n"
        begin=$(date +%s)
        kill -s "$sig" "$SERVER_PID"
        while kill -0 "$SERVER_PID" 2>/dev/null; do sleep 0.05; done
        start_server
        wait_ready
        echo "$begin $(date +%s) $sig" >>"$WINDOWS"
        log "restart $n ($sig): back after $(($(date +%s) - begin)) s"
    done
) &
RESTARTER=$!
# The restarter owns SERVER_PID from here; read it back from its samples.
set +e
wait "$BENCH"
BENCH_RC=$?
set -e
kill "$RESTARTER" 2>/dev/null || true
wait "$RESTARTER" 2>/dev/null || true
SERVER_PID=$(current_server)
sample end-idle
log "upload phase done (exit $BENCH_RC)"

# Errors inside / outside the restart windows, and throughput per 10 s.
python3 - "$OUT/timeline.csv" "$WINDOWS" "$T0" <<'EOF' | tee -a "$LOG"
import csv, sys
timeline, windows, t0 = sys.argv[1], sys.argv[2], int(sys.argv[3])
spans = []
for line in open(windows):
    b, e, sig = line.split()
    spans.append((int(b) - t0 - 1, int(e) - t0 + 2, sig))
inside = outside = ops = 0
buckets = {}
for row in csv.DictReader(open(timeline)):
    s, n, err = int(row["second"]), int(row["ops"]), int(row["errors"])
    ops += n
    buckets.setdefault(s // 10, [0, 0.0])
    buckets[s // 10][0] += n
    buckets[s // 10][1] += float(row["mb"])
    if any(b <= s <= e for b, e, _ in spans):
        inside += err
    else:
        outside += err
        if err:
            print(f"errors outside restart windows at second {s}: {err}")
print(f"restarts: {len(spans)} ({sum(1 for *_, g in spans if g == 'TERM')} SIGTERM, "
      f"{sum(1 for *_, g in spans if g == 'KILL')} kill -9)")
print(f"errors inside restart windows: {inside}; outside: {outside}")
print("throughput per 10 s (files/s, MB/s):")
for k in sorted(buckets):
    n, mb = buckets[k]
    print(f"  {k*10:6d}s  {n/10:9.1f}  {mb/10:8.1f}")
EOF

ACKED=$(wc -l <"$OUT/ids.txt")
log "acknowledged uploads: $ACKED; reading every one back (--verify)"
set +e
"$FDFS" bench download --tracker "127.0.0.1:$TRACKER_PORT" --ids "$OUT/ids.txt" \
    --concurrency "$C" --verify --quiet >"$OUT/bench-readback.txt" 2>&1
READ_RC=$?
set -e
tail -n 20 "$OUT/bench-readback.txt" | tee -a "$LOG"
log "read-back exit $READ_RC (0: every acknowledged file intact)"
{
    echo "N=$N C=$C INTERVAL=$INTERVAL sizes=$MIN_SIZE-$MAX_SIZE"
    echo "acknowledged=$ACKED readback_exit=$READ_RC upload_exit=$BENCH_RC"
    echo "process samples (epoch label pid rss_kB fds):"
    cat "$PROCS"
    cat "$OUT/bench-upload.txt"
} >"$OUT/summary.txt"
log "summary: $OUT/summary.txt"
