#!/usr/bin/env bash
# Runs every test of the workspace. The interop tests drive our servers with
# the independent PyPI client py3fdfs, and the metrics test parses /metrics
# with prometheus-client's OpenMetrics parser, so both are installed first
# when missing; those tests fail (never skip) if they still cannot be imported.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -c 'import fdfs_client' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check py3fdfs==2.2.0
fi
if ! python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check prometheus-client==0.26.0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (the last per-binary line is often an
# empty doc-test run).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
