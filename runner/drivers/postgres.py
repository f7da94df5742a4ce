"""PostgreSQL through psycopg 3.

Locking: a session-level advisory lock on the runner's own connection, taken before the journal
is created or read. It is not tied to a transaction, so a ``-- transactional: false`` migration
(``CREATE INDEX CONCURRENTLY``) never waits on it, and it vanishes with the session: a runner
killed with SIGKILL, or a session ended by the server, leaves no stale lock behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from ..errors import AgorDbError, DatabaseError, DatabaseUnavailable, LockTimeout, MigrationFailed, UrlError
from ..models import AppliedMigration, How, Script
from ..urls import DatabaseUrl, redact
from .base import JOURNAL_TABLE, controls_transaction, statement_failed, transaction_control_refused

APPLICATION_NAME = "agor-db"
# One key for every agor-db run on a database (advisory locks are per database).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"agor-db migration lock").digest()[:8], "big") >> 1
DEFAULT_CONNECT_TIMEOUT = 10

JOURNAL_DDL = f"""
CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (
    id SERIAL PRIMARY KEY,
    version BIGINT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at BIGINT NOT NULL,
    duration_ms INTEGER NOT NULL,
    how TEXT NOT NULL DEFAULT 'applied' CHECK (how IN ('applied', 'adopted'))
)
"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def connect(
    url: DatabaseUrl, *, connect_timeout: int | None = None, autocommit: bool = True
) -> psycopg.Connection[Any]:
    """Open a connection with agor-db's application_name; errors become one-line, password-free messages."""
    from psycopg.conninfo import conninfo_to_dict

    assert url.conninfo is not None
    try:
        params = conninfo_to_dict(url.conninfo)
    except psycopg.ProgrammingError as exc:
        raise UrlError(f"cannot read the PostgreSQL URL {url.display}: {redact(str(exc), url.secrets)}") from None
    extra: dict[str, Any] = {}
    if "application_name" not in params:
        extra["application_name"] = APPLICATION_NAME
    if "client_encoding" not in params:  # text always arrives as UTF-8, whatever the database's encoding
        extra["client_encoding"] = "UTF8"
    if connect_timeout is not None:
        extra["connect_timeout"] = connect_timeout
    elif "connect_timeout" not in params:
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    try:
        return psycopg.connect(url.conninfo, autocommit=autocommit, **extra)
    except psycopg.OperationalError as exc:
        raise unavailable(url, exc) from None
    except psycopg.ProgrammingError as exc:
        raise UrlError(f"cannot use the PostgreSQL URL {url.display}: {redact(str(exc), url.secrets)}") from None


def unavailable(url: DatabaseUrl, exc: Exception) -> DatabaseUnavailable:
    text = redact(" ".join(str(exc).split()), url.secrets)
    hint = "check that the server is running and the host, port and credentials are right"
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = "the user name or password is wrong"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "create the database first (createdb NAME, or CREATE DATABASE NAME)"
    elif "timeout" in lowered:
        hint = "the server did not answer in time; is the host reachable?"
    return DatabaseUnavailable(f"cannot connect to {url.display}: {text}", hint=hint)


