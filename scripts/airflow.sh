#!/usr/bin/env bash
# Airflow with scheduler and UI (airflow standalone), wired to the simulators and the SMTP sink.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
exec .venv/bin/python -m devtools.demo serve "$@"
