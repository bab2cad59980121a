#!/usr/bin/env bash
# The offline GPU kit's entry point (benchmarks/gpu_bundle.py builds the folder this sits in):
#   bash gpu_check.sh [--device cuda|cpu] [--results FILE] [--all-wheels]
# Installs the kit's wheels that this machine lacks (--all-wheels: every one) into a temporary directory,
# puts it and the kit's sources first on the path, and runs benchmarks/gpu_check.py, which writes one
# results file. Needs no network. PYTHON picks the interpreter (default: python3).
set -euo pipefail
kit="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"
all=0
args=()
for a in "$@"; do
  if [ "$a" = "--all-wheels" ]; then all=1; else args+=("$a"); fi
done
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
wheels="$("$py" - "$kit/wheels" "$all" <<'PYEOF'
import importlib.metadata as md
import pathlib
import sys

for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    try:
        md.version(wheel.name.split("-")[0])
        installed = sys.argv[2] != "1"
    except md.PackageNotFoundError:
        installed = False
    if not installed:
        print(wheel)
PYEOF
)"
if [ -n "$wheels" ]; then
  # shellcheck disable=SC2086  # one wheel path per word
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" $wheels
fi
export PYTHONPATH="$site:$kit/src${PYTHONPATH:+:$PYTHONPATH}" LMFORGE_DATA="$kit/data" PYTHONUNBUFFERED=1
cd "$kit/src"
exec "$py" -m benchmarks.gpu_check --model "$kit/model" --site "$site" "${args[@]}"
