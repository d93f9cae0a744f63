#!/usr/bin/env bash
# The production-shaped stack in Docker (docker-compose.yaml, docs/operations.md): Airflow with the
# CeleryExecutor, PostgreSQL and Redis, built from ./Dockerfile.
#   bash scripts/stack.sh up [--workers N]   make .env with fresh keys if missing, build, start
#   bash scripts/stack.sh scale N            run N Celery workers
#   bash scripts/stack.sh down               stop (the database volume is kept)
#   bash scripts/stack.sh password           the UI's admin password (simple auth manager)
# Keys are generated on this machine into .env (mode 600, never committed); in production they
# and every connection come from the secrets backend instead (docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v docker >/dev/null 2>&1 || { echo "stack.sh: docker is not installed" >&2; exit 1; }

ensure_env() {
  if [ ! -f .env ]; then
    (umask 077 && python3 - > .env <<'PY'
import base64, os, secrets
print(f"AIRFLOW_UID={os.getuid()}")
print(f"AIRFLOW__CORE__FERNET_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
print(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}")
print(f"AIRFLOW__API__SECRET_KEY={secrets.token_urlsafe(32)}")
PY
    )
    echo "stack.sh: wrote .env with fresh keys (keep it out of git; losing the Fernet key makes stored connections unreadable)"
  fi
  if git check-ignore -q .env 2>/dev/null; then :; else
    echo "stack.sh: warning: .env is not ignored by git: add it to .gitignore" >&2
  fi
  mkdir -p logs config var
}

case "${1:-up}" in
  up)
    workers=1
    if [ "${2:-}" = "--workers" ]; then workers="${3:?--workers needs a number}"; fi
    ensure_env
    docker compose build
    docker compose up -d --scale airflow-worker="$workers"
    echo "UI and REST API: http://localhost:${AIRFLOW_API_PORT:-8080} (bash scripts/stack.sh password)"
    ;;
  scale)
    docker compose up -d --no-recreate --scale airflow-worker="${2:?scale needs a number}"
    ;;
  down)
    docker compose down
    ;;
  password)
    cat config/simple_auth_manager_passwords.json.generated
    echo
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
