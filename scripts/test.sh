#!/usr/bin/env bash
# The test suite: installs, then runs pytest (unit, simulator and end-to-end DAG tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m pytest "$@"
