# The environment of `make run` (sourced by scripts/run.sh and scripts/manage.sh): each setting
# taken from the caller's environment where given, the embedded defaults otherwise, so a command
# run beside a stack started with other ports or another data directory talks to that stack.
export DOCKYARD_DATA_DIR="${DOCKYARD_DATA_DIR:-$PWD/var}"
export REGISTRY_CONFIG_FILE="${REGISTRY_CONFIG_FILE:-$DOCKYARD_DATA_DIR/registry.yml}"
# One address for everything (the front: nginx): /v2/ to the registry, which nginx asks the
# portal about before a manifest PUT or DELETE; the rest to the portal. Behind it, gunicorn and
# the registry listen on loopback ports of their own.
export PORTAL_LISTEN="${PORTAL_LISTEN:-127.0.0.1:8000}"
export PORTAL_URL="${PORTAL_URL:-http://$PORTAL_LISTEN}"
export WEB_LISTEN="${WEB_LISTEN:-127.0.0.1:8001}"
export REGISTRY_LISTEN="${REGISTRY_LISTEN:-127.0.0.1:5000}"
export REGISTRY_URL="${REGISTRY_URL:-http://$REGISTRY_LISTEN}"
export REGISTRY_PUBLIC_HOST="${REGISTRY_PUBLIC_HOST:-$PORTAL_LISTEN}"
# Every request reaches the portal through nginx, which names the client: trust it to.
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
export LOG_FORMAT="${LOG_FORMAT:-plain}"  # a terminal, not a log collector
