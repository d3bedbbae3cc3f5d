# Sourced by the bench scripts: caps the page cache (and memory) of a
# system under test with a memory cgroup of its own.
#
# Why: this machine is a VM whose balloon device reports free guest pages
# to the host (free page reporting), which takes them back. The first touch
# of such a page afterwards costs a fault on the host: measured here,
# 13.7 us per 4 KB page of fresh anonymous memory against 1.5 us when the
# same memory is touched again at once, and an 8 KB pwrite into a sparse
# file 23-28 us once the page cache grows into reported memory against
# 4.0-4.7 us when its pages are recycled (/tmp C loops, 2026-12-05). A
# server whose page cache keeps growing pays that in every write, and it is
# the host's price, not the server's. With the page cache of each system
# capped, the kernel recycles its own pages and both servers pay what they
# would on a machine without that balloon.
#
# memcg_join <name> <MB> <pid>...: moves the processes into cgroup
# fdfs-bench-<name> (cgroup v1 memory controller or cgroup v2) limited to MB.
# memcg_remove <name>: removes it once its processes are gone.
memcg_dir() {
  if [ -d /sys/fs/cgroup/memory ]; then
    echo "/sys/fs/cgroup/memory/fdfs-bench-$1"
  else
    echo "/sys/fs/cgroup/fdfs-bench-$1"
  fi
}
memcg_join() {
  local d; d=$(memcg_dir "$1"); local bytes=$(($2 << 20)); shift 2
  mkdir -p "$d" || { echo "memcg: cannot create $d" >&2; return 1; }
  if [ -f "$d/memory.limit_in_bytes" ]; then
    echo "$bytes" >"$d/memory.limit_in_bytes"
  else
    echo "$bytes" >"$d/memory.max"
  fi
  for p in "$@"; do echo "$p" >"$d/cgroup.procs"; done
}
memcg_remove() {
  local d; d=$(memcg_dir "$1")
  [ -d "$d" ] || return 0
  for _ in $(seq 1 50); do rmdir "$d" 2>/dev/null && return 0; sleep 0.1; done
  echo "memcg: $d still in use" >&2
}
