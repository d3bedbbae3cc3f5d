#!/usr/bin/env bash
# The field report's own upload method: one classic-tool process per file,
# 256 at a time, as in `xargs -P 256 -n 1 fdfs_upload_file client.conf`.
# Against any tracker (ours or the C one), with any tool set (ours or the
# C tools), on a file set of N files (default 2000) of uniform 8-128 KB.
#
#   TRACKER=127.0.0.1:22122 bench/seed-xargs.sh              # our tools
#   TOOLS=/path/to/fastdfs/client TRACKER=... bench/seed-xargs.sh   # the C tools
#
# Prints files/s of the xargs run and what one tool run costs: client CPU per
# run under the xargs load, and wall time and CPU per run over RUNS (200)
# sequential uploads of one 64 KB file.
#
#   N, P (parallel processes, 256), RUNS, TRACKER, FDFS (our binary; default
#   target/release/fdfs), TOOLS (directory with fdfs_upload_file; default:
#   links to $FDFS), FILES (directory of files to upload; default: made once
#   under /tmp/fdfs-xargs-files-N and reused, so rounds upload the same set),
#   SERVER_PIDS ("pid pid ..."; adds the servers' CPU per upload), JSON=1
#   (one JSON object instead of text, as bench/compare.sh collects them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${N:-2000}
p=${P:-256}
runs=${RUNS:-200}
tracker=${TRACKER:-127.0.0.1:22122}
fdfs=${FDFS:-$here/../target/release/fdfs}
files=${FILES:-/tmp/fdfs-xargs-files-$n}

work=$(mktemp -d /tmp/fdfs-xargs.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [ -z "${TOOLS:-}" ]; then
  [ -x "$fdfs" ] || (cd "$here/.." && cargo build --release -p fdfs)
  TOOLS=$work/bin
  mkdir -p "$TOOLS"
  "$fdfs" install-links "$TOOLS" >/dev/null
fi
tool=$TOOLS/fdfs_upload_file
[ -x "$tool" ] || { echo "seed-xargs.sh: no fdfs_upload_file in $TOOLS" >&2; exit 1; }

# A client.conf both tool sets read.
mkdir -p "$work/client"
cat >"$work/client.conf" <<EOF
connect_timeout = 5
network_timeout = 60
base_path = $work/client
tracker_server = $tracker
log_level = warn
use_connection_pool = false
load_fdfs_parameters_from_tracker = false
EOF

# The file set: sizes uniform in [8 KB, 128 KB], random contents.
if [ ! -f "$files/.complete" ]; then
  mkdir -p "$files"
  RANDOM=12345
  for ((i = 0; i < n; i++)); do
    size=$((8192 + (RANDOM * 32768 + RANDOM) % (131072 - 8192 + 1)))
    head -c "$size" /dev/urandom >"$files/f$i.bin"
  done
  touch "$files/.complete"
fi
one=$work/one-64k.bin
head -c 65536 /dev/urandom >"$one"

# Sets REPLY to the seconds of CPU (user + system) this shell's finished
# children have used so far (`times` must run in this shell, not a subshell).
children_cpu() {
  times >"$work/times"
  REPLY=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/);
                         printf "%.6f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$work/times")
}
# CPU microseconds the server processes have used so far.
server_cpu_us() {
  local total=0 pid t
  for pid in ${SERVER_PIDS:-}; do
    t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat")
    total=$((total + t))
  done
  echo $((total * 1000000 / $(getconf CLK_TCK)))
}
now() { date +%s.%N; }

"$tool" "$work/client.conf" "$one" >/dev/null || {
  echo "seed-xargs.sh: $tool cannot upload to $tracker" >&2
  exit 1
}

# The xargs method.
children_cpu
cpu0=$REPLY
srv0=$(server_cpu_us)
t0=$(now)
set +e
(cd "$files" && ls -- *.bin | xargs -P "$p" -n 1 "$tool" "$work/client.conf") \
  >"$work/ids.txt" 2>"$work/errors.txt"
set -e
t1=$(now)
srv1=$(server_cpu_us)
children_cpu
cpu1=$REPLY
ok=$(grep -c . "$work/ids.txt" || true)
errors=$((n - ok))

# One run at a time.
children_cpu
cpu2=$REPLY
t2=$(now)
seq_errors=0
for ((i = 0; i < runs; i++)); do
  "$tool" "$work/client.conf" "$one" >/dev/null 2>>"$work/errors.txt" || seq_errors=$((seq_errors + 1))
done
t3=$(now)
children_cpu
cpu3=$REPLY

awk -v n="$n" -v ok="$ok" -v err="$errors" -v p="$p" -v t0="$t0" -v t1="$t1" \
  -v c0="$cpu0" -v c1="$cpu1" -v s0="$srv0" -v s1="$srv1" -v srv="${SERVER_PIDS:-}" \
  -v runs="$runs" -v t2="$t2" -v t3="$t3" -v c2="$cpu2" -v c3="$cpu3" -v tool="$tool" \
  -v json="${JSON:-0}" -v seqerr="$seq_errors" 'BEGIN {
  secs = t1 - t0; fps = ok / secs; client = (c1 - c0) * 1000 / n
  server = (s1 - s0) / (ok > 0 ? ok : 1)
  wall1 = (t3 - t2) * 1000 / runs; cpu1run = (c3 - c2) * 1000 / runs
  if (json == 1) {
    printf "{\"mode\":\"xargs\",\"tool\":\"%s\",\"files\":%d,\"errors\":%d,\"parallel\":%d,", tool, ok, err, p
    printf "\"seconds\":%.3f,\"ops_per_sec\":%.1f,\"client_cpu_ms_per_run\":%.3f,", secs, fps, client
    if (srv != "") printf "\"server_cpu_us_per_op\":%.1f,", server
    printf "\"one_run_wall_ms\":%.3f,\"one_run_cpu_ms\":%.3f,\"one_run_errors\":%d}\n", wall1, cpu1run, seqerr
    exit
  }
  printf "tool: %s\n", tool
  printf "xargs -P %d -n 1: %d files (%d errors) in %.2f s = %.1f files/s\n", p, ok, err, secs, fps
  printf "  client CPU per run under load: %.3f ms\n", client
  if (srv != "") printf "  server CPU per upload: %.1f us\n", server
  printf "one at a time, %d runs of a 64 KB upload: %.3f ms wall, %.3f ms CPU per run (%d errors)\n",
    runs, wall1, cpu1run, seqerr
}'
if [ "$errors" -gt 0 ] || [ "$seq_errors" -gt 0 ]; then
  head -3 "$work/errors.txt" >&2
  exit 1
fi
