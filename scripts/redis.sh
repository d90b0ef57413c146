#!/bin/sh
# Start the embedded redis-server, unless one already answers on the configured port (e.g. the
# distribution's own service), in which case use that one and stay in the foreground for honcho.
# Its queue is kept on disk (append-only file under $DOCKYARD_DATA_DIR/redis): tasks queued when
# it stops are there when it starts again.
port="${REDIS_PORT:-6379}"
if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "redis already answers on 127.0.0.1:$port; using it"
    exec tail -f /dev/null
fi
mkdir -p "$DOCKYARD_DATA_DIR/redis"
exec redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly yes --appendfsync everysec \
    --dir "$DOCKYARD_DATA_DIR/redis"
