#!/bin/sh
# Container entrypoint: wait for the database, apply pending migrations, then become the app.
#
#   ENTRYPOINT ["agor-db-entrypoint"]     CMD ["agor", "daemon"]
#
# The rule: it waits and migrates only when it is about to start an app, or was given no command.
#   (no command)                  wait, migrate, exit 0 (a one-shot migration job)
#   agor-db SUBCOMMAND ... | -h   runs exactly that agor-db command (also `--help`, `--version` alone),
#                                 with no implicit wait or migrate: `agor-db migrate --dry-run` stays dry
#   anything else (the app)       wait, migrate, then exec the app
# An empty command exits 2, a command that is not on PATH 127, one that is not executable 126, each
# with one line on stderr and before anything else runs.
#
# Usable in any image that has agor-db on PATH. The database comes from the same variables as
# agor-db itself (AGOR_DATABASE_URL, DATABASE_URL, AGOR_DB_PATH); one of them must be set: in a
# container the default (~/.agor/agor.db) would be a throwaway file, so the entrypoint refuses (exit 2)
# instead of silently migrating it. Opt into SQLite by naming the file: AGOR_DB_PATH=~/.agor/agor.db
# (and mount a volume at /home/agor/.agor). Knobs:
#   AGOR_WAIT_TIMEOUT=60      seconds `agor-db wait` may take before giving up (exit 5)
#   AGOR_MIGRATE_ON_START=0   skip `agor-db migrate` (e.g. when a one-shot job migrates instead)
#   AGOR_DB_BIN=agor-db       the agor-db executable to run
# A failed wait or migrate exits with agor-db's exit code and the app is never started.
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

# A regular file with an execute bit (`test -x` alone is true for root on any file, and a directory).
is_program() {
    [ -n "$(find -H "$1" -prune -type f \( -perm -u=x -o -perm -g=x -o -perm -o=x \) 2>/dev/null)" ]
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

# An agor-db command (or just its options: --help, --version) runs exactly as given. exec: agor-db
# then gets the stop signal itself and handles it (rollback, exit 143), also as PID 1.
if [ "$#" -gt 0 ]; then
    case $1 in
        "")
            say "the command is empty (\"\"); give an app to start, an agor-db command, or none to only migrate"
            exit 2
            ;;
        -*)
            exec "$agor_db" "$@"
            ;;
        "$agor_db" | agor-db | */agor-db)
            shift
            exec "$agor_db" "$@"
            ;;
    esac
    # Checked before waiting, so a typo fails at once instead of after a migration.
    case $1 in
        */*)
            if [ ! -e "$1" ]; then
                say "command not found: '$1' does not exist; nothing was run"
                exit 127
            elif [ ! -x "$1" ] || ! is_program "$1"; then
                say "cannot execute '$1': not an executable file; nothing was run"
                exit 126
            fi
            ;;
        *)
            if ! command -v "$1" >/dev/null 2>&1; then
                say "command not found: '$1' is not on PATH; nothing was run"
                exit 127
            fi
            ;;
    esac
fi

if [ -z "${AGOR_DATABASE_URL:-}" ] && [ -z "${DATABASE_URL:-}" ] && [ -z "${AGOR_DB_PATH:-}" ]; then
    say "no database configured: set DATABASE_URL (or AGOR_DATABASE_URL), or AGOR_DB_PATH=~/.agor/agor.db" \
        "to use SQLite on a volume at /home/agor/.agor; refusing to migrate a throwaway file in the container"
    exit 2
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
