#!/usr/bin/env bash
# The SIGKILL campaign (see devtools/chaos.py): kill the pipeline's worker during
# extract, render and each delivery, re-run it, and count duplicates, losses and corrupt files.
#
#   bash scripts/kill_campaign.sh                       # 200 iterations, seed 1
#   bash scripts/kill_campaign.sh --iterations 50 --seed 7 [--customers ACME,BRVO] [--max-minutes 30]
#
# Starts its own simulators and SMTP sink on free loopback ports; everything goes to a temporary
# folder (or --keep DIR). Exits non-zero if any duplicate, loss, corrupt file or ledger error is seen.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
exec .venv/bin/python -m devtools.chaos "$@"
