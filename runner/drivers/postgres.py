"""PostgreSQL through psycopg 3.

Locking: ``migrate`` serialises each migration with a transaction-scoped advisory lock taken inside
that migration's own transaction (see pg_apply), so nothing survives on a connection a pooler lends
us. ``lock()`` (a session-level advisory lock, for ``copy``, which holds it across its whole run) is
only taken by trying and sleeping, never by waiting inside a statement.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ..core.errors import AgorDbError, DatabaseError, DatabaseUnavailable, LockTimeout, UsageError, one_line
from ..core.models import JOURNAL_TABLE, AppliedMigration, How, Migration, Script
from ..core.urls import DatabaseUrl, redact
from .base import statement_failed
from .pg_diagnosis import GUARD_SQL, SessionFacts, bad_conninfo, connect_failed, read_only, session_cause, standby
from .pg_lock import LOCK_KEY

if TYPE_CHECKING:
    from .pg_apply import Applier

APPLICATION_NAME = "agor-db"
DEFAULT_STATEMENT_LOCK_TIMEOUT = 3.0
DEFAULT_CONNECT_TIMEOUT = 10

# {journal} is the schema-qualified name: the journal lives in the first schema of search_path, where
# the migrations' unqualified CREATE TABLEs land, even when a later schema has an agor_migrations too.
JOURNAL_DDL = """
CREATE TABLE IF NOT EXISTS {journal} (
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
        raise bad_conninfo(url, exc) from None
    extra: dict[str, Any] = {}
    if "application_name" not in params:
        extra["application_name"] = APPLICATION_NAME
    # UTF-8 even when the URL asks for another client encoding: agor-db writes UTF-8 bytes itself (the
    # copier's binary COPY); a URL asking for LATIN1 made copy end in an internal error.
    extra["client_encoding"] = "UTF8"
    if connect_timeout is not None:
        extra["connect_timeout"] = connect_timeout
    elif "connect_timeout" not in params:
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT
    try:
        # prepare_threshold=None: no server-side prepared statements, which a transaction pooler would
        # leave on (or look for on) another client's server connection
        return psycopg.connect(url.conninfo, autocommit=autocommit, prepare_threshold=None, **extra)
    except psycopg.OperationalError as exc:
        raise connect_failed(url, exc) from None
    except psycopg.ProgrammingError as exc:
        raise bad_conninfo(url, exc) from None


class PostgresDriver:
    dialect = "postgres"

    def __init__(
        self,
        url: DatabaseUrl,
        *,
        readonly: bool = False,
        direct: bool = False,
        conn: psycopg.Connection[Any] | None = None,
    ) -> None:
        """Connect to ``url``, or work on ``conn`` (a caller's open connection to it)."""
        self.url = url
        self.readonly = readonly
        self.direct = direct  # the operator says this URL reaches the server without a pooler
        self.conn = conn if conn is not None else connect(url)
        self._locked = False
        self.warnings: list[str] = []
        self.lock_timeout = 60.0
        self.statement_lock_timeout = DEFAULT_STATEMENT_LOCK_TIMEOUT
        self.on_wait: Callable[[str], None] = lambda message: None
        self._applier: Applier | None = None
        self.facts: SessionFacts | None = None
        try:
            self.facts = SessionFacts.read(self.conn)
        except psycopg.Error as exc:
            self.conn.close()
            raise self._lost(exc, "reading the session's settings") from None
        if readonly and self.facts.in_recovery:
            self.warnings.append(
                f"{url.display} is a hot standby (read-only replica): what it shows may lag behind the primary, "
                "and migrate must run against the primary"
            )
        # None when no schema of search_path exists: there is no journal to read, nowhere to create one
        self.journal = (
            f"{sql.Identifier(self.facts.schema).as_string(self.conn)}.{JOURNAL_TABLE}" if self.facts.schema else None
        )

    def begin_run(self, lock_timeout: float, statement_lock_timeout: float, on_wait: Callable[[str], None]) -> None:
        """No run-wide lock here: each migration takes it in its own transaction (see pg_apply)."""
        self.lock_timeout = lock_timeout
        self.statement_lock_timeout = statement_lock_timeout
        self.on_wait = on_wait

    def preflight(self, scripts: list[Script]) -> None:
        from .pg_pooling import session_state_refused  # not needed by the no-op start

        session_state_refused(self, scripts)

    def open_connection(self) -> psycopg.Connection[Any]:
        return connect(self.url)

    def close(self) -> None:
        if self._applier is not None:
            self._applier.close()
        if not self.conn.closed:
            try:
                self.unlock()
            finally:
                self.conn.close()

    def _lost(self, exc: Exception, doing: str) -> AgorDbError:
        cause = session_cause(self.url, self.facts, exc, doing)
        if cause is not None:
            return cause
        return DatabaseUnavailable(
            f"the connection to {self.url.display} was lost while {doing}: "
            f"{redact(one_line(exc), self.url.secrets)}",
            hint="the server rolled back whatever was in progress; run agor-db migrate again",
        )

    # -- locking ---------------------------------------------------------------------------

    def lock(self, timeout: float) -> None:
        if self._locked:
            return
        self._poll(f"SELECT pg_try_advisory_lock({LOCK_KEY})", timeout)
        self._locked = True

    def lock_in_transaction(self, timeout: float) -> None:
        """The migration lock for the caller's open transaction only (copy): it ends with that transaction,
        so nothing of it outlives the run on a server connection a transaction pooler lent us. Polled, so
        the wait holds no snapshot another runner's concurrent index build would wait for."""
        self._poll(f"SELECT pg_try_advisory_xact_lock({LOCK_KEY})", timeout)

    def _poll(self, try_sql: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while not self._try(try_sql):
                if time.monotonic() >= deadline:
                    raise self.holder_timeout(timeout)
                _pause(deadline)
        except psycopg.OperationalError as exc:
            raise self._lost(exc, "taking the migration lock") from None

    def _try(self, sql: str) -> bool:
        row = self.conn.execute(sql).fetchone()
        return bool(row and row[0])

    def holder_timeout(self, timeout: float) -> LockTimeout:
        holder = self.conn.execute(
            """
            SELECT a.pid, coalesce(a.application_name, ''), a.backend_start, a.state, a.client_addr::text,
                   extract(epoch FROM now() - a.xact_start)::float8
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = %s AND l.objid = %s AND l.objsubid = 1
            """,
            ((LOCK_KEY >> 32) & 0xFFFFFFFF, LOCK_KEY & 0xFFFFFFFF),
        ).fetchone()
        if holder:
            pid, app, since, state, addr, xact = holder
            # another role's session shows NULL details unless we may read all stats
            who = f"pid {pid}, application_name {app!r}"
            who += f", connected since {since:%Y-%m-%d %H:%M:%S %Z}" if since is not None else ""
            who += f", state {state}" if state else ""
            who += f", transaction open for {xact:.1f}s" if xact is not None else ""
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

    def _guard(self) -> None:
        """Inside agor-db's own transaction: the role's statement and idle timeouts do not apply to it."""
        assert self.facts is not None
        if self.facts.active("statement_timeout") or self.facts.active("idle_in_transaction_session_timeout"):
            self.conn.execute(GUARD_SQL, prepare=False)

    def _refused(self, exc: psycopg.Error, doing: str) -> AgorDbError:
        if isinstance(exc, psycopg.OperationalError) or self.conn.broken:
            return self._lost(exc, doing)
        return session_cause(self.url, self.facts, exc, doing) or DatabaseError(
            f"PostgreSQL refused while {doing} in {self.url.display}: "
            f"{redact(one_line(exc), self.url.secrets)}"
        )

    def journal_exists(self) -> bool:
        if self.journal is None:
            return False
        try:
            row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.journal,)).fetchone()
        except psycopg.Error as exc:
            raise self._refused(exc, f"looking for the journal {self.journal}") from None
        return bool(row and row[0])

    def ensure_journal(self) -> None:
        if self.journal_exists():
            return
        facts = self.facts
        assert facts is not None
        doing = f"creating the journal table {self.journal or JOURNAL_TABLE}"
        if self.journal is None:
            raise DatabaseError(
                f"cannot create the journal table {JOURNAL_TABLE} in {self.url.display}: "
                f"no schema on the search_path exists (SHOW search_path as role {facts.user})",
                hint="create the schema (CREATE SCHEMA …) or fix search_path (options=-csearch_path=… in the URL)",
            )
        if facts.in_recovery:
            raise standby(self.url, doing)
        if facts.active("default_transaction_read_only"):
            raise read_only(self.url, facts, doing)
        deadline = time.monotonic() + self.lock_timeout
        try:
            # under the migration lock: two runners' CREATE TABLE IF NOT EXISTS can both miss the
            # other's uncommitted table and one then fails on a duplicate type name
            while True:
                with self.conn.transaction():
                    self._guard()
                    if self._try(f"SELECT pg_try_advisory_xact_lock({LOCK_KEY})"):
                        self.conn.execute(JOURNAL_DDL.format(journal=self.journal))
                        return
                if time.monotonic() >= deadline:
                    raise self.holder_timeout(self.lock_timeout)
                _pause(deadline)
        except psycopg.Error as exc:
            raise self._refused(exc, doing) from None

    def read_journal(self) -> list[AppliedMigration]:
        if not self.journal_exists():
            return []
        try:
            rows = self.conn.execute(
                f"SELECT id, version, name, checksum, applied_at, duration_ms, how FROM {self.journal} ORDER BY version"
            ).fetchall()
        except psycopg.Error as exc:
            raise self._refused(exc, f"reading the journal {self.journal}") from None
        return [AppliedMigration(*row) for row in rows]

    def table_names(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        ).fetchall()
        return [r[0] for r in rows if r[0] != JOURNAL_TABLE]

    # -- applying --------------------------------------------------------------------------

    def connection(self) -> Any:
        raise UsageError("adopting a database made without agor-db is for SQLite only")

    def adopt(
        self, steps: Sequence[Migration], rebuild: Callable[[Any], list[str]]
    ) -> tuple[list[AppliedMigration], list[str]]:
        raise UsageError("adopting a database made without agor-db is for SQLite only")

    def insert_row(self, script: Script, how: How, started: float) -> AppliedMigration:
        m = script.migration
        duration = int((time.perf_counter() - started) * 1000)
        applied_at = now_ms()
        try:
            row = self.conn.execute(
                f"INSERT INTO {self.journal} (version, name, checksum, applied_at, duration_ms, how) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (m.version, m.name, m.checksum, applied_at, duration, how),
            ).fetchone()
        except psycopg.Error as exc:
            raise self._refused(exc, f"journaling {m.label}") from None
        assert row is not None
        return AppliedMigration(row[0], m.version, m.name, m.checksum, applied_at, duration, how)

    def apply(self, script: Script, how: How = "applied") -> AppliedMigration | None:
        """Apply the script with its journal row, or return None when another runner applied it meanwhile."""
        if self._applier is None:
            from .pg_apply import Applier  # not needed by the no-op start

            self._applier = Applier(self)
        return self._applier.apply(script, how)

    def statement_error(self, script: Script, i: int, exc: psycopg.Error, transactional: bool) -> AgorDbError:
        st = script.statements[i]
        where = f"applying {script.migration.label} (statement {i + 1} of {len(script.statements)}, line {st.line})"
        kept = (
            "its transaction was rolled back, nothing of it was kept"
            if transactional
            else "it is NOT transactional: statements before this one stay applied and it was not journaled"
        )
        cause = session_cause(self.url, self.facts, exc, where, outcome=kept)
        if cause is not None:
            return cause
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


def _pause(deadline: float) -> None:
    """Between two tries for a lock another runner holds: short, jittered, never past the deadline."""
    time.sleep(max(0.0, min(0.01 + 0.04 * random.random(), deadline - time.monotonic())))
