#!/bin/sh
# The container's entrypoint, and the way to serve from a checkout: apply migrations
# (waiting for the database to accept connections), collect static files and compile the
# translations, then replace this shell with gunicorn. Arguments, if any, run instead of
# gunicorn after the migrations (e.g. `manage.py createsuperuser`).
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

attempt=1
until "$PYTHON" manage.py migrate --noinput; do
  if [ "$attempt" -ge "${MIGRATE_ATTEMPTS:-30}" ]; then
    echo "entrypoint: the database is still unreachable after $attempt attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

# The database cache's table, where bots' throttles count (without REDIS_URL): the
# migrations make it; this makes it again for a deployment that dropped REDIS_URL since.
"$PYTHON" manage.py createcachetable

# Static files for WhiteNoise, into STATIC_ROOT (gunicorn serves none without them), and
# the compiled translation catalogues. The image builds both (and sets COLLECTSTATIC=0);
# a checkout does it here.
if [ "${COLLECTSTATIC:-1}" = "1" ]; then
  "$PYTHON" -m babel.messages.frontend --quiet compile --directory=locale --domain=django
  "$PYTHON" manage.py collectstatic --noinput --verbosity 0
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
exec "$PYTHON" -m gunicorn crm.wsgi:application --config gunicorn.conf.py
