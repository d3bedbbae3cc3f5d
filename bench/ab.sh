#!/usr/bin/env bash
# Two builds of fastdfs-rs side by side (before/after a change): each round
# starts `fdfs server` of build A, then of build B (order alternated), on a
# fresh data directory, and runs the same bench client (build B's `fdfs
# bench`) against it: uploads, then downloads of those files for a fixed
# time. Server CPU per operation is the server process's utime + stime
# (/proc/PID/stat) around each phase, as bench/download-cpu.sh counts it.
#
#   A=/path/old/fdfs B=/path/new/fdfs ROUNDS=3 N=20000 C=256 DUR=6 bench/ab.sh
#
# Prints one line per phase and build, then the median of the rounds.
set -euo pipefail
A=${A:?build A (fdfs binary)}; B=${B:?build B (fdfs binary)}
N=${N:-20000}; C=${C:-256}; ROUNDS=${ROUNDS:-3}; DUR=${DUR:-6}
W=${WORK:-/tmp/fdfs-ab}; TP=${TRACKER_PORT:-42222}; SP=${STORAGE_PORT:-43222}
mkdir -p "$W"; : >"$W/results.txt"
ulimit -n 65536 2>/dev/null || true
tick=$(getconf CLK_TCK)
ticks() { local f; read -r -a f <"/proc/$1/stat"; echo $((f[13] + f[14])); }
ready() { # ready TRACKER: the tracker names an ACTIVE storage
  for _ in $(seq 1 600); do
    "$B" monitor --tracker "$1" 2>/dev/null | grep -q ACTIVE && return 0; sleep 0.1
  done; echo "server on $1 did not become ready" >&2; return 1
}
phase() { # phase NAME BUILD PID ARGS... -> "name build ops/s server_us/op errors"
  local name=$1 build=$2 pid=$3; shift 3
  local t0; t0=$(ticks "$pid")
  "$B" bench "$@" --tracker "127.0.0.1:$TP" --concurrency "$C" --json --quiet >"$W/phase.json"
  local t1; t1=$(ticks "$pid")
  python3 - "$W/phase.json" "$t0" "$t1" "$tick" "$name" "$build" <<'PY' | tee -a "$W/results.txt"
import json, sys
path, t0, t1, tick, name, build = sys.argv[1:]
d = json.load(open(path))
cpu_us = (int(t1) - int(t0)) / int(tick) * 1e6 / max(d["ops"], 1)
print(f"{name} {build} {d['ops_per_sec']:.0f} {cpu_us:.1f} {d['errors']}")
PY
}
run() { # run LABEL BINARY
  local label=$1 bin=$2 dir="$W/data-$1"
  rm -rf "$dir"; sync
  "$bin" server --base-path "$dir" --tracker-port "$TP" --storage-port "$SP" --http-port 0 \
    --log-level warn >"$W/server-$label.log" 2>&1 &
  local pid=$!
  ready "127.0.0.1:$TP"
  # The storage makes its 65,536 data directories in the background after
  # it starts serving: wait for the last one, or the first round pays for it.
  for _ in $(seq 1 600); do [ -d "$dir/storage/data/FF/FF" ] && break; sleep 0.1; done
  phase upload "$label" "$pid" upload --count "$N" --ids "$W/ids" --min-size 8192 --max-size 131072
  sync; sleep 1
  phase download "$label" "$pid" download --ids "$W/ids" --duration "$DUR"
  kill "$pid"; wait "$pid" || true
}
echo "phase build ops_per_sec server_us_per_op errors"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run A "$A"; run B "$B"; else run B "$B"; run A "$A"; fi
done
echo "median of $ROUNDS rounds:"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for name in ("upload", "download"):
    for build in ("A", "B"):
        sel = [r for r in rows if r[0] == name and r[1] == build]
        ops = statistics.median(float(r[2]) for r in sel)
        cpu = statistics.median(float(r[3]) for r in sel)
        spread = (min(float(r[2]) for r in sel), max(float(r[2]) for r in sel))
        print(f"{name:8} {build}: {ops:8.0f} ops/s (range {spread[0]:.0f}-{spread[1]:.0f}), "
              f"server {cpu:6.1f} us/op, errors {sum(int(r[4]) for r in sel)}")
PY
