"""SQLite through apsw.

Locking: a ``flock`` on the database file serialises whole runs (SQLite's own locks are POSIX
``fcntl`` locks, which on Linux and macOS are independent of ``flock``, so this never interferes
with SQLite or with Agor holding the file open). The kernel drops it when the process dies, so a
killed runner leaves no stale lock. Each migration additionally runs inside ``BEGIN IMMEDIATE``
with a busy timeout, which keeps Agor's own writers out while it runs.

Foreign keys: SQLite ignores ``PRAGMA foreign_keys`` inside a transaction, so a table rebuild
(``DROP TABLE`` + rename) would fire ``ON DELETE CASCADE`` on a connection that has them on. The
pragma is switched off *before* ``BEGIN`` for every migration and ``PRAGMA foreign_key_check``
must come back empty before ``COMMIT`` (SQLite's documented rebuild procedure).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apsw

from ..core.errors import AgorDbError, DatabaseError, DatabaseUnavailable, LockTimeout, MigrationFailed
from ..core.models import JOURNAL_TABLE, AppliedMigration, How, Migration, Script
from ..core.urls import DEFAULT_SQLITE_PATH, DatabaseUrl
from .base import controls_transaction, statement_failed, transaction_control_refused

JOURNAL_DDL = f"""
CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    version INTEGER NOT NULL UNIQUE,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    how TEXT NOT NULL DEFAULT 'applied' CHECK (how IN ('applied', 'adopted'))
)
"""

INTERNAL_TABLES = {JOURNAL_TABLE, "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _not_yet(path: Path) -> str:
    """What status says of a missing file: migrate creates it, but not a missing directory too."""
    if not path.parent.is_dir():
        return (
            f"{path} does not exist yet, nor does its directory {path.parent}: `agor-db migrate` creates "
            "the file, not the directory (create it first, or fix the path)"
        )
    return f"{path} does not exist yet: `agor-db migrate` creates it and applies everything"


class SqliteDriver:
    dialect = "sqlite"

    def __init__(self, url: DatabaseUrl, *, readonly: bool = False, busy_timeout: float = 60.0) -> None:
        assert url.path is not None
        self.url = url
        self.path: Path = url.path
        self.readonly = readonly
        self._lock_fd: int | None = None
        self.warnings: list[str] = []
        self._preexisting: Counter[tuple[str, str]] = Counter()
        self.conn: apsw.Connection | None = None
        self.exists = url.is_memory or self.path.exists()
        if readonly and not self.exists:  # status / dry-run of a file that does not exist yet
            self.warnings.append(_not_yet(self.path))
            return
        if not url.is_memory:
            self._check_location()
        flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        location = str(self.path)
        try:
            self.conn = apsw.Connection(location, flags=flags)
            self.conn.setbusytimeout(int(busy_timeout * 1000))
            # SQLite runs a statement without returning to Python, so Ctrl-C would wait for the
            # statement to end (seconds, for a big rebuild). A progress handler brings Python back
            # every 100k VM steps; a pending KeyboardInterrupt is raised there and aborts the
            # statement, and the transaction is rolled back.
            self.conn.set_progress_handler(_keep_going, 100_000)
            # Touch the schema now so "not a database" and permission problems surface here.
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except apsw.Error as exc:
            raise self._open_error(exc) from None

    # -- opening ---------------------------------------------------------------------------

    def _check_location(self) -> None:
        path = self.path
        if path.is_dir():
            raise DatabaseUnavailable(
                f"{path} is a directory, not a SQLite database file",
                hint="point --database-url at a file inside it, e.g. sqlite://" + str(path / "agor.db"),
            )
        parent = path.parent
        if not parent.exists():
            if self.readonly:
                return
            if self.url.source == "default" or str(path) == os.path.expanduser(DEFAULT_SQLITE_PATH):
                parent.mkdir(parents=True, exist_ok=True)
            else:
                raise DatabaseUnavailable(
                    f"cannot create {path}: the directory {parent} does not exist",
                    hint="create the directory first, or fix the path",
                )
        if not self.readonly and not path.exists() and not os.access(parent, os.W_OK):
            raise DatabaseUnavailable(
                f"cannot create {path}: the directory {parent} is not writable",
                hint="choose a writable location or fix the directory's permissions",
            )

    def _open_error(self, exc: apsw.Error) -> AgorDbError:
        text = str(exc)
        if isinstance(exc, apsw.NotADBError):
            return DatabaseUnavailable(f"{self.path} is not a SQLite database ({text})")
        if isinstance(exc, apsw.CantOpenError):
            return DatabaseUnavailable(f"cannot open {self.path}: {text}", hint="check the path and permissions")
        if isinstance(exc, apsw.BusyError):
            # the same situation as a busy BEGIN IMMEDIATE, only at a stronger lock level: same exit code
            return LockTimeout(
                f"{self.path} stayed locked by another connection longer than the lock timeout ({text}); "
                "nothing was changed",
                hint="stop the process writing to the database, or raise --lock-timeout",
            )
        return DatabaseUnavailable(f"cannot use {self.path}: {text}")

    def close(self) -> None:
        self.unlock()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _c(self) -> apsw.Connection:
        if self.conn is None:
            raise DatabaseError(f"{self.path} does not exist")
        return self.conn

    # -- locking ---------------------------------------------------------------------------

    def lock(self, timeout: float) -> None:
        if self.url.is_memory or self._lock_fd is not None:
            return
        import fcntl

        fd = os.open(self.path, os.O_RDONLY)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"another agor-db run holds the migration lock on {self.path} (waited {timeout:g}s)",
                        hint="wait for it to finish, or raise --lock-timeout",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def begin_run(self, lock_timeout: float, statement_lock_timeout: float, on_wait: Callable[[str], None]) -> None:
        self.lock(lock_timeout)  # one lock for the whole run: SQLite has one writer anyway

    def preflight(self, scripts: list[Script]) -> None:
        pass

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- journal ---------------------------------------------------------------------------

    def journal_exists(self) -> bool:
        if self.conn is None:
            return False
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (JOURNAL_TABLE,)
        ).fetchone()
        return row is not None

    def ensure_journal(self) -> None:
        if self.journal_exists():
            return
        conn = self._c()
        try:
            with self._immediate():
                conn.execute(JOURNAL_DDL)
        except apsw.Error as exc:
            raise self._write_error(exc, "create the journal table") from None

    def read_journal(self) -> list[AppliedMigration]:
        if not self.journal_exists():
            return []
        rows = self._c().execute(
            f"SELECT id, version, name, checksum, applied_at, duration_ms, how FROM {JOURNAL_TABLE} ORDER BY version"
        )
        return [AppliedMigration(*row) for row in rows]

    def table_names(self) -> list[str]:
        if self.conn is None:
            return []
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [r[0] for r in rows if r[0] not in INTERNAL_TABLES]

    # -- adopting a drizzle-era database --------------------------------------------------

    def connection(self) -> apsw.Connection:
        return self._c()

    def adopt(
        self, steps: Sequence[Migration], rebuild: Callable[[Any], list[str]]
    ) -> tuple[list[AppliedMigration], list[str]]:
        """Create the journal, repair cosmetic differences and record the adopted steps, in one
        transaction: either all of it happens or none of it."""
        conn = self._c()
        now = now_ms()
        rows: list[AppliedMigration] = []
        try:
            with self._foreign_keys_off(), self._immediate():
                conn.execute(JOURNAL_DDL)
                done = rebuild(conn)
                for m in steps:
                    conn.execute(
                        f"INSERT INTO {JOURNAL_TABLE} (version, name, checksum, applied_at, duration_ms, how) "
                        "VALUES (?, ?, ?, ?, 0, 'adopted')",
                        (m.version, m.name, m.checksum, now),
                    )
                    rows.append(
                        AppliedMigration(conn.last_insert_rowid(), m.version, m.name, m.checksum, now, 0, "adopted")
                    )
        except apsw.Error as exc:
            raise self._write_error(exc, "adopt the database") from None
        return rows, done

    # -- applying --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _immediate(self) -> Any:
        conn = self._c()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def _foreign_keys_off(self) -> Any:
        conn = self._c()
        was_on = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])  # type: ignore[index]
        if was_on:
            conn.execute("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            if was_on:
                with contextlib.suppress(apsw.Error):
                    conn.execute("PRAGMA foreign_keys = ON")

    def _journal_row(self, conn: apsw.Connection, script: Script, how: How, started: float) -> AppliedMigration:
        m = script.migration
        duration = int((time.perf_counter() - started) * 1000)
        applied_at = now_ms()
        conn.execute(
            f"INSERT INTO {JOURNAL_TABLE} (version, name, checksum, applied_at, duration_ms, how) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (m.version, m.name, m.checksum, applied_at, duration, how),
        )
        return AppliedMigration(conn.last_insert_rowid(), m.version, m.name, m.checksum, applied_at, duration, how)

    def apply(self, script: Script, how: How = "applied") -> AppliedMigration:
        conn = self._c()
        started = time.perf_counter()
        # Violations present before the migration are the data's, not the migration's; count them
        # only when there are any (the common case costs one empty PRAGMA scan).
        self._preexisting = Counter((r[0], r[2]) for r in conn.execute("PRAGMA foreign_key_check"))
        with self._foreign_keys_off():
            if not script.transactional:
                self._run_statements(script, transactional=False)
                self._check_foreign_keys(script, transactional=False)
                try:
                    with self._immediate():
                        return self._journal_row(conn, script, how, started)
                except apsw.Error as exc:
                    raise self._write_error(exc, f"journal {script.migration.label}") from None
            try:
                with self._immediate():
                    self._run_script(script)
                    self._check_foreign_keys(script, transactional=True)
                    return self._journal_row(conn, script, how, started)
            except _SQL_ERRORS as exc:
                raise self._diagnose(script, exc) from None
            except apsw.BusyError as exc:
                raise LockTimeout(
                    f"{self.path} stayed locked by another connection while applying "
                    f"{script.migration.label} ({exc}); nothing of it was applied",
                    hint="stop the process writing to the database, or raise --lock-timeout",
                ) from None
            except apsw.Error as exc:
                raise self._write_error(exc, f"apply {script.migration.label}") from None

    def _run_script(self, script: Script) -> None:
        """The whole file in one call: SQLite prepares and runs its statements in turn. Splitting it
        (sqlparse) costs more than running a small migration, so it only happens to explain a failure."""
        cursor = self._c().cursor()

        def refuse_transaction_control(_cursor: apsw.Cursor, sql: str, _bindings: Any) -> bool:
            if controls_transaction(sql):
                raise transaction_control_refused(script, sql)
            return True

        cursor.exec_trace = refuse_transaction_control
        for _row in cursor.execute(script.text):
            pass

    def _diagnose(self, script: Script, first: apsw.Error) -> AgorDbError:
        """The transaction has been rolled back; run the statements one by one in a new one, rolled
        back as well, to name the statement that fails and its line."""
        try:
            with self._immediate():
                self._run_statements(script, transactional=True)
                raise _Explained(None)
        except _Explained:
            pass
        except MigrationFailed as failed:
            return failed
        except apsw.Error:
            pass
        return MigrationFailed(
            f"migration {script.migration.label} failed: {_apsw_message(first)}\n"
            "its transaction was rolled back, nothing of it was kept; earlier migrations stay applied.",
            hint=f"fix {script.migration.path} and run agor-db migrate again",
        )

    def _run_statements(self, script: Script, *, transactional: bool) -> None:
        conn = self._c()
        for i, st in enumerate(script.statements):
            if transactional and controls_transaction(st.sql):
                raise transaction_control_refused(script, st.sql)
            try:
                for _row in conn.execute(st.sql):
                    pass
            except _SQL_ERRORS as exc:
                raise statement_failed(script, i, st, _apsw_message(exc), transactional=transactional) from None
            except apsw.Error as exc:
                if transactional:
                    raise  # apply() reports it for the whole rolled-back transaction
                # Outside a transaction the earlier statements stay; say which one stopped and why.
                failed = statement_failed(
                    script, i, st, _apsw_message(exc) + _os_reason(self.conn), transactional=False
                )
                if isinstance(exc, apsw.BusyError):
                    raise LockTimeout(
                        failed.message, hint="stop the process writing to the database, or raise --lock-timeout"
                    ) from None
                failed.hint = "free space on its disk (or raise ulimit -f), then run agor-db migrate again"
                raise failed from None

    def _check_foreign_keys(self, script: Script, *, transactional: bool) -> None:
        """No migration may leave a foreign-key violation that was not there before it ran."""
        rows = self._c().execute("PRAGMA foreign_key_check").fetchall()
        if not rows:
            return
        after: Counter[tuple[str, str]] = Counter((str(r[0]), str(r[2])) for r in rows)
        new = after - self._preexisting
        if not new:
            self.warnings.append(
                f"{script.migration.label}: the database already had {sum(after.values())} foreign-key "
                "violation(s) (orphaned rows) before this migration; it added none. "
                "Find them with PRAGMA foreign_key_check."
            )
            return
        shown = [f"  {table} rowid {rowid} -> {parent} (foreign key #{fk})" for table, rowid, parent, fk in rows[:10]]
        more = f"\n  ... and {len(rows) - 10} more" if len(rows) > 10 else ""
        outcome = "rolled back" if transactional else "NOT rolled back (non-transactional migration), not journaled"
        raise MigrationFailed(
            f"migration {script.migration.label} leaves {sum(new.values())} foreign-key violation(s); {outcome}:\n"
            + "\n".join(shown)
            + more,
            hint="a table rebuild must copy every referenced row; fix the migration",
        )

    def _write_error(self, exc: apsw.Error, doing: str) -> AgorDbError:
        reason = _os_reason(self.conn)  # EFBIG, ENOSPC, EACCES...: what the OS said, if anything
        if isinstance(exc, apsw.ReadOnlyError):
            return DatabaseError(
                f"cannot {doing}: {self.path} is read-only ({exc})",
                hint="make the file and its directory writable for this user",
            )
        if isinstance(exc, apsw.FullError):
            return DatabaseError(
                f"cannot {doing}: the disk holding {self.path} is full ({exc}{reason}); nothing was kept"
            )
        if isinstance(exc, apsw.BusyError):
            return LockTimeout(f"cannot {doing}: {self.path} is locked by another connection ({exc})")
        if isinstance(exc, apsw.IOError):
            return DatabaseError(
                f"cannot {doing} in {self.path}: {exc}{reason}; nothing was kept",
                hint="check the free space and quota of its disk and the file-size limit (ulimit -f)",
            )
        return DatabaseError(f"cannot {doing} in {self.path}: {exc}{reason}")


def _keep_going() -> bool:
    return False  # False: do not abort; Python's pending signals are handled on the way back


_SQL_ERRORS = (apsw.SQLError, apsw.ConstraintError, apsw.MismatchError, apsw.RangeError)


class _Explained(Exception):
    """Raised inside the diagnosis transaction so that it always rolls back."""


def _os_reason(conn: apsw.Connection | None) -> str:
    code = conn.system_errno if conn is not None else 0
    return f": {os.strerror(code)}" if code else ""


def _apsw_message(exc: apsw.Error) -> str:
    text = str(exc)
    # apsw prefixes the class name ("SQLError: ..."); the SQLite text alone reads better
    head, sep, rest = text.partition(": ")
    return rest if sep and head.endswith("Error") else text
