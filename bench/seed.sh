#!/usr/bin/env bash
# The field-report scenario in one command: N files (default 100000) of
# uniform 8-128 KB at concurrency 256 are uploaded, read back over the binary
# protocol, then over HTTP; the report lands in bench/results/.
#
#   bench/seed.sh                      # against a running cluster on the defaults
#   N=20000 TRACKER=127.0.0.1:22122 HTTP=127.0.0.1:8888 bench/seed.sh
#   START=1 bench/seed.sh              # start `fdfs server` in a temp dir first
#
# Extra arguments go to `fdfs bench seed` (e.g. --verify, --files DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fdfs=${FDFS:-$here/../target/release/fdfs}
n=${N:-100000}
c=${C:-256}
tracker=${TRACKER:-127.0.0.1:22122}
http=${HTTP:-127.0.0.1:8888}
out=${OUT:-$here/results}
[ -x "$fdfs" ] || (cd "$here/.." && cargo build --release -p fdfs)
if [ "${START:-0}" = 1 ]; then
  work=$(mktemp -d /tmp/fdfs-seed.XXXXXX)
  "$fdfs" server --base-path "$work/data" --tracker-port "${tracker##*:}" \
    --http-port "${http##*:}" --log-level warn >"$work/server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
  until "$fdfs" upload --tracker "$tracker" /etc/hostname >/dev/null 2>&1; do sleep 0.5; done
fi
ulimit -n 65536 2>/dev/null || true
"$fdfs" bench seed --tracker "$tracker" --http "$http" --count "$n" --concurrency "$c" \
  --min-size 8192 --max-size 131072 --out "$out" "$@"
