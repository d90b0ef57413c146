#!/usr/bin/env bash
# `make run`: the embedded setup (SQLite, local redis-server and docker-registry) under honcho,
# served as in production (gunicorn, static files by WhiteNoise, DEBUG off), each process
# restarted when it dies (scripts/forever.sh). `DJANGO_DEBUG=true make run` for development.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/env.sh
PY=.venv/bin/python
mkdir -p "$DOCKYARD_DATA_DIR"

# Debian starts its own docker-registry service (on :5000, without our auth) where systemd runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    echo "stopping Debian's docker-registry service: the portal runs its own registry on :5000"
    systemctl stop docker-registry
fi

$PY manage.py migrate --no-input >/dev/null
$PY manage.py collectstatic --no-input -v0
admin_line="$($PY manage.py ensure_admin)"
$PY manage.py registry_config
DJANGO_SETTINGS_MODULE=portal.settings $PY -c '
import os, django
from pathlib import Path
django.setup()
from django.conf import settings
from portal.front import write_config
host, _, port = os.environ["PORTAL_LISTEN"].rpartition(":")
write_config(Path(os.environ["DOCKYARD_DATA_DIR"]) / "front", {
    "PORTAL_UPSTREAM": os.environ["WEB_LISTEN"], "REGISTRY_UPSTREAM": os.environ["REGISTRY_LISTEN"],
    "LISTEN_PORT": port, "STATIC_ROOT": str(settings.STATIC_ROOT)}, listen_host=host)
'
$PY manage.py sample_image "$DOCKYARD_DATA_DIR/sample-image" --tag latest >/dev/null

read -r portal_url registry_host < <(DJANGO_SETTINGS_MODULE=portal.settings $PY -c \
    'import django; django.setup(); from django.conf import settings as s; print(s.PORTAL_URL, s.REGISTRY_PUBLIC_HOST)')
admin_user="${DJANGO_SUPERUSER_USERNAME:-admin}"
password='<admin password>'
if [[ "$admin_line" == *"password: "* ]]; then password="${admin_line##*password: }"; password="${password%%$'\n'*}"; fi
if [[ -n "${DJANGO_SUPERUSER_PASSWORD:-}" ]]; then password="$DJANGO_SUPERUSER_PASSWORD"; fi

admin_line="${admin_line//$'\n'/$'\n'  }"  # its second line indented like the first

cat <<MSG

  Dockyard is starting (Ctrl-C stops everything; a process that dies is started again).

  Portal:    $portal_url/
  Admin:     $portal_url/admin/
  Registry:  http://$registry_host/v2/  (the same address: nginx, the front, passes /v2/ to
             the registry and asks the portal about pushes and deletes that a policy covers)
  $admin_line

  Push the sample image (made locally, nothing downloaded):
    skopeo copy --dest-tls-verify=false --dest-creds '$admin_user:$password' \\
      oci:$DOCKYARD_DATA_DIR/sample-image:latest docker://$registry_host/$admin_user/hello:latest

MSG
exec .venv/bin/honcho start -f Procfile
