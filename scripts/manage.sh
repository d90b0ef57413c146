#!/usr/bin/env bash
# manage.py beside a running `make run` stack, with the environment it was started with: give
# the same variables you gave `make run` (PORTAL_LISTEN, REDIS_PORT, DOCKYARD_DATA_DIR, …), e.g.
#   REDIS_PORT=16379 scripts/manage.sh registry_gc
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
exec .venv/bin/python manage.py "$@"
