#!/usr/bin/env bash
# `make web`: the web process alone. In debug, Django's development server, which
# serves static/ itself. Otherwise (DJANGO_DEBUG=0, or a DATABASE_URL without
# DJANGO_DEBUG) gunicorn, after collectstatic: the production storage answers 500
# for any page whose CSS or JavaScript has no entry in STATIC_ROOT's manifest yet.
# BIND (default 127.0.0.1:$PORT) and gunicorn's own WEB_CONCURRENCY apply.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PORT=${PORT:-8000}

debug=$("$PY" -c 'import config.settings as s; print(int(s.DEBUG))' | tail -n 1)
if [ "$debug" = 1 ]; then
  exec "$PY" manage.py runserver "127.0.0.1:$PORT"
fi
"$PY" manage.py collectstatic --noinput --verbosity 0
exec "$VENV/bin/gunicorn" config.wsgi:application --bind "${BIND:-127.0.0.1:$PORT}" \
  --access-logfile - --workers "${WEB_CONCURRENCY:-3}"
