#!/usr/bin/env bash
# Reproduces docs/status-page.png: a two-storage cluster on loopback
# (`fdfs server` plus a second storage with two store paths), some upload
# and download traffic from `fdfs bench`, and the status page served on
# the tracker's HTTP port captured by headless chromium while the traffic
# runs (real time, so the rate chart has points).
#
#   cargo build --release -p fdfs && scripts/status-page-screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
FDFS=${FDFS:-target/release/fdfs}
OUT=${1:-docs/status-page.png}
TRACKER_PORT=${TRACKER_PORT:-21122}
STORAGE_PORT=${STORAGE_PORT:-21000}
GATEWAY_PORT=${GATEWAY_PORT:-21888}
# The page is the same on the tracker's HTTP port and on the gateway.
PAGE_URL=${PAGE_URL:-http://127.0.0.1:${GATEWAY_PORT}/}
CAPTURE_MS=${CAPTURE_MS:-45000}

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$FDFS" server --base-path "$work/server" --tracker-port "$TRACKER_PORT" \
    --storage-port "$STORAGE_PORT" --http-port "$GATEWAY_PORT" --log-level warn 2>"$work/server.log" &
pids+=($!)

# Waits until N storages show ACTIVE on the page's JSON.
wait_active() {
    for _ in $(seq 1 180); do
        active=$(curl -sf "http://127.0.0.1:${GATEWAY_PORT}/status.json" | grep -o '"ACTIVE"' | wc -l || true)
        [ "$active" -ge "$1" ] && return 0
        sleep 1
    done
    echo "fewer than $1 storages ACTIVE" >&2
    return 1
}
# The group takes the embedded storage's shape first; the second storage
# may have more store paths, not fewer.
wait_active 1

mkdir -p "$work/storage2/p0" "$work/storage2/p1"
cat > "$work/storage2.conf" <<CONF
group_name = group1
bind_addr = 127.0.0.2
port = $STORAGE_PORT
base_path = $work/storage2
store_path_count = 2
store_path0 = $work/storage2/p0
store_path1 = $work/storage2/p1
tracker_server = 127.0.0.1:$TRACKER_PORT
heart_beat_interval = 2
stat_report_interval = 2
http.server_port = 0
log_level = warn
CONF
"$FDFS" storage -c "$work/storage2.conf" 2>"$work/storage2.log" &
pids+=($!)
wait_active 2

# Uploads first, then a read-mostly mix, while the browser watches.
(
    "$FDFS" bench upload --tracker "127.0.0.1:$TRACKER_PORT" --duration 15 \
        --concurrency 2 --ids "$work/ids" --quiet >/dev/null
    "$FDFS" bench mixed --tracker "127.0.0.1:$TRACKER_PORT" --duration 30 \
        --concurrency 2 --ids "$work/ids" --read-ratio 0.8 --quiet >/dev/null
) &
pids+=($!)

chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$work/chromium" --window-size=1280,900 \
    --timeout="$CAPTURE_MS" --screenshot="$OUT" "$PAGE_URL"
echo "wrote $OUT"
