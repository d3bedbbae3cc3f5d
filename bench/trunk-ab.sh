#!/usr/bin/env bash
# Trunk uploads of two builds, paired: a tracker + storage of build A and
# one of build B (use_trunk_file on) run side by side for the whole run,
# and the same bench client uploads $N files of $SIZE bytes into each in
# turn, the order alternated every round. Server CPU per upload is the
# utime + stime of each tracker and storage (/proc/PID/stat) around its
# phase. On this shared machine the CPU per upload of one build drifts by
# a third between minutes; pairs a few seconds apart still compare.
#
#   A=/path/old/fdfs B=target/release/fdfs ROUNDS=8 N=40000 SIZE=1024 bench/trunk-ab.sh
#   A=c:/tmp/csrc/fastdfs B=target/release/fdfs bench/trunk-ab.sh   # against the original
#
# `c:DIR` is a C FastDFS 6.16 source tree built outside this repository
# (never here): its fdfs_trackerd and fdfs_storaged, with the same conf
# settings; its tracker listens on 127.0.0.2, as its storage refuses a
# tracker at 127.0.0.1. The bench client is always build B's `fdfs`.
#
# XA / XB: extra `key=value` conf settings for build A / B (both daemons).
# TRUNK=false: both systems store plain files (use_trunk_file off), for
# the same pairing of plain uploads. SIZE=MIN-MAX: uniform sizes, e.g.
# SIZE=8192-131072 (the field report's 8-128 KB).
# MEMCG_MB: caps each system's memory, page cache included, at that many MB
# in a memory cgroup of its own (bench/memcg.sh says why this machine needs
# it for writes); unset, the page cache grows freely.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
A=${A:?build A (fdfs binary)}; B=${B:?build B (fdfs binary)}
N=${N:-40000}; SIZE=${SIZE:-1024}; ROUNDS=${ROUNDS:-8}; C=${C:-256}; TRUNK=${TRUNK:-true}
case $SIZE in
  *-*) SIZE_ARGS=(--min-size "${SIZE%-*}" --max-size "${SIZE#*-}") ;;
  *) SIZE_ARGS=(--size "$SIZE") ;;
esac
W=${WORK:-/tmp/fdfs-trunk-ab}
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  for d in "${C_DIRS[@]:-}"; do
    [ -n "$d" ] || continue
    "${d%%|*}/storage/fdfs_storaged" "${d#*|}/storage.conf" stop >/dev/null 2>&1 || true
    "${d%%|*}/tracker/fdfs_trackerd" "${d#*|}/tracker.conf" stop >/dev/null 2>&1 || true
  done
  if [ -n "${MEMCG_MB:-}" ]; then memcg_remove A; memcg_remove B; fi
}
C_DIRS=()
trap stop_all EXIT

# shellcheck source=conf.sh
. "$here/conf.sh"
# shellcheck source=memcg.sh
. "$here/memcg.sh"

declare -A TRACKER_PID STORAGE_PID TRACKER_AT
start() { # <name> <build> <tracker port> <storage port> <extra conf>
  local name=$1 bin=$2 d=$W/$1 extra ip=127.0.0.1
  read -r -a extra <<<"$5"
  case $bin in c:*) ip=127.0.0.2 ;; esac
  rm -rf "$d"; mkdir -p "$d/tracker" "$d/storage"
  conf "$here/../conf/tracker.conf" "$d/tracker.conf" \
    "bind_addr=$ip" "port=$3" "base_path=$d/tracker" "use_trunk_file=$TRUNK" \
    "slot_min_size=256" "slot_max_size=1MB" "trunk_file_size=64MB" "http.server_port=0" \
    "thread_stack_size=512KB" "${extra[@]}"
  conf "$here/../conf/storage.conf" "$d/storage.conf" \
    "port=$4" "base_path=$d/storage" "store_path0=$d/storage" \
    "tracker_server=$ip:$3" "sync_binlog_buff_interval=1" "http.server_port=0" \
    "thread_stack_size=512KB" "buff_size=256KB" "min_buff_size=256KB" "max_buff_size=256KB" \
    "${extra[@]}"
  TRACKER_AT[$name]=$ip:$3
  case $bin in
    c:*)
      local c=${bin#c:}
      C_DIRS+=("$c|$d")
      "$c/tracker/fdfs_trackerd" "$d/tracker.conf" start
      "$c/storage/fdfs_storaged" "$d/storage.conf" start
      ;;
    *)
      "$bin" tracker -c "$d/tracker.conf" & PIDS+=($!); TRACKER_PID[$name]=$!
      "$bin" storage -c "$d/storage.conf" & PIDS+=($!); STORAGE_PID[$name]=$!
      ;;
  esac
  head -c 700 /dev/urandom >"$W/probe"
  local id remote up=""
  for _ in $(seq 1 600); do
    if id=$("$B" upload --tracker "$ip:$3" "$W/probe" 2>/dev/null); then
      remote=${id#*/}
      if [ "$TRUNK" = false ] || [ ${#remote} -eq 60 ]; then up=1; break; fi
    fi
    sleep 0.5
  done
  [ -n "$up" ] || { echo "$name: no upload (into a trunk slot: $TRUNK)" >&2; return 1; }
  # The storage makes its 65,536 directories while it serves: wait for them.
  for _ in $(seq 1 1200); do [ -d "$d/storage/data/FF/FF" ] && break; sleep 0.1; done
  case $bin in
    c:*)
      TRACKER_PID[$name]=$(cat "$d/tracker/data/fdfs_trackerd.pid")
      STORAGE_PID[$name]=$(cat "$d/storage/data/fdfs_storaged.pid")
      ;;
  esac
  if [ -n "${MEMCG_MB:-}" ]; then
    memcg_join "$name" "$MEMCG_MB" "${TRACKER_PID[$name]}" "${STORAGE_PID[$name]}"
  fi
  "$B" bench upload --tracker "$ip:$3" --count 4000 --size 4096 --concurrency "$C" \
    --quiet >/dev/null
}

ticks() { local f; read -r -a f <"/proc/$1/stat"; echo $((f[13] + f[14])); }
hz=$(getconf CLK_TCK)
phase() { # <name>: one timed run, one line
  local name=$1 t0 s0 t1 s1 rate
  t0=$(ticks "${TRACKER_PID[$name]}"); s0=$(ticks "${STORAGE_PID[$name]}")
  rate=$("$B" bench upload --tracker "${TRACKER_AT[$name]}" --count "$N" "${SIZE_ARGS[@]}" \
    --concurrency "$C" --quiet --json | grep -o '"ops_per_sec":[0-9]*' | cut -d: -f2)
  t1=$(ticks "${TRACKER_PID[$name]}"); s1=$(ticks "${STORAGE_PID[$name]}")
  awk -v n="$N" -v hz="$hz" -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v name="$name" \
    -v r="$r" -v rate="$rate" 'BEGIN {
      printf "round %d %s: tracker %.1f + storage %.1f = %.1f us/upload, %s files/s\n",
        r, name, t * 1e6 / hz / n, s * 1e6 / hz / n, (t + s) * 1e6 / hz / n, rate }'
}

mkdir -p "$W"
start A "$A" 22622 23622 "${XA:-}"
start B "$B" 22722 23722 "${XB:-}"
sync
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then phase A; phase B; else phase B; phase A; fi
done
