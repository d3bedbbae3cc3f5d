#!/usr/bin/env bash
# Side by side: fastdfs-rs (`fdfs server`) vs the C FastDFS 6.16 (tracker +
# storage daemons, /tmp/cfdfs/run-c-bench.sh), and our HTTP gateway vs
# nginx-light on the same files. Same bench client, fresh data every round,
# runs alternated A B A B. See bench/RESULTS.md.
#
#   ROUNDS=2 N=20000 C=256 DUR=8 bench/compare.sh    # JSON lines in $WORK/results.jsonl
#
# PIN=1 puts the bench client on CPU 0 and every server (ours, the C
# daemons, nginx) on CPU 1, which models a client on another machine on a
# 2-CPU box: the servers no longer compete with the client for CPU.
# C_RIG=/tmp/cfdfs names the hand-built C rig (run-c-bench.sh, stop-c.sh).
# Every phase reports the servers' CPU per operation (`--server-pid`). XARGS=1
# adds, per round and system, bench/seed-xargs.sh (one upload process per
# file) with our tools and with the C tools in C_TOOLS (default
# $C_RIG/src/fastdfs/client).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
F=${FDFS:-$here/../target/release/fdfs}
N=${N:-20000}; C=${C:-256}; ROUNDS=${ROUNDS:-2}
DUR=${DUR:-8}   # seconds of each read phase (ids read round-robin)
W=${WORK:-/tmp/fdfs-compare}
OUT=$W/results.jsonl
mkdir -p "$W"; : >"$OUT"
ulimit -n 65536 2>/dev/null || true
SIZES=(--min-size 8192 --max-size 131072)
C_RIG=${C_RIG:-/tmp/cfdfs}
if [ "${PIN:-0}" = 1 ]; then
  CLIENT_PIN=(taskset -c 0); SERVER_PIN=(taskset -c 1)
else
  CLIENT_PIN=(); SERVER_PIN=()
fi

rss() { ps -o rss= -p "$1" | tr -d ' '; }
# rss_watch PID FILE: one RSS sample every 0.2 s until killed
rss_watch() { while kill -0 "$1" 2>/dev/null; do rss "$1" >>"$2" || true; sleep 0.2; done; }
peak() { sort -n "$1" | tail -1; }
emit() { # emit SYS ROUND JSON
  echo "$3" | sed "s/^{/{\"sys\":\"$1\",\"round\":$2,/" | tee -a "$OUT"
}
bench() { "${CLIENT_PIN[@]}" "$F" bench "$@" --concurrency "$C" --json --quiet; }
C_TOOLS=${C_TOOLS:-$C_RIG/src/fastdfs/client}
# xargs SYS ROUND TRACKER "PIDS": the one-process-per-file method, both tool sets.
xargs_method() {
  [ "${XARGS:-0}" = 1 ] || return 0
  emit "$1" "$2" "$(JSON=1 FDFS=$F TRACKER=$3 SERVER_PIDS=$4 "$here/seed-xargs.sh" |
    sed 's/"mode":"xargs"/"mode":"xargs-our-tools"/')"
  emit "$1" "$2" "$(JSON=1 TOOLS=$C_TOOLS TRACKER=$3 SERVER_PIDS=$4 "$here/seed-xargs.sh" |
    sed 's/"mode":"xargs"/"mode":"xargs-c-tools"/')"
}
# Each upload phase starts with no dirty pages left by the previous system's
# run, so kernel writeback throttles both alike.
settle() { sync; sleep 1; }

