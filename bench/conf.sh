# Sourced by the bench scripts.
# conf <template> <out> key=value...: the repository's classic conf with
# the given keys replaced (appended when the template lacks them).
conf() {
  local from=$1 to=$2; shift 2
  cp "$from" "$to"
  for kv in "$@"; do
    local k=${kv%%=*} v=${kv#*=}
    sed -i "s|^$k *=.*|$k = $v|" "$to"
    grep -q "^$k = " "$to" || echo "$k = $v" >>"$to"
  done
}
