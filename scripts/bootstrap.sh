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
# WeasyPrint needs Pango (Debian: libpango-1.0-0). The review-page browser test drives Debian's
# Chromium through Playwright, and pdftoppm turns PDFs into pages: install them when missing (root).
if [ "${MSP_SKIP_APT:-}" != "1" ] && { ! command -v chromium >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; }; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium poppler-utils >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium poppler-utils >/dev/null 2>&1; } \
      || echo "bootstrap: could not install chromium/poppler-utils; browser tests will be skipped" >&2
  else
    echo "bootstrap: chromium or pdftoppm missing and not root; browser tests will be skipped" >&2
  fi
fi
