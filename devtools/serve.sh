#!/usr/bin/env bash
# `make serve`: Tally as in production. Migrates, then runs gunicorn with several workers
# against PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), from the environment or .env.
# With DATABASE_MIGRATION_URL, migrations run as that role (the owner) and the app as
# DATABASE_URL's, granted only what it needs (grant-app-role).
set -euo pipefail
cd "$(dirname "$0")/.."
set -a; [ -f .env ] && . ./.env; set +a

fail() { echo "make serve: $*" >&2; exit 2; }
case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*|postgresql+psycopg://*) ;;
  *) fail "set DATABASE_URL to your PostgreSQL database, e.g. postgresql://tally@db.internal/tally" ;;
esac
[ -n "${REDIS_URL:-}" ] || fail "set REDIS_URL, e.g. redis://127.0.0.1:6379/0 (every worker shares its rate limits)"
[ -n "${SECRET_KEY:-}" ] || fail "set SECRET_KEY (every worker and server signs sessions and CSRF tokens with it)"

if [ -n "${DATABASE_MIGRATION_URL:-}" ]; then
  # Least privilege: migrations run as the tables' owner; the app runs as DATABASE_URL's
  # role, which may only read and insert into the audit log (models/roles.py).
  case "$DATABASE_MIGRATION_URL" in
    postgres://*|postgresql://*|postgresql+psycopg://*) ;;
    *) fail "DATABASE_MIGRATION_URL must be a PostgreSQL URL (the tables' owner)" ;;
  esac
  app_role=$(.venv/bin/python -c 'import sys; from urllib.parse import urlsplit, unquote; print(unquote(urlsplit(sys.argv[1]).username or ""))' "$DATABASE_URL")
  [ -n "$app_role" ] || fail "DATABASE_URL must name the role the app runs as (postgresql://tally_app@...)"
  DATABASE_URL="$DATABASE_MIGRATION_URL" .venv/bin/flask --app app db upgrade
  DATABASE_URL="$DATABASE_MIGRATION_URL" .venv/bin/flask --app app grant-app-role "$app_role"
else
  .venv/bin/flask --app app db upgrade
fi
# gunicorn.conf.py: threaded workers (WEB_CONCURRENCY x WEB_THREADS), --preload, BIND, logs.
exec .venv/bin/gunicorn --config gunicorn.conf.py
