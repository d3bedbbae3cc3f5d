#!/usr/bin/env bash
# Reproduces docs/status-page.png: a tracker and two storages of group1
# (two store paths each) on loopback, upload and download traffic from
# `fdfs upload` / `fdfs download`, and the status page on the tracker's HTTP port
# (`http.server_port`) captured by headless chromium while the traffic
# runs: scripts/cdp_screenshot.py lets the page poll for CAPTURE_SECS real
# seconds first, so the rate chart has points (`chromium --screenshot`
# shoots at load time).
#
#   cargo build --release -p fdfs && scripts/status-page-screenshot.sh [OUT.png]
#
# FDFS=target/debug/fdfs uses a debug build; KEEP=1 keeps the work
# directory (confs, logs) for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
FDFS=${FDFS:-target/release/fdfs}
OUT=${1:-docs/status-page.png}
# Below the ephemeral range, so tests running meanwhile cannot take them.
TRACKER_PORT=${TRACKER_PORT:-21122}
HTTP_PORT=${HTTP_PORT:-21080}
STORAGE_PORT=${STORAGE_PORT:-21000}
CAPTURE_SECS=${CAPTURE_SECS:-45}

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

mkdir -p "$work/tracker"
cat > "$work/tracker.conf" <<CONF
bind_addr = 127.0.0.1
port = $TRACKER_PORT
http.server_port = $HTTP_PORT
base_path = $work/tracker
reserved_storage_space = 1%
log_level = warn
CONF
"$FDFS" tracker -c "$work/tracker.conf" 2>"$work/tracker.log" &
pids+=($!)

for n in 1 2; do
    s="$work/storage$n"
    mkdir -p "$s/p0" "$s/p1"
    cat > "$s.conf" <<CONF
group_name = group1
bind_addr = 127.0.0.$((n + 1))
port = $STORAGE_PORT
base_path = $s
store_path_count = 2
store_path0 = $s/p0
store_path1 = $s/p1
tracker_server = 127.0.0.1:$TRACKER_PORT
heart_beat_interval = 2
stat_report_interval = 2
http.server_port = 0
log_level = warn
CONF
    "$FDFS" storage -c "$s.conf" 2>"$s.log" &
    pids+=($!)
done

# Both storages ACTIVE before the traffic starts.
for _ in $(seq 1 180); do
    active=$(curl -sf "http://127.0.0.1:$HTTP_PORT/status.json" | grep -o '"ACTIVE"' | wc -l || true)
    [ "$active" -ge 2 ] && break
    sleep 1
done

cat > "$work/client.conf" <<CONF
tracker_server = 127.0.0.1:$TRACKER_PORT
base_path = $work
CONF
# Uploads of 64 KB to 1 MB files, each read back twice, for a minute.
(
    end=$((SECONDS + 60))
    i=0
    while [ $SECONDS -lt $end ]; do
        i=$((i + 1))
        head -c $(( (i % 16 + 1) * 65536 )) /dev/urandom > "$work/file.bin"
        id=$("$FDFS" upload -c "$work/client.conf" "$work/file.bin" 2>>"$work/traffic.log") || continue
        "$FDFS" download -c "$work/client.conf" -o "$work/back.bin" "$id" 2>>"$work/traffic.log" || true
        "$FDFS" download -c "$work/client.conf" -o "$work/back.bin" "$id" 2>>"$work/traffic.log" || true
        sleep 0.2
    done
) &
pids+=($!)

python3 scripts/cdp_screenshot.py "http://127.0.0.1:$HTTP_PORT/" "$OUT" "$CAPTURE_SECS" 1280 900
