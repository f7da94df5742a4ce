"""Applying one migration on PostgreSQL so that it holds on a direct connection and through any pooler.

Every migration runs in its own transaction, which first takes a transaction-scoped advisory lock
(``pg_try_advisory_xact_lock``) and then re-reads the journal under it: what another runner applied
meanwhile is skipped. Nothing outlives the transaction on the server connection a pooler lent us: the
lock and every setting (``set_config(..., true)`` = ``SET LOCAL``) end with it. A runner waiting for
the lock does not wait inside a transaction: it tries, rolls back and sleeps, so it never holds a
snapshot a ``CREATE INDEX CONCURRENTLY`` of another runner would wait for.

Each statement runs under a short ``lock_timeout``: a migration waiting for a table lock would
otherwise queue every reader of that table behind it. On a lock conflict the whole transaction is
rolled back and tried again with backoff until the run's ``--lock-timeout``; from the second try a
timer samples ``pg_blocking_pids`` while a statement waits, so the waits and the final error name the
blockers.

A ``-- transactional: false`` migration cannot run inside that transaction, so the transaction (on
our main connection) only holds the lock and writes the journal row at the end, while the statements
run one by one on a second, autocommitting connection. That transaction holds no snapshot and no
transaction id while the statements run, so a concurrent index build does not wait for it.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from ..core.errors import AgorDbError, DatabaseUnavailable, DriftError, LockTimeout, MigrationFailed, one_line
from ..core.models import AppliedMigration, How, Script
from ..core.urls import redact
from .base import controls_transaction, transaction_control_refused
from .pg_diagnosis import session_cause
from .pg_indexes import index_builds, invalid_built, invalid_leftovers, unfinished_builds
from .pg_lock import LOCK_KEY

if TYPE_CHECKING:
    from .postgres import PostgresDriver

# {journal}: the driver's schema-qualified journal (current_schema(), beside what the migrations create)
_JOURNAL_ROW = (
    "SELECT id, version, name, checksum, applied_at, duration_ms, how FROM {journal} WHERE version = {version}"
)
BLOCKERS = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       extract(epoch FROM now() - a.xact_start)::float8
FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s)) ORDER BY a.pid
"""


@dataclass(frozen=True)
class Blocker:
    pid: int
    application_name: str
    state: str
    xact_seconds: float | None  # None: not in a transaction, or another role's session we may not see

    def describe(self) -> str:
        text = f"pid {self.pid}, application_name {self.application_name!r}"
        text += f", state {self.state!r}" if self.state else ""
        if self.xact_seconds is not None:
            text += f", transaction open for {self.xact_seconds:.1f}s"
        return text


class _Busy(Exception):
    """This try could not get a lock: the migration lock (``statement`` None) or a table lock."""

    def __init__(self, statement: int | None = None) -> None:
        super().__init__("busy")
        self.statement = statement


def transaction_settings(lock_timeout: float, server_version: int) -> str:
    """The statement that opens every transaction: the lock, our backend pid, settings local to it."""
    settings = {
        "lock_timeout": f"{max(1, int(lock_timeout * 1000))}ms",
        # a role's or database's statement_timeout must not cut agor-db's own migration short
        "statement_timeout": "0",
        # a role's short idle_in_transaction_session_timeout must not end the lock-holding transaction
        # of a non-transactional migration while its statements run on the other connection
        "idle_in_transaction_session_timeout": "0",
    }
    if server_version >= 140000:
        # a killed runner's session (and lock) ends within a second, not when a long statement ends
        settings["client_connection_check_interval"] = "1s"
    local = ", ".join(f"set_config('{k}', '{v}', true)" for k, v in settings.items())
    return f"SELECT pg_try_advisory_xact_lock({LOCK_KEY}), pg_backend_pid(), {local}"


