#!/usr/bin/env bash
# Create .venv from the lock (uv), installing uv first if this machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
PY="${MSP_PYTHON:-3.11}"
uv sync --frozen --python "$PY" --quiet
# pdftoppm/pdftotext are only needed to look at pages; WeasyPrint needs Pango (Debian: libpango-1.0-0).
