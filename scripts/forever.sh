#!/usr/bin/env bash
# Keep one process of `make run` alive: when it dies (a crash, an out-of-memory kill, `kill -9`),
# start it again after a pause that doubles while it keeps dying young (1 s … 30 s). TERM or INT
# (Ctrl-C through honcho) stops the process and this loop. honcho stops everything when any of
# its processes exits; this loop never exits on its own, so one crash stays one restart.
name="$1"
shift
child=0
stop() {
    if [[ $child -ne 0 ]]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    exit 0
}
trap stop TERM INT
pause=1
while true; do
    started=$SECONDS
    "$@" &
    child=$!
    wait "$child"
    rc=$?
    child=0
    if (( SECONDS - started > 60 )); then pause=1; fi
    echo "[$name] exited with status $rc; starting it again in ${pause}s" >&2
    sleep "$pause" &
    wait $!
    pause=$(( pause < 16 ? pause * 2 : 30 ))
done
