#!/usr/bin/env bash
# Render the demo customers' reports to PNG pages (var/pages/<CUSTOMER>-<n>.png) with the current
# templates, from the store `bash scripts/demo.sh` fills. Needs pdftoppm (apt-get install poppler-utils).
#   bash scripts/render_pages.sh                       # latest week, all customers
#   bash scripts/render_pages.sh --customers ACME FXTR --dpi 110
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/bootstrap.sh
export PYTHONPATH="$PWD/plugins:$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the product; the root holds devtools/ (simulators, demo)
exec .venv/bin/python -m devtools.render_pages "$@"
