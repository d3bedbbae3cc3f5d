#!/usr/bin/env bash
# Server CPU per HTTP GET of several fdfs builds side by side, each serving
# its own copy of the same store, and nginx-light (plus MORE_NGINX, as in
# ab.sh) serving the first copy. Everything is started once and stays up;
# each round measures every system in turn with a short run after a 1 s
# warm-up, the order rotated every round. Unlike ab.sh, no build is
# restarted between rounds, so a round compares warm systems a few seconds
# apart (this machine's CPU per request drifts by 10-20% within minutes).
#
#   WORK=/tmp/hs ROUNDS=8 DUR=4 bench/http/side-by-side.sh old=/tmp/fdfs-old new=target/release/fdfs
#
# Needs what ab.sh needs ($WORK/ids.txt, the store under $WORK/data, nginx
# on port 8890). Build i > 0 serves $WORK/data-<name>, copied from
# $WORK/data when missing; build i listens on tracker 22122+i, storage
# 23000+i and HTTP 8880+i.
#
# The copies are not equal: here a fresh `cp -a` of the store cost the same
# build about 10% less CPU per GET than the store its uploads made
# (bench/RESULTS.md, 2026-12-05 fifth session). So run each comparison
# twice with the builds swapped, and compare a build with nginx only while
# it is the first (serving $WORK/data, as nginx does).
set -euo pipefail
work=${WORK:-/tmp/bench}; rounds=${ROUNDS:-8}; dur=${DUR:-4}; c=${C:-256}
bench=${BENCH:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/fdfs}
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
}
trap stop_all EXIT
nginx_master=$(cat "$work/nginx/nginx.pid")
systems=() # name:port:pids
# Copies first: a copy made while build 0 serves $WORK/data can catch one of
# its state files mid-rename and fail.
for spec in "${@:2}"; do
  dir=$work/data-${spec%%=*}
  [ -d "$dir" ] || cp -a "$work/data" "$dir"
done
i=0
for spec in "$@"; do
  name=${spec%%=*}; bin=${spec#*=}; dir=$work/data
  if [ "$i" -gt 0 ]; then dir=$work/data-$name; fi
  "$bin" server --base-path "$dir" --tracker-port $((22122 + i)) --storage-port $((23000 + i)) \
    --http-port $((8880 + i)) --log-level warn >"$work/server-$name.log" 2>&1 &
  PIDS+=($!)
  systems+=("$name:$((8880 + i)):$!")
  until curl -sf "http://127.0.0.1:$((8880 + i))/healthz" >/dev/null; do sleep 0.1; done
  i=$((i + 1))
done
systems+=("nginx:8890:$nginx_master,$(pgrep -P "$nginx_master" | paste -sd,)")
for more in ${MORE_NGINX:-}; do
  IFS=: read -r name port pidfile <<<"$more"
  master=$(cat "$pidfile")
  systems+=("$name:$port:$master,$(pgrep -P "$master" | paste -sd,)")
done
n=${#systems[@]}
for r in $(seq 1 "$rounds"); do
  for k in $(seq 0 $((n - 1))); do
    IFS=: read -r name port pids <<<"${systems[$(((k + r) % n))]}"
    "$bench" bench http --http "127.0.0.1:$port" --ids "$work/ids.txt" --duration 1 \
      --concurrency "$c" --quiet --json >/dev/null
    "$bench" bench http --http "127.0.0.1:$port" --ids "$work/ids.txt" --duration "$dur" \
      --concurrency "$c" --quiet --json --server-pid "$pids" |
      sed "s/^{/{\"round\":$r,\"sys\":\"$name\",/"
  done
done
