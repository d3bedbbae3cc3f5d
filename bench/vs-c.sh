#!/usr/bin/env bash
# Upload then download, `fdfs server` against a running-ready C FastDFS 6.16
# tracker + storage (confs in $C_RUN, daemons in $C_BIN; not built here),
# rounds alternated (ours first in odd rounds), the same `fdfs bench` client,
# --server-pid on each system's daemons (server CPU per operation). Ours gets
# a fresh data directory per round; the C storage keeps its store path (its
# first start creates 65,536 directories). LOAD=1 runs a `dd ... fdatasync`
# loop beside every phase (latency under disk pressure).
#
#   ROUNDS=3 N=20000 C=256 DUR=8 bench/vs-c.sh   # JSON lines in $WORK/results.jsonl
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
F=${FDFS:-$here/../target/release/fdfs}
N=${N:-20000}; C=${C:-256}; ROUNDS=${ROUNDS:-3}; DUR=${DUR:-8}
C_RUN=${C_RUN:-/tmp/cfdfs/run}; C_BIN=${C_BIN:-/tmp/cfdfs/src/fastdfs}
C_TRACKER=${C_TRACKER:-127.0.0.2:22422}
W=${WORK:-/tmp/fdfs-vs-c}; OUT=$W/results.jsonl
mkdir -p "$W"; : >"$OUT"
SIZES=(--min-size 8192 --max-size 131072)
emit() { sed "s/^{/{\"sys\":\"$1\",\"round\":$2,/" | tee -a "$OUT"; }
bench() { "$F" bench "$@" --concurrency "$C" --json --quiet; }
settle() { sync; sleep 1; }
load_on() { [ "${LOAD:-0}" = 1 ] || return 0
  (while true; do dd if=/dev/zero of="$W/load" bs=1M count=4000 conv=fdatasync 2>/dev/null; done) &
  LOADER=$!; sleep 2; }
load_off() { [ -n "${LOADER:-}" ] || return 0
  kill "$LOADER"; wait "$LOADER" 2>/dev/null || true; LOADER=
  pkill -x -P "$$" dd 2>/dev/null || true; rm -f "$W/load"; }
trap load_off EXIT

ours() {
  local r=$1 d=$W/ours
  rm -rf "$d"; mkdir -p "$d"
  "$F" server --base-path "$d/data" --tracker-port 22300 --storage-port 23300 --http-port 0 \
    --log-level warn >"$d/server.log" 2>&1 &
  local pid=$!
  until "$F" upload --tracker 127.0.0.1:22300 /etc/hostname >/dev/null 2>&1; do sleep 0.3; done
  # Ours makes its 65,536 directories while it already serves (the C
  # storage before it serves, and keeps its store path across rounds):
  # wait for the last one, or the round's upload CPU includes them.
  for _ in $(seq 1 1200); do [ -d "$d/data/storage/data/FF/FF" ] && break; sleep 0.1; done
  settle; load_on
  bench upload --tracker 127.0.0.1:22300 --count "$N" "${SIZES[@]}" --ids "$d/ids" --server-pid $pid | emit ours "$r"
  bench download --tracker 127.0.0.1:22300 --ids "$d/ids" --duration "$DUR" --server-pid $pid | emit ours "$r"
  load_off
  kill $pid; wait $pid 2>/dev/null || true
}

c_fdfs() {
  local r=$1 d=$W/c
  rm -rf "$d"; mkdir -p "$d"
  "$C_BIN/tracker/fdfs_trackerd" "$C_RUN/tracker.conf" start
  "$C_BIN/storage/fdfs_storaged" "$C_RUN/storage.conf" start
  until "$F" monitor --tracker "$C_TRACKER" 2>/dev/null | grep -q ACTIVE; do sleep 0.3; done
  local pids; pids="$(cat "$C_RUN"/tracker/data/fdfs_trackerd.pid) $(cat "$C_RUN"/storage/data/fdfs_storaged.pid)"
  settle; load_on
  # shellcheck disable=SC2086
  bench upload --tracker "$C_TRACKER" --count "$N" "${SIZES[@]}" --ids "$d/ids" --server-pid $pids | emit c "$r"
  # shellcheck disable=SC2086
  bench download --tracker "$C_TRACKER" --ids "$d/ids" --duration "$DUR" --server-pid $pids | emit c "$r"
  load_off
  "$C_BIN/storage/fdfs_storaged" "$C_RUN/storage.conf" stop >/dev/null 2>&1 || true
  "$C_BIN/tracker/fdfs_trackerd" "$C_RUN/tracker.conf" stop >/dev/null 2>&1 || true
  sleep 2
}

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  if [ $((r % 2)) = 1 ]; then ours "$r"; c_fdfs "$r"; else c_fdfs "$r"; ours "$r"; fi
done
