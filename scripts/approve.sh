#!/usr/bin/env bash
# Approve or reject one customer's week from the command line, in the Airflow home scripts/airflow.sh uses:
#   bash scripts/approve.sh ACME 2026-11-16 approve [PDF_HASH]  |  reject REASON...
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m devtools.approve "$@"
