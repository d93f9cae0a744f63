#!/usr/bin/env bash
# The benchmarks: installs, then prints one table (figure | value | reference | ratio | target | met?)
# and writes it to var/bench/latest.md. Takes about 10-15 minutes on 2 CPUs.
# Arguments go to `python -m benchmarks` (e.g. --only parse,render).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Compiled bytecode, as a deployed image has it, kept outside the source tree.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$PWD/var/bench/pycache}"
exec .venv/bin/python -m benchmarks "$@"
