#!/usr/bin/env bash
# Server CPU per HTTP GET of several fdfs builds against nginx-light, with
# `fdfs bench http --server-pid`: each build is restarted on the same store
# and measured after an untimed warm-up, then nginx on the same directory,
# round after round (bench/RESULTS.md, 2026-12-05 third session).
#
#   WORK=/tmp/hb ROUNDS=5 DUR=6 bench/http/ab.sh before=/tmp/fdfs-a after=target/release/fdfs
#
# Needs $WORK/ids.txt, the store under $WORK/data and nginx serving it on
# port 8890 (bench/http/run.sh makes all three).
#
# MORE_NGINX="name:port:pidfile ..." measures more nginx instances serving the
# same store each round, e.g. the original's nginx + fastdfs-nginx-module
# (built by hand outside this repository, bench/HTTP-COMPARE.md):
#   MORE_NGINX="nginx+module:8891:/tmp/ngxmod/run/nginx.pid" ... bench/http/ab.sh ...
set -euo pipefail
work=${WORK:-/tmp/bench}; rounds=${ROUNDS:-3}; dur=${DUR:-8}; c=${C:-256}
bench=${BENCH:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/fdfs}
nginx_pids="$(cat "$work/nginx/nginx.pid"),$(pgrep -P "$(cat "$work/nginx/nginx.pid")" | paste -sd,)"
run() { # label port pids
  "$bench" bench http --http "127.0.0.1:$2" --ids "$work/ids.txt" --duration 2 \
    --concurrency "$c" --quiet --json >/dev/null
  "$bench" bench http --http "127.0.0.1:$2" --ids "$work/ids.txt" --duration "$dur" \
    --concurrency "$c" --quiet --json --server-pid "$3" |
    sed "s/^{/{\"round\":$r,\"sys\":\"$1\",/"
}
stop() {
  pkill -f "server --base-path $work/data" || true
  while pgrep -f "server --base-path $work/data" >/dev/null; do sleep 0.1; done
}
trap stop EXIT
for r in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    stop
    "${spec#*=}" server --base-path "$work/data" --http-port 8888 --log-level warn \
      >"$work/server.log" 2>&1 &
    until curl -sf http://127.0.0.1:8888/healthz >/dev/null; do sleep 0.1; done
    run "${spec%%=*}" 8888 "$(pgrep -f "server --base-path $work/data" | paste -sd,)"
  done
  run nginx 8890 "$nginx_pids"
  for more in ${MORE_NGINX:-}; do
    IFS=: read -r name port pidfile <<<"$more"
    master=$(cat "$pidfile")
    run "$name" "$port" "$master,$(pgrep -P "$master" | paste -sd,)"
  done
done
