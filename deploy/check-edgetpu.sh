#!/usr/bin/env bash
# For the first person with a Coral board: probes the Edge TPU, benchmarks it, compares it with
# the CPU, runs an exported model on it and the edgetpu tests, all into one report file to
# attach to a bug (python -m server.doctor --hardware-report).
#
#   deploy/check-edgetpu.sh [REPORT.json] [--photos DIR] [--edgetpu-lib PATH]
set -euo pipefail
app_dir=$(cd "$(dirname "$0")/.." && pwd)
report=${1:-edgetpu-report-$(date +%Y%m%d-%H%M%S).json}
[ $# -gt 0 ] && shift
case "$report" in /*) ;; *) report="$PWD/$report" ;; esac
python="$app_dir/.venv/bin/python"
[ -x "$python" ] || python=python3
status=0
(cd "$app_dir" && "$python" -m server.doctor --hardware-report "$report" "$@") || status=$?
echo "attach this file to the bug report: $report"
exit "$status"
