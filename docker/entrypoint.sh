#!/bin/sh
# Container entrypoint: wait for the database, apply pending migrations, then become the app.
#
#   ENTRYPOINT ["agor-db-entrypoint"]     CMD ["agor", "daemon"]
#
# Usable in any image that has agor-db on PATH. The database comes from the same variables as
# agor-db itself (AGOR_DATABASE_URL, DATABASE_URL, AGOR_DB_PATH). Knobs:
#   AGOR_WAIT_TIMEOUT=60      seconds `agor-db wait` may take before giving up (exit 5)
#   AGOR_MIGRATE_ON_START=0   skip `agor-db migrate` (e.g. when a one-shot job migrates instead)
#   AGOR_DB_BIN=agor-db       the agor-db executable to run
# A failed wait or migrate exits with agor-db's exit code and the app is never started. With no
# command, the entrypoint exits 0 after migrating (a one-shot migration job).
#
# Several replicas starting at once is safe: each waits, then `agor-db migrate` takes the migration
# lock (a PostgreSQL advisory lock, or a flock on the SQLite file); the first applies the pending
# migrations, the others wait for the lock (--lock-timeout / AGOR_LOCK_TIMEOUT, default 60 s), find
# nothing left to do and start their app.
set -u

agor_db=${AGOR_DB_BIN:-agor-db}
child=
stopping=

say() {
    printf 'agor-db-entrypoint: %s\n' "$*" >&2
}

# While agor-db runs, this shell stays in charge (it may be PID 1, which the kernel shields from
# signals it does not handle), so pass a stop request on instead of waiting out the timeout.
forward() {
    stopping=1
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
    fi
}
trap forward TERM INT HUP

# Run one agor-db step in the background and return its exit status, even if a signal interrupts
# `wait` (the status is then >128 while the child is still running: wait for it again).
step() {
    stop_if_asked
    "$agor_db" "$@" &
    child=$!
    while :; do
        wait "$child"
        status=$?
        if kill -0 "$child" 2>/dev/null; then
            continue
        fi
        break
    done
    child=
    stop_if_asked
    return "$status"
}

# agor-db's exit codes (agor-db --help), spelled out in the last line of the log.
meaning() {
    case $1 in
        1) echo "failure" ;;
        2) echo "usage error" ;;
        3) echo "drift between the journal and the migration files" ;;
        4) echo "timed out waiting for the migration lock" ;;
        5) echo "database unavailable" ;;
        *) echo "exit code $1" ;;
    esac
}

stop_if_asked() {
    if [ -n "$stopping" ]; then
        say "stopped by a signal; the app was not started"
        exit 143
    fi
}

if ! command -v "$agor_db" >/dev/null 2>&1; then
    say "cannot find '$agor_db' on PATH; install agor-db in this image or set AGOR_DB_BIN"
    exit 127
fi

step wait --timeout "${AGOR_WAIT_TIMEOUT:-60}"
status=$?
if [ "$status" -ne 0 ]; then
    say "agor-db wait failed with exit code $status ($(meaning "$status")); the app was not started"
    exit "$status"
fi

case ${AGOR_MIGRATE_ON_START:-1} in
    0 | false | FALSE | False | no | NO | No | off | OFF | Off)
        say "AGOR_MIGRATE_ON_START=${AGOR_MIGRATE_ON_START}: not migrating"
        ;;
    *)
        step migrate
        status=$?
        if [ "$status" -ne 0 ]; then
            say "agor-db migrate failed with exit code $status ($(meaning "$status")); the app was not started"
            exit "$status"
        fi
        ;;
esac

# From here on the app receives signals itself: exec replaces this shell, keeping its PID.
stop_if_asked
trap - TERM INT HUP
if [ "$#" -eq 0 ]; then
    say "no command given; the database is ready"
    exit 0
fi
exec "$@"