class PostgresDriver:
    dialect = "postgres"

    def __init__(self, url: DatabaseUrl, *, readonly: bool = False) -> None:
        self.url = url
        self.readonly = readonly
        self.conn = connect(url)
        self._locked = False
        self.warnings: list[str] = []
        if not readonly and self.conn.info.server_version >= 140000:
            # A runner killed mid-statement otherwise keeps its session, and so the migration lock,
            # until the statement ends (minutes, for a big CREATE INDEX); with this the server polls
            # the socket and ends the session within a second (PostgreSQL 14+, settable by any user).
            self.conn.execute("SET client_connection_check_interval = '1s'")

    def close(self) -> None:
        if not self.conn.closed:
            try:
                self.unlock()
            finally:
                self.conn.close()

    def _lost(self, exc: Exception, doing: str) -> AgorDbError:
        return DatabaseUnavailable(
            f"the connection to {self.url.display} was lost while {doing}: "
            f"{redact(' '.join(str(exc).split()), self.url.secrets)}",
            hint="the server rolled back whatever was in progress; run agor-db migrate again",
        )

    # -- locking ---------------------------------------------------------------------------

    def lock(self, timeout: float) -> None:
        if self._locked:
            return
        try:
            if timeout <= 0:
                got = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
                if not got or not got[0]:
                    raise self._lock_timeout(timeout)
            else:
                self.conn.execute(f"SET lock_timeout = '{int(timeout * 1000)}ms'")
                try:
                    self.conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                except pg_errors.LockNotAvailable:
                    raise self._lock_timeout(timeout) from None
                finally:
                    self.conn.execute("RESET lock_timeout")
        except psycopg.OperationalError as exc:
            raise self._lost(exc, "taking the migration lock") from None
        self._locked = True

    def _lock_timeout(self, timeout: float) -> LockTimeout:
        holder = self.conn.execute(
            """
            SELECT a.pid, coalesce(a.application_name, ''), a.backend_start, a.state, a.client_addr::text
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = %s AND l.objid = %s AND l.objsubid = 1
            """,
            ((LOCK_KEY >> 32) & 0xFFFFFFFF, LOCK_KEY & 0xFFFFFFFF),
        ).fetchone()
        if holder:
            pid, app, since, state, addr = holder
            # another role's session shows NULL details unless we may read all stats
            who = f"pid {pid}, application_name {app!r}"
            who += f", connected since {since:%Y-%m-%d %H:%M:%S %Z}" if since is not None else ""
            who += f", state {state}" if state else ""
            who += f", from {addr}" if addr else ""
        else:
            who = "a session that has since released it"
        return LockTimeout(
            f"timed out after {timeout:g}s waiting for the migration lock on {self.url.display}; held by {who}",
            hint="another agor-db is migrating this database; wait for it, raise --lock-timeout, "
            "or end that session with pg_terminate_backend(pid) if it is stuck",
        )

    def unlock(self) -> None:
        if self._locked and not self.conn.closed:
            # if the session is gone, the lock went with it
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        self._locked = False

    # -- journal ---------------------------------------------------------------------------

    def journal_exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (JOURNAL_TABLE,)).fetchone()
        return bool(row and row[0])

    def ensure_journal(self) -> None:
        if self.journal_exists():
            return
        try:
            self.conn.execute(JOURNAL_DDL)
        except psycopg.OperationalError as exc:
            raise self._lost(exc, "creating the journal table") from None
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot create the journal table {JOURNAL_TABLE} in {self.url.display}: "
                f"{redact(str(exc).strip(), self.url.secrets)}",
                hint="the user needs CREATE privilege on the schema",
            ) from None

    def read_journal(self) -> list[AppliedMigration]:
        if not self.journal_exists():
            return []
        rows = self.conn.execute(
            f"SELECT id, version, name, checksum, applied_at, duration_ms, how FROM {JOURNAL_TABLE} ORDER BY version"
        ).fetchall()
        return [AppliedMigration(*row) for row in rows]

    def table_names(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        ).fetchall()
        return [r[0] for r in rows if r[0] != JOURNAL_TABLE]

    # -- applying --------------------------------------------------------------------------

    def _insert_row(self, script: Script, how: How, started: float) -> AppliedMigration:
        m = script.migration
        duration = int((time.perf_counter() - started) * 1000)
        applied_at = now_ms()
        row = self.conn.execute(
            f"INSERT INTO {JOURNAL_TABLE} (version, name, checksum, applied_at, duration_ms, how) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (m.version, m.name, m.checksum, applied_at, duration, how),
        ).fetchone()
        assert row is not None
        return AppliedMigration(row[0], m.version, m.name, m.checksum, applied_at, duration, how)

    def apply(self, script: Script, how: How = "applied") -> AppliedMigration:
        started = time.perf_counter()
        label = script.migration.label
        try:
            if not script.transactional:
                self._run_statements(script, transactional=False)
                return self._insert_row(script, how, started)
            with self.conn.transaction():
                self._run_statements(script, transactional=True)
                return self._insert_row(script, how, started)
        except psycopg.OperationalError as exc:
            raise self._lost(exc, f"applying {label}") from None

    def _run_statements(self, script: Script, *, transactional: bool) -> None:
        cur = self.conn.cursor()
        for i, st in enumerate(script.statements):
            if transactional and controls_transaction(st.sql):
                raise transaction_control_refused(script, st.sql)
            try:
                # prepare=False: each statement runs once, so a server-side prepared statement is waste
                cur.execute(st.sql.encode("utf-8"), prepare=False)
            except psycopg.Error as exc:
                if self.conn.broken or self.conn.closed:
                    raise self._lost(exc, f"applying {script.migration.label}") from None
                raise self._statement_error(script, i, exc, transactional) from None

    def _statement_error(self, script: Script, i: int, exc: psycopg.Error, transactional: bool) -> MigrationFailed:
        st = script.statements[i]
        diag = exc.diag
        message = diag.message_primary or str(exc)
        if diag.sqlstate:
            message = f"{message} (SQLSTATE {diag.sqlstate})"
        if diag.message_detail:
            message += f"\n{diag.message_detail}"
        offset = 0
        if diag.statement_position:
            try:
                offset = st.sql[: int(diag.statement_position) - 1].count("\n")
            except ValueError:
                offset = 0
        return statement_failed(
            script, i, st, redact(message, self.url.secrets), offset_lines=offset, transactional=transactional
        )
