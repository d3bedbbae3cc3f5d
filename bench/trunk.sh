#!/usr/bin/env bash
# Small-file uploads with trunk storage (issue 15, point 6): `fdfs bench`
# uploads at concurrency $C into our tracker + storage with use_trunk_file
# on ("trunk"), the same with it off ("plain", one file per upload), and,
# when $C_BIN holds a built C FastDFS 6.16 (built outside this repository,
# never here), into the C tracker + storage with trunk on ("c-trunk").
# Rounds alternate the order; every phase reports server CPU per upload
# (--server-pid on both daemons). Each system gets fresh directories per
# round; its first start (65,536 directories) is waited for, not measured.
#
#   ROUNDS=3 N=20000 SIZES="1024 8192" bench/trunk.sh
#   C_BIN=/tmp/csrc/fastdfs ROUNDS=3 bench/trunk.sh   # with the original
#
# JSON lines go to $WORK/results.jsonl, one per phase, tagged with the
# system, round and size.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
F=${FDFS:-$here/../target/release/fdfs}
N=${N:-20000}; C=${C:-256}; ROUNDS=${ROUNDS:-3}; SIZES=${SIZES:-"1024 8192"}
C_BIN=${C_BIN:-}
W=${WORK:-/tmp/fdfs-trunk-bench}; OUT=$W/results.jsonl
mkdir -p "$W"; : >"$OUT"
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap stop_all EXIT

# shellcheck source=conf.sh
. "$here/conf.sh"

# system_confs <dir> <tracker ip> <tracker port> <storage port> <trunk on?>
system_confs() {
  local d=$1 ip=$2 tport=$3 sport=$4 trunk=$5
  mkdir -p "$d/tracker" "$d/storage"
  conf "$here/../conf/tracker.conf" "$d/tracker.conf" \
    "bind_addr=$ip" "port=$tport" "base_path=$d/tracker" "thread_stack_size=512KB" \
    "use_trunk_file=$trunk" "slot_min_size=256" "slot_max_size=1MB" "trunk_file_size=64MB" \
    "http.server_port=0"
  conf "$here/../conf/storage.conf" "$d/storage.conf" \
    "port=$sport" "base_path=$d/storage" "store_path0=$d/storage" \
    "tracker_server=$ip:$tport" "thread_stack_size=512KB" "sync_binlog_buff_interval=1" \
    "buff_size=256KB" "min_buff_size=256KB" "max_buff_size=256KB" "http.server_port=0"
}

# ready <tracker> <trunk on?>: a small upload succeeds, into a trunk slot
# (a 60-character name) when trunk storage is on.
ready() {
  local t=$1 trunk=$2 id
  head -c 700 /dev/urandom >"$W/probe"
  for _ in $(seq 1 600); do
    if id=$("$F" upload --tracker "$t" "$W/probe" 2>/dev/null); then
      local remote=${id#*/}
      if [ "$trunk" = false ] || [ ${#remote} -eq 60 ]; then return 0; fi
    fi
    sleep 0.5
  done
  echo "no upload through $t" >&2; return 1
}

phase() { # <sys> <round> <tracker> <pids...>
  local sys=$1 r=$2 t=$3; shift 3
  local pids; pids=$(IFS=,; echo "$*")
  # Untimed warm-up: a fresh start's 65,536 directories are still being
  # written back, which would weigh on the first phase only.
  "$F" bench upload --tracker "$t" --count 4000 --size 4096 --concurrency "$C" --quiet >/dev/null
  for size in $SIZES; do
    sync; sleep 1
    "$F" bench upload --tracker "$t" --count "$N" --size "$size" --concurrency "$C" \
      --json --quiet --server-pid "$pids" |
      sed "s/^{/{\"sys\":\"$sys\",\"round\":$r,\"size\":$size,/" | tee -a "$OUT"
  done
}

ours() { # <name> <trunk on?> <round>
  local d=$W/$1 trunk=$2 r=$3
  rm -rf "$d"; system_confs "$d" 127.0.0.1 22322 23322 "$trunk"
  "$F" tracker -c "$d/tracker.conf" & PIDS+=($!)
  "$F" storage -c "$d/storage.conf" & PIDS+=($!)
  ready 127.0.0.1:22322 "$trunk"
  # Our storage makes its 65,536 directories while it already serves: wait
  # for the last one, or the first phase pays for them (the original makes
  # them before it serves).
  for _ in $(seq 1 1200); do [ -d "$d/storage/data/FF/FF" ] && break; sleep 0.1; done
  phase "$1" "$r" 127.0.0.1:22322 "${PIDS[@]}"
  stop_all
}

C_DIR=$W/c-trunk
c_stop() {
  [ -n "$C_BIN" ] && [ -f "$C_DIR/storage.conf" ] || return 0
  "$C_BIN/storage/fdfs_storaged" "$C_DIR/storage.conf" stop >/dev/null 2>&1 || true
  "$C_BIN/tracker/fdfs_trackerd" "$C_DIR/tracker.conf" stop >/dev/null 2>&1 || true
}
trap 'stop_all; c_stop' EXIT

c_trunk() { # <round>
  local d=$C_DIR r=$1
  rm -rf "$d"; system_confs "$d" 127.0.0.2 22422 23422 true
  "$C_BIN/tracker/fdfs_trackerd" "$d/tracker.conf" start
  "$C_BIN/storage/fdfs_storaged" "$d/storage.conf" start
  ready 127.0.0.2:22422 true
  phase c-trunk "$r" 127.0.0.2:22422 \
    "$(cat "$d/tracker/data/fdfs_trackerd.pid")" "$(cat "$d/storage/data/fdfs_storaged.pid")"
  c_stop
}

for r in $(seq 1 "$ROUNDS"); do
  systems=(trunk plain); [ -n "$C_BIN" ] && systems+=(c-trunk)
  # Rotate the order each round.
  for ((i = 0; i < ${#systems[@]}; i++)); do
    s=${systems[$(((i + r - 1) % ${#systems[@]}))]}
    case $s in
      trunk) ours trunk true "$r" ;;
      plain) ours plain false "$r" ;;
      c-trunk) c_trunk "$r" ;;
    esac
  done
done
echo "results: $OUT" >&2
