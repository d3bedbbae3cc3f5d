#!/usr/bin/env bash
# GET files/s of the fdfs HTTP gateway vs nginx-light serving the same store
# directory with a plain alias location. See bench/HTTP.md.
# Needs: target/release/fdfs, wrk, nginx (apt-get install -y nginx-light wrk).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fdfs=${FDFS:-$here/../../target/release/fdfs}
work=${WORK:-/tmp/bench}
secs=${SECS:-10}
rounds=${ROUNDS:-3}
mkdir -p "$work/nginx/logs"
if [ ! -s "$work/ids.txt" ]; then
  "$fdfs" server --base-path "$work/data" --http-port 8888 --log-level warn >"$work/server.log" 2>&1 &
  until "$fdfs" upload --tracker 127.0.0.1:22122 /etc/hostname >/dev/null 2>&1; do sleep 0.5; done
  "$fdfs" bench upload --count 2000 --concurrency 16 --min-size 8192 --max-size 131072 --ids "$work/ids.txt"
fi
sed "s|/tmp/bench|$work|g" "$here/nginx.conf" >"$work/nginx/nginx.conf"
[ -f "$work/nginx/nginx.pid" ] || nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
gw_pid=$(ss -ltnp | grep ':8888 ' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
for c in 64 256; do
  for r in $(seq 1 "$rounds"); do
    for port in 8888 8890; do
      if [ "$port" = 8888 ] && [ "$c" = 256 ] && [ "$r" = 1 ]; then
        (sleep $((secs / 2)); echo "gateway RSS at c=256: $(ps -o rss= -p "$gw_pid") KB") &
      fi
      out=$(IDS="$work/ids.txt" wrk -t2 -c"$c" -d"${secs}s" -s "$here/urls.lua" "http://127.0.0.1:$port")
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      lat=$(echo "$out" | awk '/Latency/ {print $2}')
      errs=$(echo "$out" | grep '^errors' || true)
      echo "port=$port c=$c round=$r req/s=$rps latency_avg=$lat $errs"
    done
  done
done
wait
