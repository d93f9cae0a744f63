#!/usr/bin/env bash
# The test suite: installs, then runs pytest (unit, simulator, real-Zabbix and end-to-end DAG tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/install_zabbix.sh  # a real Zabbix 6.0 for tests/zabbix_real (skipped without it, except in CI)
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
exec .venv/bin/python -m pytest "$@"
