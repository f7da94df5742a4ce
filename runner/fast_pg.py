"""Read the PostgreSQL journal through libpq directly, for the no-op ``migrate`` on container start.

Why this exists: on PostgreSQL nearly all of a no-op ``agor-db migrate`` used to be ``import psycopg``
(120-165 ms). This module loads the libpq that psycopg's binary wheel already ships (or the system's
``libpq.so.5``) through ctypes, connects with the same conninfo and connection defaults as the full
path, and reads the journal with one plain SELECT. The caller (``entry.py``) compares the rows with the
files through the very planner the full path uses.

What it must never do: write anything, or leave anything behind on a (possibly pooled) connection.
It sends one simple-protocol query: no prepared statement, no SET, no temporary object. Whenever
anything is unusual (libpq not found, a conninfo libpq refuses, several hosts, any connection or
query error, a standby, a journal outside the current schema) it returns None and the full CLI runs
as if this module had never been here. The one error it reports itself is a connection timeout
with a single address, which the full path reports in the very same words: handing over would make
an unreachable server cost two connect timeouts.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from .core.errors import DatabaseUnavailable
from .core.models import JOURNAL_TABLE
from .core.urls import DatabaseUrl

# Test hook: look for libpq only in this directory (tests point it at an empty one to simulate
# a missing libpq). Not meant for users.
LIBPQ_DIR_ENV = "AGOR_DB_LIBPQ_DIR"
APPLICATION_NAME = "agor-db"  # what drivers/postgres.py sets
DEFAULT_CONNECT_TIMEOUT = "10"  # drivers/postgres.py's default, applied only when the URL names none

_CONNECTION_BAD = 1
_POLL_FAILED, _POLL_READING, _POLL_WRITING, _POLL_OK = 0, 1, 2, 3
_TUPLES_OK = 2

# The journal must be the one the full path reads (found through search_path) and live in the
# current schema; the standby check hands a server in recovery to the full path. Asked before the
# journal is read, so that a database without one never logs "relation does not exist" on the server
# (every runner of a fresh deployment would).
_PROBE = f"""
SELECT pg_is_in_recovery(),
       (SELECT n.nspname = current_schema() FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass('{JOURNAL_TABLE}'))
"""
_JOURNAL = f"SELECT version, name, checksum FROM {JOURNAL_TABLE} ORDER BY version"


# libpq's default notice processor writes server notices to stderr; psycopg only logs them, so the
# fast path stays as quiet as the full one.
_NOTICE_PROCESSOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_IGNORE_NOTICE = _NOTICE_PROCESSOR(lambda _arg, _message: None)


def _candidates() -> list[str]:
    """libpq files to try, best first: the one psycopg's binary wheel ships, then the system's."""
    override = os.environ.get(LIBPQ_DIR_ENV)
    if override is not None:
        try:
            return [str(p) for p in sorted(Path(override).glob("libpq*.so*"))]
        except OSError:
            return []
    found: list[str] = []
    from importlib.util import find_spec

    try:
        spec = find_spec("psycopg_binary")  # locates the package without importing it
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        libs = Path(location).parent / "psycopg_binary.libs"
        found += [str(p) for p in sorted(libs.glob("libpq-*.so*"))]
    return [*found, "libpq.so.5"]


def load_libpq() -> ctypes.CDLL | None:
    for candidate in _candidates():
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        _declare(lib)
        return lib
    return None


def _declare(lib: ctypes.CDLL) -> None:
    p, c, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    for name, res, args in (
        ("PQconnectStartParams", p, [ctypes.POINTER(c), ctypes.POINTER(c), i]),
        ("PQconnectPoll", i, [p]),
        ("PQstatus", i, [p]),
        ("PQsocket", i, [p]),
        ("PQfinish", None, [p]),
        ("PQconninfo", p, [p]),
        ("PQconninfoFree", None, [p]),
        ("PQexec", p, [p, c]),
        ("PQresultStatus", i, [p]),
        ("PQntuples", i, [p]),
        ("PQnfields", i, [p]),
        ("PQgetisnull", i, [p, i, i]),
        ("PQgetvalue", c, [p, i, i]),
        ("PQclear", None, [p]),
        ("PQsetNoticeProcessor", p, [p, _NOTICE_PROCESSOR, p]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args


class _Option(ctypes.Structure):
    _fields_ = [
        ("keyword", ctypes.c_char_p),
        ("envvar", ctypes.c_char_p),
        ("compiled", ctypes.c_char_p),
        ("val", ctypes.c_char_p),
        ("label", ctypes.c_char_p),
        ("dispchar", ctypes.c_char_p),
        ("dispsize", ctypes.c_int),
    ]


def _effective(lib: ctypes.CDLL, conn: int) -> dict[str, str]:
    """The options libpq will use (URL, environment and defaults merged)."""
    raw = lib.PQconninfo(conn)
    if not raw:
        return {}
    out: dict[str, str] = {}
    try:
        options = ctypes.cast(raw, ctypes.POINTER(_Option))
        k = 0
        while options[k].keyword:
            if options[k].val is not None:
                out[options[k].keyword.decode()] = options[k].val.decode(errors="replace")
            k += 1
    finally:
        lib.PQconninfoFree(raw)
    return out


Row = tuple[int, str, str]


def read_journal(url: DatabaseUrl) -> list[Row] | None:
    """``(version, name, checksum)`` of every journal row, or None to hand over to the full CLI.

    Raises DatabaseUnavailable only for a timeout the full path would report in the same words."""
    lib = load_libpq()
    if lib is None or url.conninfo is None:
        return None
    # Our defaults come before the URL so that the URL's own values win, as in drivers/postgres.py.
    keys = [b"application_name", b"connect_timeout", b"dbname"]
    values = [APPLICATION_NAME.encode(), DEFAULT_CONNECT_TIMEOUT.encode(), url.conninfo.encode()]
    kw = (ctypes.c_char_p * 4)(*keys, None)
    vals = (ctypes.c_char_p * 4)(*values, None)
    conn = lib.PQconnectStartParams(kw, vals, 1)
    if not conn:
        return None
    try:
        lib.PQsetNoticeProcessor(conn, _IGNORE_NOTICE, None)
        if lib.PQstatus(conn) == _CONNECTION_BAD:
            return None  # a conninfo libpq refuses: the full CLI explains it
        options = _effective(lib, conn)
        if "," in options.get("host", "") or "," in options.get("hostaddr", ""):
            return None  # several hosts: psycopg tries them one by one with its own messages
        timeout = _timeout(options.get("connect_timeout"))
        if timeout is None or not _poll(lib, conn, timeout, url, options):
            return None
        return _select(lib, conn)
    finally:
        lib.PQfinish(conn)


def _timeout(value: str | None) -> float | None:
    """psycopg's reading of connect_timeout: 0 or less means 130 s, at least 2 s."""
    try:
        seconds = int(float(value if value is not None else DEFAULT_CONNECT_TIMEOUT))
    except ValueError:
        return None
    return 130.0 if seconds <= 0 else float(max(seconds, 2))


