#!/usr/bin/env bash
# Files/s and server CPU per request: the gateway of each fdfs binary given
# (restarted on the same store between runs) against nginx-light serving the
# same directory, alternated. CPU is the server processes' utime+stime from
# /proc/PID/stat around each wrk run, so it does not depend on how much CPU
# the client (wrk, on the same box) leaves over. See bench/HTTP.md.
#
#   WORK=/tmp/hb ROUNDS=3 SECS=6 C=64 bench/http/cpu.sh target/release/fdfs [other-fdfs ...]
#
# Needs $WORK/ids.txt and a store under $WORK/data (bench/http/run.sh makes
# both), wrk, nginx, bc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-/tmp/bench}; secs=${SECS:-6}; rounds=${ROUNDS:-3}; c=${C:-64}
[ $# -gt 0 ] || set -- "$here/../../target/release/fdfs"
tick=$(getconf CLK_TCK)
cpu_ticks() { local s=0 f; for p in "$@"; do read -r -a f <"/proc/$p/stat"; s=$((s + f[13] + f[14])); done; echo "$s"; }
measure() { # measure LABEL PORT PIDS...
  local label=$1 port=$2; shift 2
  local a b out n rps
  a=$(cpu_ticks "$@")
  out=$(IDS="$work/ids.txt" wrk -t2 -c"$c" -d"${secs}s" -s "$here/urls.lua" "http://127.0.0.1:$port")
  b=$(cpu_ticks "$@")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  echo "$label c=$c files/s=$rps cpu_us_per_req=$(echo "scale=2; ($b-$a)*1000000/$tick/$n" | bc)" \
    "$(echo "$out" | grep -E "^errors" | tr '\n' ' ')"
}
sed "s|/tmp/bench|$work|g" "$here/nginx.conf" >"$work/nginx/nginx.conf"
[ -f "$work/nginx/nginx.pid" ] || nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
nginx_pids=$(pgrep -P "$(cat "$work/nginx/nginx.pid")" | tr '\n' ' ')
stop_gateway() {
  pkill -f "server --base-path $work/data" || true
  while pgrep -f "server --base-path $work/data" >/dev/null; do sleep 0.1; done
}
for r in $(seq 1 "$rounds"); do
  for bin in "$@"; do
    stop_gateway
    "$bin" server --base-path "$work/data" --http-port 8888 --log-level warn >"$work/server.log" 2>&1 &
    until curl -sf http://127.0.0.1:8888/healthz >/dev/null; do sleep 0.1; done
    measure "round=$r $bin" 8888 "$(pgrep -f "server --base-path $work/data")"
  done
  # shellcheck disable=SC2086
  measure "round=$r nginx" 8890 $nginx_pids
done
stop_gateway
