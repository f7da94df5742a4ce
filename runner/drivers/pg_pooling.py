"""Statements that only work on a connection of one's own, and whether ours is one.

Through a pooler in transaction mode every transaction may run on another server connection, and
what one leaves in its session (a ``SET``, a prepared statement, a temporary table, a ``LISTEN``)
stays there for the next client of that connection: Agor's application. agor-db itself leaves
nothing (pg_apply), but a migration file's own session-level statements would. Such files are refused
before anything runs unless the connection is known to be direct: given as ``--direct-url`` /
``AGOR_MIGRATION_DATABASE_URL``, or seen to be (the server sees our own TCP port, or we both speak
over a Unix socket).
"""

from __future__ import annotations

import os
import re
import socket
from typing import TYPE_CHECKING, Any

from ..core.errors import UsageError
from ..core.models import Script
from ..core.sqltext import LEADING_COMMENTS

if TYPE_CHECKING:
    from .postgres import PostgresDriver

SESSION_STATE = re.compile(
    r"(?:SET(?!\s+(?:LOCAL|CONSTRAINTS|TRANSACTION)\b)|RESET|PREPARE|DEALLOCATE|LISTEN|UNLISTEN|DISCARD|LOAD"
    r"|CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?TEMP(?:ORARY)?\b|SELECT\s+pg_advisory_lock)\b",
    re.IGNORECASE,
)


def session_statements(script: Script) -> list[int]:
    """1-based lines of the statements in ``script`` that leave state in the session."""
    return [st.line for st in script.statements if SESSION_STATE.match(LEADING_COMMENTS.sub("", st.sql, count=1))]


def looks_direct(conn: Any) -> bool:
    """Whether the server is at the other end of our own socket (no pooler or proxy in between)."""
    row = conn.execute("SELECT inet_client_port()").fetchone()
    server_sees = row[0] if row else None
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        if sock.family == socket.AF_UNIX:
            return server_sees is None
        return bool(server_sees == sock.getsockname()[1])


def session_state_refused(driver: PostgresDriver, scripts: list[Script]) -> None:
    found = [(s, lines) for s in scripts if (lines := session_statements(s))]
    if not found or driver.direct or looks_direct(driver.conn):
        return
    listed = "\n".join(f"  - {s.migration.label}, line(s) {', '.join(map(str, lines))}" for s, lines in found)
    raise UsageError(
        f"{driver.url.display} does not reach PostgreSQL directly (a pooler or proxy is in between), and these "
        "migrations leave settings or other state in the session, which a pooler in transaction mode would hand "
        f"on to the next client of that server connection:\n{listed}\nnothing was applied.",
        hint="give a URL that reaches the server directly with --direct-url or AGOR_MIGRATION_DATABASE_URL "
        "(migrate then uses it for everything), or use SET LOCAL inside transactional migrations",
    )