def _poll(lib: ctypes.CDLL, conn: int, timeout: float, url: DatabaseUrl, options: dict[str, str]) -> bool:
    """Drive the non-blocking connect; Python's select keeps Ctrl-C working while the server is silent."""
    import select

    deadline = time.monotonic() + timeout
    while True:
        status = lib.PQconnectPoll(conn)
        if status == _POLL_OK:
            return True
        if status not in (_POLL_READING, _POLL_WRITING):
            return False
        sock = lib.PQsocket(conn)
        remaining = deadline - time.monotonic()
        if sock < 0:
            return False
        if remaining > 0:
            watch = [sock]
            ready = (
                select.select(watch, [], [], remaining)
                if status == _POLL_READING
                else select.select([], watch, [], remaining)
            )
            if ready[0] or ready[1]:
                continue
        if _single_attempt(options):
            raise DatabaseUnavailable(
                f"cannot connect to {url.display}: connection timeout expired",
                hint="the server did not answer in time; is the host reachable?",
            )
        return False


def _single_attempt(options: dict[str, str]) -> bool:
    """Whether psycopg would make exactly one attempt (and so print just "connection timeout expired")."""
    import socket

    host = options.get("host", "")
    if options.get("hostaddr") or not host or host.startswith("/") or host[1:2] == ":":
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            pass
    try:
        port = options.get("port") or "5432"
        return len(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP, type=socket.SOCK_STREAM)) == 1
    except (OSError, UnicodeError):
        return False


def _select(lib: ctypes.CDLL, conn: int) -> list[Row] | None:
    probe = _query(lib, conn, _PROBE)
    if probe != [(b"f", b"t")]:
        return None  # a standby, no journal, or a journal outside the current schema: the full CLI decides
    rows = _query(lib, conn, _JOURNAL)
    if rows is None:
        return None  # no privilege, ...: the full CLI decides
    journal: list[Row] = []
    for version, name, checksum in rows:
        if version is None or name is None or checksum is None:
            return None
        journal.append((int(version), name.decode(), checksum.decode()))
    return journal


def _query(lib: ctypes.CDLL, conn: int, sql: str) -> list[tuple[bytes | None, ...]] | None:
    """Every row of a query's result as bytes (None for NULL), or None when it did not return rows."""
    res = lib.PQexec(conn, sql.encode())
    if not res:
        return None
    try:
        if lib.PQresultStatus(res) != _TUPLES_OK:
            return None
        width = lib.PQnfields(res)
        return [
            tuple(None if lib.PQgetisnull(res, r, k) else lib.PQgetvalue(res, r, k) for k in range(width))
            for r in range(lib.PQntuples(res))
        ]
    finally:
        lib.PQclear(res)
