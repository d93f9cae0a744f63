#!/usr/bin/env bash
# Resend one customer's approved report on one channel, on purpose; the ledger records it.
#   bash scripts/resend.sh ACME 2026-11-16 email --reason "CTO asked for it again"
# Uses the deployment's Airflow configuration (AIRFLOW_HOME, connections, Variables) from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
exec .venv/bin/python -m msp_reports.resend "$@"
