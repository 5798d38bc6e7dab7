#!/usr/bin/env bash
# `make run`: migrate, load the demo, start the workers and the web server, and print
# the address and the logins once the server answers. Ctrl+C stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
PORT=${PORT:-8000}
JURY_QUEUES=${DEMO_JURY_QUEUES:-jury.demo-smollm2-a,jury.demo-smollm2-b,jury.demo-smollm2-c}
URL="http://127.0.0.1:$PORT/"
mkdir -p var
pids=()

web=""
stop() {
  trap - EXIT INT TERM
  if [ -n "$web" ] || [ ${#pids[@]} -gt 0 ]; then
    echo
    echo "Stopping web and workers"
    [ -n "$web" ] && kill "$web" 2>/dev/null
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null || true
  fi
}
trap stop EXIT INT TERM

echo "Migrating the database"
"$PY" manage.py migrate --noinput -v 0
echo "Loading the demo"
"$PY" manage.py seed_demo

echo "Starting the worker (imports, exports, reports), the demo jury's worker and beat"
"$VENV/bin/celery" -q -A config worker -Q default --loglevel=WARNING --concurrency=2 \
  -n "default-$$@%h" &
pids+=($!)
"$VENV/bin/celery" -q -A config worker -Q "$JURY_QUEUES" --pool=solo --loglevel=WARNING \
  -n "jury-$$@%h" &
pids+=($!)
# Beat sends the reaper, which queues again the work of a worker that was lost.
"$VENV/bin/celery" -q -A config beat --loglevel=WARNING \
  --schedule "${AEGIS_DATA_DIR:-var}/celerybeat-schedule" &
pids+=($!)
echo "Starting the web server on 127.0.0.1:$PORT"
# (Its autoreloader runs the server in a child; stopping the parent stops both.)
"$PY" manage.py runserver "127.0.0.1:$PORT" &
web=$!

# The address is printed only once the server answers it.
for _ in $(seq 1 120); do
  if ! kill -0 "$web" 2>/dev/null; then
    echo "The web server stopped before it answered (is port $PORT taken? PORT=8001 make run)."
    exit 1
  fi
  "$PY" - "$URL" <<'PY' && break
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "accounts/login/", timeout=2)
except Exception:
    sys.exit(1)
PY
  sleep 0.5
done

# And once both workers say they listen (jury.presence), so the first import or
# jury run does not wait for them, and their start-up lines come before the address.
first_jury_queue=${JURY_QUEUES%%,*}
for _ in $(seq 1 30); do
  "$PY" manage.py shell -v 0 -c "
import sys
from jury.presence import queue_listeners
found = queue_listeners(['default', '$first_jury_queue'])
sys.exit(0 if all(w is not None and w.listening for w in found.values()) else 1)
" 2>/dev/null && break
  sleep 1
done

cat <<EOF

  Aegis Studio is at $URL   (Ctrl+C stops web and workers)

  Logins (password for all: aegis-demo)
    annotators  annotator1 .. annotator12   label the 'demo' batch
    lead        lead                        batches, agreement, adjudication, jury
    admin       admin                       also exports and the Django admin

EOF
wait "$web"
