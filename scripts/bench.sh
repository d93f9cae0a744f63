#!/usr/bin/env bash
# The benchmarks: installs, then prints one table (figure | value | reference | ratio | target | met?)
# and writes it to var/bench/latest.md. Takes about 10-15 minutes on 2 CPUs.
# Arguments go to `python -m benchmarks` (e.g. --only parse,render).
#
# `bash scripts/bench.sh waiting [--project <checkout>] [--customers N --minutes M]`: waiting for
# approval on the Celery stack (PostgreSQL on 127.0.0.1:5432 with trust auth, Redis on :6379), by
# default the short variant: 20 customers waiting 2 minutes (about 6 minutes in all). The full
# figures in docs/benchmarks.md are `--customers 100 --minutes 10` and `--customers 500 --minutes 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Compiled bytecode, as a deployed image has it, kept outside the source tree.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$PWD/var/bench/pycache}"
if [[ "${1:-}" == "waiting" ]]; then
  shift
  exec .venv/bin/python -m benchmarks.waiting --customers 20 --minutes 2 "$@"
fi
exec .venv/bin/python -m benchmarks "$@"
