"""Wait until a database can be migrated: the first step of the container entrypoint and of `just db-up`.

A container usually starts before its database does (or before a volume is mounted), so every probe
failure is retried until the deadline, even a refused login: the official postgres image creates the
role and database in a temporary server that is restarted afterwards, and a managed database may still
be provisioning them. The final message says which of those it was, so "wrong password" is not
mistaken for "server down".

Drivers are imported inside the probes: waiting on SQLite never imports psycopg.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..core.errors import DatabaseUnavailable, one_line
from ..core.urls import DEFAULT_SQLITE_PATH, DatabaseUrl, redact

Cause = Literal["ready", "unreachable", "starting", "recovery", "standby", "auth", "no-database", "timeout", "unusable"]
# A hot standby answers every probe the same way until someone promotes it: waiting cannot fix it.
FINAL: frozenset[Cause] = frozenset({"standby"})

# libpq refuses connect_timeout below 2 s; a probe never waits longer than this either, so a
# blackholed host is retried (and reported) at least every few seconds.
MIN_CONNECT_TIMEOUT = 2
MAX_CONNECT_TIMEOUT = 10
# Progress lines: always when the reason changes, otherwise at most this often.
REPORT_EVERY = 5.0

HINTS: dict[Cause, str] = {
    "unreachable": "nothing accepted connections for the whole wait: is the server running, and are the "
    "host and port right? (in compose, the host is the service name, not localhost)",
    "starting": "the server was still starting up or shutting down when the wait ended; raise --timeout "
    "(or AGOR_WAIT_TIMEOUT)",
    "recovery": "target_session_attrs asked for a primary (read-write) but every host was a standby for the "
    "whole wait: is a failover still in progress?",
    "standby": "a hot standby does not become writable by waiting; point --database-url at the primary, or "
    "list every host with target_session_attrs=read-write so that libpq picks whichever is primary",
    "auth": "the server is up but refused the login for the whole wait: the user name or password is wrong, "
    "or the role is still being created; check the credentials in the URL",
    "no-database": "the server is up but the database does not exist (it may still be being created); "
    "create it or fix its name in the URL",
    "timeout": "the server did not answer in time; is the host reachable from here?",
    "unusable": "the SQLite location did not become usable (a volume not mounted yet?); fix the path or "
    "its permissions",
}


@dataclass(frozen=True)
class Probe:
    """One look at the database: ready or not, what was seen, and why (for the final message)."""

    ready: bool
    detail: str
    cause: Cause


@dataclass(frozen=True)
class Attempt:
    number: int
    elapsed: float
    probe: Probe


@dataclass(frozen=True)
class Ready:
    attempts: int
    elapsed: float
    detail: str


def wait_until_ready(
    url: DatabaseUrl,
    *,
    timeout: float,
    interval: float,
    on_retry: Callable[[Attempt], None] = lambda _attempt: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Ready:
    """Probe until ready; raise DatabaseUnavailable (exit 5) with the last reason once ``timeout`` passes.

    There is always at least one probe, and one more right at the deadline, so ``--timeout 0`` is a
    single check.
    """
    probe_once = _probe_postgres if url.dialect == "postgres" else _probe_sqlite
    started = clock()
    deadline = started + timeout
    number = 0
    while True:
        number += 1
        probe = probe_once(url, deadline - clock())
        elapsed = clock() - started
        if probe.ready:
            return Ready(number, elapsed, probe.detail)
        if probe.cause in FINAL:
            raise DatabaseUnavailable(f"{url.display}: {probe.detail}", hint=HINTS.get(probe.cause))
        if clock() >= deadline:
            raise _gave_up(url, timeout, Attempt(number, elapsed, probe))
        on_retry(Attempt(number, elapsed, probe))
        sleep(max(0.0, min(interval, deadline - clock())))


def _gave_up(url: DatabaseUrl, timeout: float, last: Attempt) -> DatabaseUnavailable:
    attempts = f"{last.number} attempt" + ("" if last.number == 1 else "s")
    return DatabaseUnavailable(
        f"{url.display} was not ready after {timeout:g}s ({attempts}); last error: {last.probe.detail}",
        hint=HINTS.get(last.probe.cause),
    )


# -- PostgreSQL ---------------------------------------------------------------------------------


def _probe_postgres(url: DatabaseUrl, remaining: float) -> Probe:
    from ..drivers.postgres import connect

    connect_timeout = min(MAX_CONNECT_TIMEOUT, max(MIN_CONNECT_TIMEOUT, math.ceil(remaining)))
    try:
        # UrlError (a URL libpq cannot read) is not caught: it will not fix itself by waiting.
        conn = connect(url, connect_timeout=connect_timeout)
    except DatabaseUnavailable as exc:
        text = _without_prefix(exc.message, f"cannot connect to {url.display}: ")
        return Probe(False, text, classify_postgres_error(text))
    import psycopg

    try:
        row = conn.execute("SELECT pg_is_in_recovery(), current_setting('server_version')").fetchone()
    except psycopg.Error as exc:
        text = redact(one_line(exc), url.secrets)
        return Probe(False, text, classify_postgres_error(text))
    finally:
        conn.close()
    assert row is not None
    in_recovery, version = bool(row[0]), str(row[1])
    if in_recovery:
        detail = f"PostgreSQL {version} is a hot standby (read-only replica, pg_is_in_recovery() is true)"
        return Probe(False, detail, "standby")
    return Probe(True, f"PostgreSQL {version} accepts connections and is out of recovery", "ready")


def classify_postgres_error(text: str) -> Cause:
    """Why a connection failed, from libpq's message (its wording has been stable for many releases)."""
    lowered = text.lower()
    if "starting up" in lowered or "shutting down" in lowered or "in recovery mode" in lowered:
        return "starting"
    if "session is read-only" in lowered or "hot standby mode" in lowered or "is not the primary" in lowered:
        return "recovery"  # target_session_attrs found only standbys: a failover may still promote one
    if (
        "password authentication failed" in lowered
        or "no password supplied" in lowered
        or "authentication failed" in lowered
        or ("role" in lowered and "does not exist" in lowered)
    ):
        return "auth"
    if "database" in lowered and "does not exist" in lowered:
        return "no-database"
    if "timeout" in lowered or "timed out" in lowered:
        return "timeout"
    return "unreachable"