class Applier:
    """Applies migrations for one PostgresDriver; see the module docstring."""

    def __init__(self, driver: PostgresDriver) -> None:
        self.d = driver
        self.blockers: tuple[Blocker, ...] = ()
        self._watcher: psycopg.Connection[Any] | None = None
        self._told: tuple[Blocker, ...] | None = None
        self._opening = transaction_settings(driver.statement_lock_timeout, driver.conn.info.server_version)
        self._deadline = 0.0

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    # -- the retry loop -------------------------------------------------------------------------

    def apply(self, script: Script, how: How) -> AppliedMigration | None:
        """Apply ``script`` or, if another runner did meanwhile, return None."""
        deadline = self._deadline = time.monotonic() + self.d.lock_timeout
        tries = 0
        while True:
            tries += 1
            try:
                attempt = self._transactional if script.transactional else self._outside
                return attempt(script, how)
            except _Busy as busy:
                self._waited(script, busy, deadline, tries)
            except pg_errors.LockNotAvailable:  # the journal itself was locked by someone
                self._waited(script, _Busy(-1), deadline, tries)
            except psycopg.OperationalError as exc:
                raise self._lost(script, exc) from None

    def _waited(self, script: Script, busy: _Busy, deadline: float, tries: int) -> None:
        """After a busy try: give up at the deadline, else say who blocks and sleep with backoff."""
        if time.monotonic() >= deadline:
            if busy.statement is None:
                raise self.d.holder_timeout(self.d.lock_timeout)
            raise self._gave_up(script, busy, tries)
        if busy.statement is None:
            pause = min(0.005 * 2 ** min(tries, 5), 0.1)  # another runner is working: poll, cheaply
        else:
            self._watch()
            self._tell(script, busy)
            pause = min(0.1 * 2 ** min(tries, 5), 2.0)
        pause *= 0.5 + random.random()  # runners started together should not retry in lockstep
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    # -- one try --------------------------------------------------------------------------------

    def _begin(self, script: Script) -> tuple[int, AppliedMigration | None]:
        """Open the transaction, take the lock (or raise _Busy), read the journal under it: one round
        trip. In READ COMMITTED each statement of the string takes its own snapshot, so the journal
        read sees whatever the previous holder of the lock committed."""
        cur = self.d.conn.cursor()
        journal = _JOURNAL_ROW.format(journal=self.d.journal, version=int(script.migration.version))
        opening = self._opening
        left = self._deadline - time.monotonic()
        if left < self.d.statement_lock_timeout:  # the last try may not wait past --lock-timeout
            opening = transaction_settings(max(left, 0.001), self.d.conn.info.server_version)
        cur.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; {opening}; {journal}".encode(), prepare=False)
        cur.nextset()
        row = cur.fetchone()
        assert row is not None
        if not row[0]:
            raise _Busy()
        cur.nextset()
        found = cur.fetchone()
        return int(row[1]), (AppliedMigration(*found) if found else None)

    @contextlib.contextmanager
    def _transaction(self, script: Script) -> Iterator[None]:
        """Commit what the block did, or roll it back if it raised (the block's _begin opened it)."""
        conn = self.d.conn
        try:
            yield
        except BaseException:
            if not (conn.closed or conn.broken) and conn.info.transaction_status != pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # a deferred constraint, say: the server rolled it back
            raise MigrationFailed(
                f"migration {script.migration.label} failed at COMMIT: {redact(str(exc).strip(), self.d.url.secrets)}\n"
                "its transaction was rolled back, nothing of it was kept; earlier migrations stay applied.",
                hint=f"fix {script.migration.path} and run agor-db migrate again",
            ) from None

    def _transactional(self, script: Script, how: How) -> AppliedMigration | None:
        started = time.perf_counter()
        with self._transaction(script):
            pid, done = self._begin(script)
            if done is not None:
                self._check_same(script, done)
                return None
            cur = self.d.conn.cursor()
            for i, st in enumerate(script.statements):
                if controls_transaction(st.sql):
                    raise transaction_control_refused(script, st.sql)
                self._execute(cur, script, i, pid, transactional=True)
            return self.d.insert_row(script, how, started)

    def _outside(self, script: Script, how: How) -> AppliedMigration | None:
        started = time.perf_counter()
        with self._transaction(script):  # holds the lock and, at the end, writes the journal row
            _pid, done = self._begin(script)
            if done is not None:
                self._check_same(script, done)
                return None
            builds = index_builds(script)
            leftovers = invalid_leftovers(self.d.conn, builds)
            # A statement with parameters leaves its snapshot's xmin on the session until the next
            # statement; one without lets it go, so the concurrent builds below do not wait for us.
            self.d.conn.execute("SELECT 1")
            work = self.d.open_connection()
            try:
                for name in leftovers:
                    self.d.warnings.append(
                        f"{script.migration.label}: dropped the invalid index {name} an interrupted or failed "
                        "earlier build left behind, to build it again"
                    )
                    work.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}".encode(), prepare=False)
                cur = work.cursor()
                for i in range(len(script.statements)):
                    self._execute(cur, script, i, None, transactional=False)
            finally:
                work.close()  # whatever the file SET on it ends here
            problems = unfinished_builds(self.d.conn, builds)
            if problems:
                raise invalid_built(script, problems)
            return self.d.insert_row(script, how, started)

    def _execute(self, cur: Any, script: Script, i: int, pid: int | None, *, transactional: bool) -> None:
        timer = None
        if pid is not None and self._watcher is not None:
            timer = threading.Timer(self.d.statement_lock_timeout * 0.6, self._sample, (pid,))
            timer.daemon = True
            timer.start()
        try:
            # prepare=False: each statement runs once, so a server-side prepared statement is waste
            cur.execute(script.statements[i].sql.encode("utf-8"), prepare=False)
        except psycopg.Error as exc:
            if cur.connection.broken or cur.connection.closed:
                raise self._lost(script, exc, i, transactional) from None
            if transactional and isinstance(exc, pg_errors.LockNotAvailable):
                raise _Busy(i) from None
            raise self._refused(script, i, exc, transactional) from None
        finally:
            if timer is not None:
                timer.cancel()

    def _refused(self, script: Script, i: int, exc: psycopg.Error, transactional: bool) -> AgorDbError:
        err = self.d.statement_error(script, i, exc, transactional)
        builds = [] if transactional else index_builds(script)
        if not builds or not isinstance(err, MigrationFailed):
            return err
        return MigrationFailed(
            f"{err.message}\na failed concurrent build leaves its index INVALID ({', '.join(b.name for b in builds)}): "
            "the next agor-db migrate drops it before running the file again.",
            hint=err.hint,
        )

    def _check_same(self, script: Script, row: AppliedMigration) -> None:
        """Another runner applied this version meanwhile: fine if it was this very file."""
        if row.checksum != script.migration.checksum:
            raise DriftError(
                f"another runner applied version {row.version:04d} ({row.name}) with different content "
                f"while this one waited; {script.migration.label} was not applied",
                hint="two different releases are migrating this database at once; let one finish first",
            )

    # -- who blocks us ---------------------------------------------------------------------------

    def _watch(self) -> None:
        """From the first lock conflict on, sample the blockers while a statement waits."""
        if self._watcher is None:
            try:
                self._watcher = self.d.open_connection()
            except Exception:  # naming the blockers is a courtesy; the retry goes on without it
                self._watcher = None

    def _sample(self, pid: int) -> None:
        watcher = self._watcher
        if watcher is None:
            return
        try:
            rows = watcher.execute(BLOCKERS, (pid,)).fetchall()
        except psycopg.Error:
            return
        if rows:
            self.blockers = tuple(Blocker(int(r[0]), r[1], r[2], r[3]) for r in rows)

    def _tell(self, script: Script, busy: _Busy) -> None:
        if self.blockers == self._told and self._told is not None:
            return
        self._told = self.blockers
        where = _where(script, busy)
        who = "; ".join(b.describe() for b in self.blockers) or "not identified yet (named at the next wait)"
        self.d.on_wait(
            f"{script.migration.label}: {where} waited {self.d.statement_lock_timeout:g}s for a lock and was "
            f"rolled back, retrying (so readers do not queue behind it); blocked by: {who}"
        )

    def _gave_up(self, script: Script, busy: _Busy, tries: int) -> LockTimeout:
        who = "; ".join(b.describe() for b in self.blockers) or "sessions that had let go by the time agor-db looked"
        return LockTimeout(
            f"gave up on {script.migration.label} after {self.d.lock_timeout:g}s and {tries} tries: "
            f"{_where(script, busy)} could not get its locks within lock_timeout "
            f"{self.d.statement_lock_timeout:g}s; blocked by {who}\n"
            "its transaction was rolled back, nothing of it was kept; earlier migrations stay applied.",
            hint="a session holds locks on the tables this migration changes (often 'idle in transaction'): "
            "let it finish, end it (SELECT pg_terminate_backend(pid)), or raise --lock-timeout",
        )

    # -- lost connections ------------------------------------------------------------------------

    def _lost(
        self, script: Script, exc: Exception, i: int | None = None, transactional: bool | None = None
    ) -> AgorDbError:
        text = redact(one_line(exc), self.d.url.secrets)
        label = script.migration.label
        if script.transactional or transactional:
            kept = (
                f"{label} and its journal row commit together, so unless `agor-db status` lists it as applied, "
                "nothing of it was kept"
            )
        else:
            if i is None:
                done = "statements it ran before stay applied, "
            elif i:
                done = f"statements 1-{i} stay applied, statement {i + 1} was interrupted; "
            else:
                done = "statement 1 was interrupted; "
            builds = [b.name for b in index_builds(script)]
            kept = f"{label} is NOT transactional: {done}it was not journaled" + (
                f"; an interrupted concurrent build leaves its index ({', '.join(builds)}) INVALID, and the "
                "next agor-db migrate drops it and builds it again"
                if builds
                else ""
            )
        # a server setting (idle_in_transaction_session_timeout) or a shutdown ended the session: name it
        cause = session_cause(self.d.url, self.d.facts, exc, f"applying {label}", outcome=kept)
        if cause is not None:
            return cause
        return DatabaseUnavailable(
            f"the connection to {self.d.url.display} was lost while applying {label}: {text}\n{kept}.",
            hint="run agor-db migrate again once the server is back",
        )


def _where(script: Script, busy: _Busy) -> str:
    if busy.statement is None or busy.statement < 0:
        return "writing its journal row"
    st = script.statements[busy.statement]
    first = st.sql.strip().splitlines()[0]
    first = first if len(first) <= 80 else first[:77] + "..."
    return f"statement {busy.statement + 1} (line {st.line}: {first})"


OnWait = Callable[[str], None]