ours() {
  local r=$1 d=$W/ours
  rm -rf "$d"; mkdir -p "$d"
  "${SERVER_PIN[@]}" "$F" server --base-path "$d/data" --tracker-port 22300 --storage-port 23300 \
    --http-port 8988 --log-level warn >"$d/server.log" 2>&1 &
  local pid=$!
  until "$F" upload --tracker 127.0.0.1:22300 /etc/hostname >/dev/null 2>&1; do sleep 0.3; done
  sleep 2
  local idle0; idle0=$(rss $pid)
  settle
  rss_watch $pid "$d/rss.up" & local w=$!
  emit ours "$r" "$(bench upload --tracker 127.0.0.1:22300 --count "$N" "${SIZES[@]}" --ids "$d/ids" --server-pid $pid)"
  kill $w; wait $w 2>/dev/null || true
  sleep 5
  emit ours "$r" "{\"mode\":\"rss\",\"idle_start_kb\":$idle0,\"upload_peak_kb\":$(peak "$d/rss.up"),\"idle_after_kb\":$(rss $pid)}"
  emit ours "$r" "$(bench download --tracker 127.0.0.1:22300 --ids "$d/ids" --duration "$DUR" --server-pid $pid)"
  emit ours "$r" "$(bench http --http 127.0.0.1:8988 --ids "$d/ids" --duration "$DUR" --server-pid $pid | sed 's/"mode":"http"/"mode":"http-gateway"/')"
  # nginx-light serving the same store directory (as bench/http/nginx.conf)
  mkdir -p "$d/nginx/logs"
  sed -e "s|/tmp/bench/nginx|$d/nginx|g" -e "s|/tmp/bench/data|$d/data|g" \
      -e "s|127.0.0.1:8890|127.0.0.1:8989|" "$here/http/nginx.conf" >"$d/nginx/nginx.conf"
  "${SERVER_PIN[@]}" nginx -c "$d/nginx/nginx.conf" -p "$d/nginx"
  sleep 0.5
  # The master and its workers (live workers are not in the master's times).
  local nginx_pids; nginx_pids=$(cat "$d/nginx/nginx.pid"; pgrep -P "$(cat "$d/nginx/nginx.pid")")
  emit nginx "$r" "$(bench http --http 127.0.0.1:8989 --ids "$d/ids" --duration "$DUR" --server-pid $nginx_pids | sed 's/"mode":"http"/"mode":"http-nginx"/')"
  kill "$(cat "$d/nginx/nginx.pid")"
  xargs_method ours "$r" 127.0.0.1:22300 "$pid"
  kill $pid; wait $pid 2>/dev/null || true
}

c_fdfs() {
  local r=$1 d=$W/c
  rm -rf "$d"; mkdir -p "$d"
  "${SERVER_PIN[@]}" "$C_RIG/run-c-bench.sh" >"$d/start.log" 2>&1
  local pf=$C_RIG/bench/storage/data/fdfs_storaged.pid pid
  for _ in $(seq 1 50); do [ -s "$pf" ] && break; sleep 0.2; done
  pid=$(cat "$pf")
  # The tracker's CPU counts too (ours is one process for both roles).
  local pids=$pid tf=$C_RIG/bench/tracker/data/fdfs_trackerd.pid
  [ -s "$tf" ] && pids="$pids $(cat "$tf")"
  sleep 2
  local idle0; idle0=$(rss "$pid")
  settle
  rss_watch "$pid" "$d/rss.up" & local w=$!
  emit c "$r" "$(bench upload --tracker 127.0.0.2:22122 --count "$N" "${SIZES[@]}" --ids "$d/ids" --server-pid $pids)"
  kill $w; wait $w 2>/dev/null || true
  sleep 5
  emit c "$r" "{\"mode\":\"rss\",\"idle_start_kb\":$idle0,\"upload_peak_kb\":$(peak "$d/rss.up"),\"idle_after_kb\":$(rss "$pid")}"
  emit c "$r" "$(bench download --tracker 127.0.0.2:22122 --ids "$d/ids" --duration "$DUR" --server-pid $pids)"
  xargs_method c "$r" 127.0.0.2:22122 "$pids"
  "$C_RIG/stop-c.sh" bench >/dev/null 2>&1
}

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  ours "$r"
  c_fdfs "$r"
done