def _without_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text


# -- SQLite -------------------------------------------------------------------------------------


def _probe_sqlite(url: DatabaseUrl, remaining: float) -> Probe:
    assert url.path is not None
    path = url.path
    if url.is_memory:
        return Probe(True, "an in-memory SQLite database is always ready", "ready")
    if path.is_dir():
        return Probe(False, f"{path} is a directory, not a SQLite database file", "unusable")
    if path.exists():
        return _probe_sqlite_file(path)
    parent = path.parent
    if parent.is_dir():
        if os.access(parent, os.W_OK | os.X_OK):
            return Probe(True, f"{path} does not exist yet; migrate will create it in {parent}", "ready")
        return Probe(False, f"{path} does not exist and its directory {parent} is not writable", "unusable")
    # agor-db creates the default ~/.agor itself (as Agor does); any other missing directory is
    # more likely a volume that is not mounted yet.
    if url.source == "default" or str(path) == os.path.expanduser(DEFAULT_SQLITE_PATH):
        ancestor = _nearest_existing(parent)
        if os.access(ancestor, os.W_OK | os.X_OK):
            return Probe(True, f"{path} does not exist yet; migrate will create it and {parent}", "ready")
    return Probe(False, f"the directory {parent} does not exist (a volume not mounted yet?)", "unusable")


def _probe_sqlite_file(path: Path) -> Probe:
    import apsw

    if not os.access(path, os.R_OK):
        return Probe(False, f"{path} exists but is not readable by this user", "unusable")
    try:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    except apsw.Error as exc:
        return Probe(False, f"cannot open {path}: {exc}", "unusable")
    try:
        conn.setbusytimeout(1000)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    except apsw.NotADBError as exc:
        return Probe(False, f"{path} is not a SQLite database ({exc})", "unusable")
    except apsw.Error as exc:
        return Probe(False, f"cannot read {path}: {exc}", "unusable")
    finally:
        conn.close()
    writable = os.access(path, os.W_OK)
    note = "" if writable else " (but read-only for this user: migrate will fail)"
    return Probe(True, f"{path} is a readable SQLite database{note}", "ready")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
