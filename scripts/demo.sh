#!/usr/bin/env bash
# The demo: installs, then runs one Monday's reports for 12 customers end to end;
# with --qbr, the QBR packs of the last complete quarter instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
if [ "${1:-}" = "--qbr" ]; then  # the QBR packs of the last complete quarter (devtools/qbr_demo.py)
  shift
  exec .venv/bin/python -m devtools.demo qbr "$@"
fi
exec .venv/bin/python -m devtools.demo run "$@"
