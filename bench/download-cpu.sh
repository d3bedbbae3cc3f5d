#!/usr/bin/env bash
# Client and server CPU per binary-protocol download: runs `fdfs bench
# download` and divides the server processes' utime + stime (from
# /proc/PID/stat, around the run) and the client's (from /usr/bin/time) by
# the downloads done. See bench/RESULTS.md.
#
#   TRACKER=127.0.0.1:22122 IDS=/tmp/ids SECS=6 bench/download-cpu.sh PID [PID ...]
#   (ours: the `fdfs server` pid; C: the fdfs_trackerd and fdfs_storaged pids)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fdfs=${FDFS:-$here/../target/release/fdfs}
[ $# -gt 0 ] || { echo "usage: TRACKER=host:port IDS=file $0 SERVER_PID..." >&2; exit 2; }
tick=$(getconf CLK_TCK)
ticks() { local s=0 f; for p in "$@"; do read -r -a f <"/proc/$p/stat"; s=$((s + f[13] + f[14])); done; echo "$s"; }
out=$(mktemp -d)
a=$(ticks "$@")
/usr/bin/time -f "%U %S" -o "$out/time" "$fdfs" bench download --tracker "${TRACKER:?}" \
  --ids "${IDS:?}" --duration "${SECS:-6}" --concurrency "${C:-256}" --json --quiet >"$out/json"
b=$(ticks "$@")
read -r user sys <"$out/time"
python3 - "$out/json" "$a" "$b" "$tick" "$user" "$sys" <<'PY'
import json, sys
path, a, b, tick, user, sys_ = sys.argv[1:]
d = json.load(open(path))
n = d["ops"]
server = (int(b) - int(a)) / int(tick)
client = float(user) + float(sys_)
print(f"downloads/s={d['ops_per_sec']} errors={d['errors']} "
      f"server_us_per_download={server * 1e6 / n:.1f} client_us_per_download={client * 1e6 / n:.1f}")
PY
rm -rf "$out"
