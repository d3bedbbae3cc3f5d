#!/usr/bin/env bash
# Upload then download, `fdfs server` against a running-ready C FastDFS 6.16
# tracker + storage (confs in $C_RUN, daemons in $C_BIN; not built here),
# rounds alternated (ours first in odd rounds), the same `fdfs bench` client,
# --server-pid on each system's daemons (server CPU per operation). Both keep
# their store paths across rounds (ours under $W/ours, removed only at the
# start of a run), and both get an untimed warm-up ($WARM uploads). On a
# file system without a journal, ext4 will not reuse an inode freed in the
# last minutes and searches past each one: a fresh tree for ours after the
# `rm -rf` of the last round's made its uploads pay that search, and C's
# kept tree never did (bench/RESULTS.md). Latency under disk pressure, a
# loader beside every phase (upload, download), killed after it: LOAD=1 runs a
# `dd ... fdatasync` loop; LOAD=rm builds a 256x256 directory tree (65,536
# directories, $W/tree) before the phase, then loops `rm -rf` of it and a
# rebuild (rm times in $W/load.log).
#
# MEMCG_MB caps each system's memory, page cache included, in a memory
# cgroup of its own (bench/memcg.sh says why this machine needs it).
#
#   ROUNDS=3 N=20000 C=256 DUR=8 bench/vs-c.sh   # JSON lines in $WORK/results.jsonl
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=memcg.sh
. "$here/memcg.sh"
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
tree() { local i; for i in $(seq 0 255); do mkdir -p "$W/tree/$i"/{0..255}; done; }
ms() { echo $(($(date +%s%N) / 1000000)); }
load_on() {
  case ${LOAD:-0} in
    1) (while true; do dd if=/dev/zero of="$W/load" bs=1M count=4000 conv=fdatasync 2>/dev/null; done) & ;;
    rm) tree; sync
      (while true; do t=$(ms); rm -rf "$W/tree"; echo "rm -rf: $(($(ms) - t)) ms" >>"$W/load.log"; tree; done) & ;;
    *) return 0 ;;
  esac
  LOADER=$!; sleep 2; }
# Stop the loop first so it cannot start another child, then end its child.
load_off() { [ -n "${LOADER:-}" ] || return 0
  kill -STOP "$LOADER"; pkill -P "$LOADER" 2>/dev/null || true
  kill -TERM "$LOADER"; kill -CONT "$LOADER"; wait "$LOADER" 2>/dev/null || true; LOADER=
  rm -f "$W/load"; }
# On any exit (a failed phase too) the loader and the servers of the round end.
cleanup() {
  load_off
  if [ -n "${OURS:-}" ]; then kill "$OURS" 2>/dev/null || true; fi
  if [ -n "${C_UP:-}" ]; then c_stop; fi
  rm -rf "$W/tree"
  if [ -n "${MEMCG_MB:-}" ]; then memcg_remove ours; memcg_remove c; fi
}
trap cleanup EXIT

# An untimed round of $WARM uploads first, on either system: the first
# uploads after a start (and into a tree just made) cost more than the
# rest, and the measured phase should see a server in its steady state.
warm_up() { [ "${WARM:-2000}" -gt 0 ] || return 0
  bench upload --tracker "$1" --count "${WARM:-2000}" "${SIZES[@]}" --ids "$2/warm-ids" >/dev/null; }

ours() {
  local r=$1 d=$W/ours
  mkdir -p "$d"; rm -f "$d/ids"
  "$F" server --base-path "$d/data" --tracker-port 22300 --storage-port 23300 --http-port 0 \
    --log-level warn >"$d/server.log" 2>&1 &
  local pid=$!; OURS=$pid
  if [ -n "${MEMCG_MB:-}" ]; then memcg_join ours "$MEMCG_MB" "$pid"; fi
  until "$F" upload --tracker 127.0.0.1:22300 /etc/hostname >/dev/null 2>&1; do sleep 0.3; done
  # Ours makes its 65,536 directories while it already serves (the C
  # storage before it serves, and keeps its store path across rounds):
  # wait for the last one, or the round's upload CPU includes them.
  for _ in $(seq 1 1200); do [ -d "$d/data/storage/data/FF/FF" ] && break; sleep 0.1; done
  warm_up 127.0.0.1:22300 "$d"
  settle; load_on
  bench upload --tracker 127.0.0.1:22300 --count "$N" "${SIZES[@]}" --ids "$d/ids" --server-pid $pid | emit ours "$r"
  load_off; load_on
  bench download --tracker 127.0.0.1:22300 --ids "$d/ids" --duration "$DUR" --server-pid $pid | emit ours "$r"
  load_off
  kill $pid; wait $pid 2>/dev/null || true; OURS=
}

c_stop() {
  "$C_BIN/storage/fdfs_storaged" "$C_RUN/storage.conf" stop >/dev/null 2>&1 || true
  "$C_BIN/tracker/fdfs_trackerd" "$C_RUN/tracker.conf" stop >/dev/null 2>&1 || true
  C_UP=
}

c_fdfs() {
  local r=$1 d=$W/c
  rm -rf "$d"; mkdir -p "$d"
  C_UP=1
  "$C_BIN/tracker/fdfs_trackerd" "$C_RUN/tracker.conf" start
  "$C_BIN/storage/fdfs_storaged" "$C_RUN/storage.conf" start
  # A daemon that fails to start (its port taken) logs why and exits: give up after about a minute.
  local n=0
  until "$F" monitor --tracker "$C_TRACKER" 2>/dev/null | grep -q ACTIVE; do
    n=$((n + 1)); [ $n -lt 200 ] || { echo "C storage not ACTIVE; see $C_RUN/*/logs" >&2; exit 1; }
    sleep 0.3
  done
  local pids; pids="$(cat "$C_RUN"/tracker/data/fdfs_trackerd.pid) $(cat "$C_RUN"/storage/data/fdfs_storaged.pid)"
  # shellcheck disable=SC2086
  if [ -n "${MEMCG_MB:-}" ]; then memcg_join c "$MEMCG_MB" $pids; fi
  warm_up "$C_TRACKER" "$d"
  settle; load_on
  # shellcheck disable=SC2086
  bench upload --tracker "$C_TRACKER" --count "$N" "${SIZES[@]}" --ids "$d/ids" --server-pid $pids | emit c "$r"
  load_off; load_on
  # shellcheck disable=SC2086
  bench download --tracker "$C_TRACKER" --ids "$d/ids" --duration "$DUR" --server-pid $pids | emit c "$r"
  load_off
  c_stop
  sleep 2
}

rm -rf "$W/ours"
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  if [ $((r % 2)) = 1 ]; then ours "$r"; c_fdfs "$r"; else c_fdfs "$r"; ours "$r"; fi
done
