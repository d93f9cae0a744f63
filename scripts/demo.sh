#!/usr/bin/env bash
# The demo: installs, then runs one Monday's reports for 12 customers end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
exec .venv/bin/python -m devtools.demo run "$@"
