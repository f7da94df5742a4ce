"""`agor-db copy`: move an Agor SQLite database into PostgreSQL in one verified transaction.

Flow: check the source is at the newest sql/sqlite version -> migrate the target to the newest
sql/postgres version -> one read transaction on the source (a consistent snapshot even while Agor
writes in WAL mode) and one transaction on the target, which first takes the migration lock for
itself only (nothing outlives it on a pooled server connection) and re-reads the journal -> per table, in FK
order, one streaming pass (TablePass: read, examine, convert, hash, write) into a COPY, through a
staging table for tables with JSON (load.py) -> rebuild the indexes and foreign keys that were
dropped for the load -> set sequences -> compare checksums -> record the run -> COMMIT.

Any problem found in the pass stops the writing but not the scanning, so the report lists them all;
then everything is rolled back. Foreign keys and secondary indexes are dropped inside the
transaction and re-created from their own definitions (DDL is transactional in PostgreSQL): the load
order then never matters (self-references, cycles), the server validates each FK with one join
instead of a trigger per row, and builds each index once instead of row by row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import interrupts
from ..core.errors import AgorDbError, DatabaseError, DatabaseUnavailable, UsageError, one_line
from ..core.plan import make_plan
from ..core.urls import DatabaseUrl, redact
from . import longtext, parallel
from .convert import Bytes, Converter, Issue, Policies, converter_for, shorten
from .json import JsonOracle
from .load import ServerRefused, TableLoader, wire_types
from .longtext import LongText, TextPieces, select_sql
from .parallel import RangeDone, RangeTask, SnapshotWatch, Workers, worker_count
from .scan import Report, duplicate_sql, key_text, orphan_sql, row_ident_sql, unique_keys_to_check
from .target import RUNS_TABLE, Pair, Table, droppable_keys, match, quote, read_source, read_target
from .verify import Digest, RowHasher, server_digest

PROGRESS_EVERY = 2000
ROWID_MIN = -(2**63)

RUNS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    source_checksum TEXT NOT NULL,
    row_counts JSONB NOT NULL,
    policies JSONB NOT NULL,
    changed_rows BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    agor_db_version TEXT NOT NULL,
    table_checksums JSONB
);
-- run tables written before table_checksums existed get the column (their rows keep NULL)
ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS table_checksums JSONB;
-- the form of the rows' checksums (verify.py): NULL for a run before staged tables were hashed as their
-- binary COPY bytes, 2 since
ALTER TABLE {RUNS_TABLE} ADD COLUMN IF NOT EXISTS checksum_form INT
"""
CHECKSUM_FORM = 2


class SourceNotReady(AgorDbError):
    """The source is not at the newest sql/sqlite version (or was never adopted)."""


class TargetNotEmpty(AgorDbError):
    pass


class TargetEncoding(AgorDbError):
    """The target database is not UTF8."""


class VerificationFailed(AgorDbError):
    pass


EARLY_WORKERS_BYTES = 8 << 20  # a source this large starts its worker processes before the target is prepared


class _Again(Exception):
    """Internal: roll the pass back to its savepoint and run it again."""


class CopyInterrupted(AgorDbError):
    """Ctrl-C (exit 130) or SIGTERM (exit 143) during the copy; everything was rolled back, unless the
    interrupt came while COMMIT was on its way (``committed``: True, or None when that is not known)."""

    def __init__(self, cause: KeyboardInterrupt, committed: bool | None = False) -> None:
        how = interrupts.describe(cause)
        hint = None
        if committed is None:
            message = f"{how} during COMMIT: whether the copy was committed is not known"
            hint = "run the same `agor-db copy` again: 'nothing to do' means the target holds this copy"
        elif committed:
            message = (
                f"{how} during COMMIT, after the commit had gone through: the target holds the copy "
                f"(recorded in {RUNS_TABLE}; copy again says 'nothing to do')"
            )
        else:
            message = f"{how}: the copy was rolled back, the target is unchanged"
        super().__init__(message, hint=hint)
        self.exit_code = interrupts.exit_code(cause)


@dataclass(frozen=True)
class CopyOptions:
    check: bool = False
    truncate: bool = False
    policies: Policies = field(default_factory=Policies)
    lock_timeout: float = 60.0
    workers: int | None = None  # processes for large tables (parallel.py); None: $AGOR_DB_COPY_WORKERS, else the cores


class Progress:
    """What the copier tells the outside world while it works; the CLI overrides these."""

    def phase(self, text: str) -> None:
        pass

    def table_start(self, table: str, total: int) -> None:
        pass

    def table_rows(self, table: str, done: int) -> None:
        pass

    def table_done(self, table: str, rows: int, seconds: float) -> None:
        pass


@dataclass
class TableResult:
    name: str
    source_rows: int = 0
    copied_rows: int = 0
    dropped_rows: int = 0
    seconds: float = 0.0
    bytes: int = 0
    source_digest: Digest | None = None
    target_digest: Digest | None = None
    staged_digest: Digest | None = None  # the server's checksum of the rows it received (load.py)
    stored_rows: int = 0  # how many of them it stored
    worker_rows: int = 0  # rows read, tested and hashed by worker processes (parallel.py)


@dataclass
class CopyResult:
    source: str
    target: str
    check_only: bool
    report: Report
    tables: list[TableResult] = field(default_factory=list)
    already: dict[str, Any] | None = None  # the earlier run when there was nothing to do
    source_checksum: str = ""
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    passes_redone: int = 0  # passes rolled back and done again with every JSON text checked here first

    @property
    def rows(self) -> int:
        return sum(t.copied_rows for t in self.tables)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the source ------------------------------------------------------------------------------


def check_source(url: DatabaseUrl, root: Path) -> int:
    """The newest sql/sqlite version, after making sure the source's journal is at it."""
    from ..core import migrate as core

    if url.dialect != "sqlite":
        raise UsageError(f"--from must be a SQLite database, got {url.display}")
    assert url.path is not None
    if not url.is_memory and url.path.is_dir():
        raise UsageError(
            f"the source {url.display} is a directory, not a SQLite file", hint="give --from the database file"
        )
    if url.is_memory or not url.path.is_file():
        raise DatabaseUnavailable(f"the source {url.display} does not exist", hint="check --from (or AGOR_DB_PATH)")
    inspection = core.inspect(url, root, core.RunOptions())
    plan, migrations = inspection.plan, inspection.migrations
    newest = max((m.version for m in migrations), default=0)
    migrate_cmd = f"agor-db migrate --database-url {url.path}"
    if inspection.legacy:
        raise SourceNotReady(
            f"the source {url.display} has Agor tables but no agor-db journal: it was created by "
            "Agor's old (drizzle) migrator and has not been adopted yet",
            hint=f"run `{migrate_cmd}` first: it adopts the file (writing agor-db's journal into it, "
            "after taking a backup copy beside it) and brings it to the newest version; then copy again",
        )
    if not plan.applied:
        raise SourceNotReady(f"the source {url.display} has no agor-db journal and no tables: there is nothing to copy")
    if plan.problems:
        lines = "; ".join(p.message for p in plan.problems)
        raise SourceNotReady(
            f"the source's journal and the sql/sqlite files disagree: {lines}",
            hint=f"run `agor-db status --database-url {url.path}` to see why",
        )
    if plan.pending:
        at = max(a.version for a in plan.applied)
        raise SourceNotReady(
            f"the source {url.display} is at version {at:04d} but the newest sql/sqlite version is "
            f"{newest:04d}; copy reads only databases at the newest version",
            hint=f"run `{migrate_cmd}` first (it changes the source; Agor should be stopped, "
            "and keep a copy of the file)",
        )
    return newest


def open_snapshot(url: DatabaseUrl, newest: int) -> Any:
    """A read-only connection inside one read transaction: every later read sees one snapshot."""
    import apsw

    assert url.path is not None
    try:
        conn = apsw.Connection(str(url.path), flags=apsw.SQLITE_OPEN_READONLY)
        conn.setbusytimeout(5000)
        conn.execute("BEGIN")
        row = conn.execute("SELECT max(version) FROM agor_migrations").fetchone()
    except apsw.Error as exc:
        raise DatabaseUnavailable(f"cannot read the source {url.display}: {exc}") from None
    if row is None or row[0] != newest:
        conn.close()
        raise SourceNotReady(f"the source {url.display} changed version while copy was starting; run copy again")
    return conn


def stale_details(
    last: dict[str, Any],
    now: dict[str, int],
    filled: dict[str, int],
    checksum: str,
    scan_ok: bool,
    tables: dict[str, str] | None = None,
) -> str:
    """What differs between the earlier copy and the source now: tables and row counts, checksums.
    ``tables``: the source's per-table checksums now (compared with the earlier run's, when it kept them)."""
    before = {t: int(n) for t, n in last["rows"].items() if n}
    changed = [
        f"{t} {before.get(t, 0)} -> {now.get(t, 0)} rows"
        for t in sorted(set(before) | set(now))
        if before.get(t, 0) != now.get(t, 0)
    ]
    parts = ["row counts " + ", ".join(changed)] if changed else ["the same row counts"]
    earlier = last.get("tables") or {}
    if tables and earlier and scan_ok:
        edited = [t for t in sorted(set(tables) | set(earlier)) if tables.get(t) != earlier.get(t)]
        edited = [t for t in edited if before.get(t, 0) == now.get(t, 0)]  # the others are listed above
        if edited:
            parts.append("changed rows in " + ", ".join(edited))
    if filled != before:
        parts.append(
            "the target's tables no longer hold what that copy wrote ("
            + ", ".join(f"{t} {n} rows" for t, n in sorted(filled.items()))
            + ")"
        )
    parts.append(
        f"source checksum {checksum[:16]} (the earlier copy's: {str(last['source_checksum'])[:16]})"
        if scan_ok
        else "the source now holds values PostgreSQL cannot take (run copy --check to list them)"
    )
    return "; ".join(parts)


def table_checksums(tables: list[TableResult]) -> dict[str, str]:
    """Each table's source checksum (rows and digest sum), kept with the run to name what changed later."""
    return {t.name: f"{t.source_digest.rows}:{t.source_digest.total}" for t in tables if t.source_digest}


def source_checksum(tables: list[TableResult]) -> str:
    h = hashlib.sha256()
    for t in sorted(tables, key=lambda t: t.name):
        d = t.source_digest
        h.update(f"{t.name}\x00{d.rows if d else 0}\x00{d.total if d else 0}\n".encode())
    return h.hexdigest()


# -- the target ------------------------------------------------------------------------------


def _pg_error(url: DatabaseUrl, exc: Exception, doing: str) -> AgorDbError:
    import psycopg

    text = redact(one_line(exc), url.secrets)
    if isinstance(exc, psycopg.OperationalError):
        return DatabaseUnavailable(
            f"the connection to {url.display} was lost while {doing}: {text}",
            hint="PostgreSQL rolled the copy back; the target is unchanged",
        )
    return DatabaseError(f"PostgreSQL refused while {doing}: {text}; the copy was rolled back, the target is unchanged")


def check_target_encoding(conn: Any, url: DatabaseUrl) -> None:
    """Agor's text is Unicode: a target in another encoding (LATIN1, WIN1252, SQL_ASCII) would refuse or
    mangle it; refused up front, before the target is touched."""
    row = conn.execute(
        "SELECT pg_encoding_to_char(encoding), current_database() FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    if row is not None and row[0] != "UTF8":
        raise TargetEncoding(
            f"the target database {row[1]} has encoding {row[0]}; agor-db copy needs a UTF8 database "
            "(Agor's text is Unicode); nothing was written",
            hint=f"create one with: CREATE DATABASE {row[1]}_utf8 ENCODING 'UTF8' TEMPLATE template0 "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'; then copy into it",
        )


def _checked_target(conn: Any, url: DatabaseUrl, root: Path) -> dict[str, Table]:
    """For --check: the target's tables as the newest migrations make them, without changing it."""
    from ..core import migrate as core
    from ..core.source import dialect_dir, list_migrations, parse
    from ..drivers.postgres import PostgresDriver

    migrations = list_migrations(dialect_dir(root, "postgres"))
    driver = PostgresDriver(url, readonly=True, conn=conn)  # read the journal on our connection
    applied = driver.read_journal()
    plan = make_plan("postgres", migrations, applied)
    core.raise_for_problems(plan)
    conn.execute("BEGIN")
    try:
        known = {m.id for m in migrations}
        for m in plan.to_apply:  # applied here, read, then rolled back: --check never changes the target
            for st in parse(m, known).statements:
                conn.execute(st.sql.encode("utf-8"), prepare=False)
        return read_target(conn)
    finally:
        conn.execute("ROLLBACK")


def _copied_pk(pair: Pair) -> tuple[str, ...]:
    names = {c.name for c in pair.columns}
    pk = pair.target.primary_key
    return pk if pk and all(c in names for c in pk) else ()


def _policy_text(raw: bytes, policies: Policies) -> str | None:
    """A text value as the text converter's policies leave it; None when it stays refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if policies.invalid_utf8 != "replace":
            return None
        text = raw.decode("utf-8", "replace")
    if "\x00" in text:
        if policies.nul != "strip":
            return None
        text = text.replace("\x00", "")
    return text


def _raw_exprs(names: list[str]) -> str:
    return ", ".join(
        f"CASE WHEN typeof({quote(n)}) = 'text' THEN CAST({quote(n)} AS BLOB) ELSE {quote(n)} END, "
        f"typeof({quote(n)}) = 'text'"
        for n in names
    )


def _decoded(row: Any, names: list[str]) -> tuple[Any, ...]:
    """A row read with _raw_exprs: its text decoded, Bytes where it is not UTF-8; flagged for the slow path."""
    values: list[Any] = [row[0]]
    for i in range(len(names)):
        value, was_text = row[1 + 2 * i], row[2 + 2 * i]
        if was_text:
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                value = Bytes(bytes(value))
        values.append(value)
    values.append(1)
    return tuple(values)


def _whole(value: LongText) -> str | Bytes:
    text = value.whole()
    return text if isinstance(text, str) else Bytes(text)


def _connect(url: DatabaseUrl) -> Any:
    from ..drivers.postgres import connect

    return connect(url)


# -- copy ------------------------------------------------------------------------------------


class Copier:
    def __init__(self, src: DatabaseUrl, dst: DatabaseUrl, root: Path, options: CopyOptions, progress: Progress):
        self.src, self.dst, self.root, self.options, self.progress = src, dst, root, options, progress
        self.report = Report()
        self.result = CopyResult(src.display, dst.display, options.check, self.report)
        # For each parent table: referenced column tuple -> keys of rows a policy dropped.
        self.dropped: dict[str, dict[tuple[str, ...], set[tuple[Any, ...]]]] = {}
        self.writing = not options.check
        self.drop_count = 0
        # Referenced keys as a policy changes them, and keys a policy changed (collision checks).
        self.renamed: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = {}
        self.claimed: dict[tuple[str, str], dict[tuple[Any, ...], str]] = {}
        # PostgreSQL's own jsonb parser, for the JSON Python cannot answer exactly (opened when needed).
        self.oracle = JsonOracle(lambda: _connect(dst))
        self.doing = ""  # what the copy is doing on the target, for the message when PostgreSQL refuses
        self.target: Any = None  # the target's PostgresDriver while copying (not with --check)
        self.worker_count = 1
        self.workers: Workers | None = None  # set for a writing copy with more than one worker
        # Whether the workers may leave JSON texts to PostgreSQL's parse (TablePass.json_unchecked): until
        # it refuses one
        self.server_json = True
        self.watch: SnapshotWatch | None = None
        self.utf8_source = False
        self.started_ms = 0  # this run's started_at in the run table: how it is found after an interrupt
        self.legacy_checksums = False  # hash as agor-db did before CHECKSUM_FORM 2 (to compare with such a run)

    def run(self) -> CopyResult:
        started = time.perf_counter()
        if self.dst.dialect != "postgres":
            raise UsageError(f"--to must be a PostgreSQL URL, got {self.dst.display}")
        self.worker_count = worker_count(self.options.workers)  # a bad value stops here, before any work
        newest = check_source(self.src, self.root)
        try:
            return self._run(started, newest)
        except BaseException:
            self._stop_workers()
            raise

    def _run(self, started: float, newest: int) -> CopyResult:
        from ..core import migrate as core
        from ..drivers.postgres import PostgresDriver, connect

        self._start_workers()
        assert self.src.path is not None
        if self.workers is not None and self.src.path.stat().st_size >= EARLY_WORKERS_BYTES:
            self.workers.start()  # a large source: they start up (~0.4 s) while the target is prepared
        if self.options.check:
            conn = connect(self.dst)
            driver: Any = None
            try:
                check_target_encoding(conn, self.dst)
                target = _checked_target(conn, self.dst, self.root)
            except AgorDbError:
                conn.close()
                raise
        else:
            first = connect(self.dst)
            try:
                check_target_encoding(first, self.dst)
            finally:
                first.close()
            self.progress.phase("migrating the target to the newest sql/postgres version")
            core.migrate(self.dst, self.root, core.RunOptions(lock_timeout=self.options.lock_timeout))
            driver = self.target = PostgresDriver(self.dst)
            conn = driver.conn
            try:
                self._target_at_newest()
                target = read_target(conn)
            except AgorDbError:
                driver.close()
                raise
        self.result.phases["prepare"] = time.perf_counter() - started
        close_target = driver.close if driver is not None else conn.close
        src = self._open_source(newest, close_target)
        try:
            pairs = match(target, read_source(src))
            for p in pairs:
                for c in p.columns:
                    converter_for(c, p.target.name)  # unsupported types stop here, before any work
            if self.options.check:
                if not self._target_has_tables(conn, pairs) or not self._refuse_non_empty(conn, src, pairs):
                    self._pass(src, None, pairs)
            else:
                self._early_workers(src, pairs)
                self._copy(src, conn, pairs)
        except KeyboardInterrupt as exc:
            committed = self._commit_outcome() if self.doing == "committing" else False
            raise CopyInterrupted(exc, committed) from None
        finally:
            self._stop_workers()
            src.close()
            self.oracle.close()
            close_target()
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _commit_outcome(self, wait: float = 10.0) -> bool | None:
        """After an interrupt during COMMIT (a slow disk, a synchronous standby that does not answer): was
        this copy committed? Asked on a new connection: its run row is there (True), or the interrupted
        backend is no longer busy and the row is not there (False); None when that cannot be told."""
        import psycopg

        assert self.target is not None
        pid = self.target.conn.info.backend_pid
        deadline = time.monotonic() + wait
        try:
            with _connect(self.dst) as probe:
                probe.autocommit = True
                while True:
                    busy = probe.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,))
                    still = busy.fetchone() is not None
                    if self._run_recorded(probe):
                        return True
                    if not still:
                        return False
                    if time.monotonic() > deadline:
                        return None
                    time.sleep(0.1)
        except (psycopg.Error, AgorDbError):
            return None

    def _run_recorded(self, conn: Any) -> bool:
        if conn.execute("SELECT to_regclass(%s)", (RUNS_TABLE,)).fetchone()[0] is None:
            return False
        row = conn.execute(
            f"SELECT 1 FROM {RUNS_TABLE} WHERE source = %s AND started_at = %s", (self.src.display, self.started_ms)
        ).fetchone()
        return row is not None

    def _open_source(self, newest: int, close_target: Any) -> Any:
        """The main snapshot, after the watch the workers need (parallel.SnapshotWatch: made before it)."""
        try:
            self._start_workers()
            src = open_snapshot(self.src, newest)
            # blob reads (longtext.py) give the stored bytes: UTF-8 only in a UTF-8 database
            self.utf8_source = src.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"
            return src
        except BaseException:
            self._stop_workers()
            close_target()
            raise

    def _start_workers(self) -> None:
        """Worker processes for a writing copy (started when a large table first needs them), and the watch
        that tells whether their snapshots are the main one's: made before the main snapshot begins."""
        if self.watch is None and self.worker_count > 1 and not self.options.check:
            assert self.src.path is not None
            self.watch = SnapshotWatch(str(self.src.path))
            self.workers = Workers(str(self.src.path), self.worker_count)

    def _early_workers(self, src: Any, pairs: list[Pair]) -> None:
        """Start the workers now when a table will need them: they start up while the small tables go."""
        if self.workers is None:
            return
        for p in pairs:
            if p.source is not None and p.source.has_rowid:
                lo, hi = src.execute(f"SELECT min(rowid), max(rowid) FROM {quote(p.source.name)}").fetchone()
                if lo is not None and hi - lo + 1 >= parallel.MIN_ROWS:
                    self.progress.phase(f"starting {self.workers.count} worker processes for the large tables")
                    self.workers.start()
                    return

    def _stop_workers(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    def _snapshot_moved(self) -> bool:
        """A commit reached the source during a pass that used workers: their rows may not be the main
        snapshot's. The pass is then done again without them."""
        if self.watch is None or not self.watch.changed():
            return False
        self._stop_workers()
        self.progress.phase("the source changed during the copy: copying again without worker processes")
        return True

    # -- target state ---------------------------------------------------------------------------

    def _earlier_runs(self, conn: Any) -> list[dict[str, Any]]:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (RUNS_TABLE,)).fetchone()[0]
        if not exists:
            return []
        # to_jsonb(r): a run table from before table_checksums existed has no such column (NULL then)
        rows = conn.execute(
            f"SELECT source, source_checksum, row_counts, started_at, finished_at, "
            f"to_jsonb(r) -> 'table_checksums', to_jsonb(r) -> 'checksum_form' FROM {RUNS_TABLE} r ORDER BY id"
        ).fetchall()
        return [
            {
                "source": r[0],
                "source_checksum": r[1],
                "rows": r[2],
                "started_at": r[3],
                "finished_at": r[4],
                "tables": r[5] or {},
                "checksum_form": r[6],
            }
            for r in rows
        ]

    def _target_has_tables(self, conn: Any, pairs: list[Pair]) -> bool:
        """For --check, which must refuse what the copy would: do the target's tables exist yet (a fresh
        target is only migrated by the copy itself)?"""
        names = [p.target.name for p in pairs]
        sql = "SELECT bool_and(to_regclass(quote_ident(n)) IS NOT NULL) FROM unnest(%s::text[]) n"
        return bool(conn.execute(sql, (names,)).fetchone()[0])

    def _refuse_non_empty(self, conn: Any, src: Any, pairs: list[Pair]) -> bool:
        """True when the target already holds a copy of exactly this source (nothing to do); raises when it
        holds anything else. "Exactly" is the whole-source checksum, computed by a scan that writes nothing."""
        filled = {
            p.target.name: int(conn.execute(f"SELECT count(*) FROM {quote(p.target.name)}").fetchone()[0])
            for p in pairs
        }
        filled = {t: n for t, n in filled.items() if n}
        if not filled or self.options.truncate:
            return False
        runs = self._earlier_runs(conn)
        last = runs[-1] if runs else None
        listing = ", ".join(f"{t} ({n} row{'' if n == 1 else 's'})" for t, n in sorted(filled.items()))
        hint = (
            "copy into an empty database, or add --truncate to empty these tables inside the copy's "
            "transaction first (the old rows are kept if anything fails)"
        )
        if last is None:
            raise TargetNotEmpty(
                f"the target {self.dst.display} is not empty: {listing}; nothing was written", hint=hint
            )
        writing, self.writing = self.writing, False
        self.progress.phase("the target holds an earlier copy: computing the source's checksum to compare")
        self.legacy_checksums = last["checksum_form"] != CHECKSUM_FORM  # its checksums in its own form
        try:
            self._pass(src, None, pairs)
        finally:
            self.writing, self.legacy_checksums = writing, False
        checksum = source_checksum(self.result.tables)
        now = {t.name: t.source_digest.rows for t in self.result.tables if t.source_digest and t.source_digest.rows}
        if self.report.ok and checksum == last["source_checksum"] and filled == now:
            self.result.already = last
            self.result.source_checksum = checksum
            return True
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["finished_at"] / 1000))
        raise TargetNotEmpty(
            f"the target {self.dst.display} holds the copy of {last['source']} made at {when}, and the source "
            f"{self.src.display} differs from it: "
            + stale_details(last, now, filled, checksum, self.report.ok, table_checksums(self.result.tables))
            + "; nothing was written",
            hint="to replace the earlier copy with the source as it is now, run the copy again with --truncate "
            "(it empties the tables inside the copy's transaction; the old rows are kept if anything fails)",
        )

    def _target_at_newest(self) -> None:
        from ..core import migrate as core

        assert self.target is not None
        plan = make_plan("postgres", core.load(self.dst, self.root), self.target.read_journal())
        if plan.pending or plan.problems:
            raise AgorDbError("the target changed version while copy was starting; run copy again")

    # -- the pass --------------------------------------------------------------------------------

    def _copy(self, src: Any, conn: Any, pairs: list[Pair]) -> None:
        import psycopg

        started_ms = self.started_ms = now_ms()
        self.doing = "starting the copy"
        try:
            with conn.transaction():
                # The migration lock for this transaction only (a session lock would stay behind on a
                # pooled server connection); the journal is read again under it.
                self.doing = "waiting for the migration lock"
                assert self.target is not None
                self.target.lock_in_transaction(self.options.lock_timeout)
                self._target_at_newest()
                if self._refuse_non_empty(conn, src, pairs):
                    return
                names = [p.target.name for p in pairs]
                if self.options.truncate and names:
                    self.doing = "emptying the target tables"
                    conn.execute("TRUNCATE " + ", ".join(quote(n) for n in names))
                conn.execute(RUNS_DDL)
                self.doing = "dropping indexes and foreign keys for the load"
                fks = [fk for p in pairs for fk in p.target.foreign_keys]
                indexes = [ix for p in pairs for ix in p.target.indexes]
                for fk in fks:
                    conn.execute(f"ALTER TABLE {quote(fk.table)} DROP CONSTRAINT {quote(fk.name)}")
                # Keys too: every row inserted into a key's index costs the server far more than one build
                # by sort afterwards (~8 us a row for Agor's uuid keys). Duplicates are found in the source
                # beforehand (scan.duplicate_sql); the keys added back would refuse any left.
                keys = droppable_keys(conn, names)
                for key in keys:
                    conn.execute(f"ALTER TABLE {quote(key.table)} DROP CONSTRAINT {quote(key.name)}")
                for ix in indexes:
                    conn.execute(f"DROP INDEX {quote(ix.name)}")
                self.doing = "copying rows"
                self._pass(src, conn, pairs)
                if not self.report.ok:
                    raise self.report.error()
                self._rebuild(conn, pairs, keys, indexes, fks)
                self._verify(conn, pairs)
                self._record(conn, started_ms)
                self.doing = "committing"
        except psycopg.Error as exc:
            raise _pg_error(self.dst, exc, self.doing) from None

    def _rebuild(self, conn: Any, pairs: list[Pair], keys: list[Any], indexes: list[Any], fks: list[Any]) -> None:
        t0 = time.perf_counter()
        self.progress.phase(f"rebuilding {len(keys) + len(indexes)} index(es) and {len(fks)} foreign key(s)")
        for key in keys:
            self.doing = f"re-adding key {key.name} on {key.table}"
            conn.execute(f"ALTER TABLE {quote(key.table)} ADD CONSTRAINT {quote(key.name)} {key.definition}")
        for ix in indexes:
            self.doing = f"re-creating index {ix.name}"
            conn.execute(ix.definition)
        for fk in fks:
            self.doing = f"re-adding foreign key {fk.name} on {fk.table}"
            conn.execute(f"ALTER TABLE {quote(fk.table)} ADD CONSTRAINT {quote(fk.name)} {fk.definition}")
        for p in pairs:
            for seq in p.target.sequences:
                self.doing = f"setting sequence {seq.sequence}"
                conn.execute(
                    f"SELECT setval(%s, coalesce(max({quote(seq.column)}), 0) + 1, false) FROM {quote(p.target.name)}",
                    (seq.sequence,),
                )
        self.result.phases["rebuild"] = time.perf_counter() - t0

    def _verify(self, conn: Any, pairs: list[Pair]) -> None:
        t0 = time.perf_counter()
        self.progress.phase("verifying row counts and checksums")
        for p, tr in zip(pairs, self.result.tables, strict=True):
            self.doing = f"verifying {p.target.name}"
            tr.target_digest = self._target_digest(conn, p, tr)
            if tr.target_digest != tr.source_digest:
                s, t = tr.source_digest, tr.target_digest
                raise VerificationFailed(
                    f"verification failed for table {p.target.name}: the source side has "
                    f"{s.rows if s else 0} rows (checksum {s.total if s else 0}), the target "
                    f"{t.rows} rows (checksum {t.total}); the copy was rolled back, the target is unchanged",
                    hint="this is a bug in agor-db copy; please report it with AGOR_DB_DEBUG=1 output",
                )
        self.result.phases["verify"] = time.perf_counter() - t0

    def _record(self, conn: Any, started_ms: int) -> None:
        from .. import __version__

        self.result.source_checksum = source_checksum(self.result.tables)
        conn.execute(
            f"INSERT INTO {RUNS_TABLE} (source, source_checksum, row_counts, policies, changed_rows, "
            "started_at, finished_at, agor_db_version, table_checksums, checksum_form) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                self.src.display,
                self.result.source_checksum,
                json.dumps({t.name: t.copied_rows for t in self.result.tables}),
                json.dumps(self.options.policies.as_dict()),
                self.report.change_count,
                started_ms,
                now_ms(),
                __version__,
                json.dumps(table_checksums(self.result.tables)),
                CHECKSUM_FORM,
            ),
        )

    def _target_digest(self, conn: Any, pair: Pair, tr: TableResult) -> Digest:
        """What the target holds, as a digest to compare with the source side's. A staged table: the server's
        checksum of the bytes it received, when the table holds exactly the rows it stored from them (it
        stored its own jsonb parse of those bytes, load.py); otherwise the checksum of the stored rows."""
        name = pair.target.name
        if tr.staged_digest is None:
            return server_digest(conn, name, self._converters(pair))
        rows = int(conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0])
        if rows == tr.stored_rows == tr.staged_digest.rows:
            return tr.staged_digest
        return Digest(rows if rows != tr.staged_digest.rows else tr.stored_rows, tr.staged_digest.total)  # differs

    def _converters(self, pair: Pair) -> tuple[Converter, ...]:
        return tuple(converter_for(c, pair.target.name) for c in pair.columns)

    def _pass(self, src: Any, conn: Any, pairs: list[Pair]) -> None:
        """The streaming pass; again (its writes rolled back to a savepoint) when a policy dropped a row that
        rows read before it refer to (a self-reference, a cycle): the next pass knows those drops from the
        start, so every reference is tested against the rows PostgreSQL will really hold."""
        known: dict[str, dict[tuple[str, ...], set[tuple[Any, ...]]]] = {}
        writing = self.writing
        while True:
            self.writing = writing
            self._reset(known)
            if conn is None:
                self._pass_once(src, None, pairs)
                if not self._dropped_behind(pairs, known):
                    return
            else:
                try:
                    with conn.transaction():  # a savepoint
                        self._pass_once(src, conn, pairs)
                        if self._snapshot_moved():
                            raise _Again(True)
                        if self._dropped_behind(pairs, known):
                            raise _Again
                    return
                except _Again as again:
                    if again.args:  # the same pass again: what this one found may rest on other rows
                        continue
                except ServerRefused:
                    # A JSON text the workers sent unchecked (bad data, which the checks here then find and
                    # report, or apply a policy to): the pass again, with them
                    self.server_json = False
                    self.result.passes_redone += 1
                    self.progress.phase("PostgreSQL refused a JSON text: copying again, every one checked here first")
                    continue
            known = {t: {c: set(k) for c, k in d.items()} for t, d in self.dropped.items()}

    def _reset(self, known: dict[str, dict[tuple[str, ...], set[tuple[Any, ...]]]]) -> None:
        self.report = Report()
        self.result.report = self.report
        self.result.tables = []
        self.claimed = {}
        self.dropped = {t: {c: set(k) for c, k in d.items()} for t, d in known.items()}
        self.drop_count = sum(len(k) for d in known.values() for k in d.values())

    def _dropped_behind(self, pairs: list[Pair], known: dict[str, dict[tuple[str, ...], set[tuple[Any, ...]]]]) -> bool:
        """Did this pass drop a row (newly) that a row read before it may refer to?"""
        position = {p.target.name: i for i, p in enumerate(pairs)}
        for i, p in enumerate(pairs):
            for fk in p.target.foreign_keys:
                if position.get(fk.ref_table, -1) < i:
                    continue  # the parent came first: its drops were known to every child row
                now = self.dropped.get(fk.ref_table, {}).get(fk.ref_columns, set())
                if now - known.get(fk.ref_table, {}).get(fk.ref_columns, set()):
                    return True
        return False

    def _pass_once(self, src: Any, conn: Any, pairs: list[Pair]) -> None:
        t0 = time.perf_counter()
        for p in pairs:
            for fk in p.target.foreign_keys:
                self.dropped.setdefault(fk.ref_table, {}).setdefault(fk.ref_columns, set())
        self._renamed_keys(src, pairs)
        drop_rowids = self._duplicates(src, pairs)
        for pair in pairs:
            result = TableResult(pair.target.name)
            self.result.tables.append(result)
            if pair.source is None:
                result.source_digest = Digest(0, 0)
                continue
            self._table(src, conn, pair, result, drop_rowids.get(pair.target.name, set()))
        self.result.phases["copy" if conn is not None else "scan"] = time.perf_counter() - t0

    def _duplicates(self, src: Any, pairs: list[Pair]) -> dict[str, set[Any]]:
        """Rows that repeat a key the target enforces but SQLite did not (all but the newest of each set),
        each named by its primary key."""
        drop: dict[str, set[Any]] = {}
        for pair in pairs:
            if pair.source is None:
                continue
            pk = _copied_pk(pair)
            for key in unique_keys_to_check(pair):
                sql = duplicate_sql(pair.source, key, pk)
                if sql is None:
                    continue
                n = len(key.columns)
                for row in src.execute(sql):
                    text = key_text(key.columns, row[1 : 1 + n])
                    name = key_text(pk, row[1 + n :]) if pk else f"rowid={row[0]}"
                    if self.options.policies.duplicates == "drop":
                        drop.setdefault(pair.target.name, set()).add(row[0])
                        self.report.change(
                            pair.target.name,
                            name,
                            ",".join(key.columns),
                            f"row dropped: duplicate of a newer row on {key.name} ({text})",
                        )
                    else:
                        self.report.problem(
                            pair.target.name,
                            name,
                            Issue(
                                "duplicate",
                                ",".join(key.columns),
                                text,
                                f"a newer row has the same {key.name} key; SQLite did not enforce it",
                            ),
                        )
        return drop

    def _table(self, src: Any, conn: Any, pair: Pair, result: TableResult, drop_rowids: set[int]) -> None:
        TablePass(self, src, pair, result, drop_rowids).run(conn)

    def _raw_row(self, src: Any, table: str, names: list[str], flag: str, last: int) -> tuple[Any, ...]:
        """The row apsw could not decode, with its text read as bytes."""
        row = src.execute(
            f"SELECT rowid, {_raw_exprs(names)}, ({flag}) FROM {quote(table)} WHERE rowid > ? ORDER BY rowid LIMIT 1",
            (last,),
        ).fetchone()
        return _decoded(row, names)

    def _raw_rows(
        self, src: Any, table: str, names: list[str], flag: str, ident: str, order: str, skip: int
    ) -> Iterator[tuple[Any, ...]]:
        """A WITHOUT ROWID table from its ``skip``-th row on (in primary key order), text read as bytes."""
        query = f"SELECT {ident}, {_raw_exprs(names)}, ({flag}) FROM {quote(table)} ORDER BY {order} LIMIT -1 OFFSET ?"
        for row in src.execute(query, (skip,)):
            yield _decoded(row, names)

    def _slow(
        self,
        src: Any,
        pair: Pair,
        convs: tuple[Converter, ...],
        fks: list[Any],
        pk: tuple[str, ...],
        pk_idx: list[int],
        row: tuple[Any, ...],
        policies: Policies,
        drop_rowids: set[int],
    ) -> tuple[Any, ...] | None:
        """Examine one row exactly; return the values to load or None when a policy drops the row."""
        table = pair.target.name
        values = list(row[1:-1])
        rowid = row[0]
        key = key_text(pk, [values[i] for i in pk_idx]) if pk else f"rowid={rowid}"
        issues: list[Issue] = []
        changes: list[tuple[str, str]] = []
        drop = rowid in drop_rowids
        for i, conv in enumerate(convs):
            out = conv.convert(values[i], policies, self.oracle)
            values[i] = out.value
            issues.extend(out.issues)
            changes.extend((conv.name, c) for c in out.changes)
            drop = drop or out.drop_row
        if changes and not drop:
            drop = self._policy_collisions(src, pair, row, values, key, issues, changes)
        for fk in fks:
            drop = self._orphan(src, pair, fk, values, issues, changes) or drop
        if drop:
            for col, action in changes:
                if action.startswith("row dropped"):
                    self.report.change(table, key, col, action)
            self.drop_count += 1
            self._remember_drop(table, pair, values)
            return None
        for issue in issues:
            self.report.problem(table, key, issue)
        for col, action in changes:
            self.report.change(table, key, col, action)
        return tuple(values)

    def _orphan(
        self,
        src: Any,
        pair: Pair,
        fk: Any,
        values: list[Any],
        issues: list[Issue],
        changes: list[tuple[str, str]],
    ) -> bool:
        """A foreign key of the row whose parent PostgreSQL will not hold: reported, set to NULL, or (True)
        the row is to be dropped, as --orphans says."""
        index = {c.name: i for i, c in enumerate(pair.columns)}
        fk_vals = [values[index[c]] for c in fk.columns]
        if any(v is None or isinstance(v, Bytes) for v in fk_vals):
            return False
        why = None
        dropped = self.dropped.get(fk.ref_table, {}).get(fk.ref_columns)
        if dropped and tuple(fk_vals) in dropped:
            why = f"its {fk.ref_table} row was dropped by a policy"
        elif tuple(fk_vals) in self.renamed.get((fk.ref_table, fk.ref_columns), ()):
            pass  # the parent's key as a policy makes it in PostgreSQL
        else:
            match_ = " AND ".join(f"{quote(r)} = ?" for r in fk.ref_columns)
            if src.execute(f"SELECT 1 FROM {quote(fk.ref_table)} WHERE {match_} LIMIT 1", fk_vals).fetchone() is None:
                why = f"no {fk.ref_table} row has {', '.join(fk.ref_columns)} = {', '.join(map(repr, fk_vals))}"
        if why is None:
            return False
        col_names = ",".join(fk.columns)
        policies = self.options.policies
        if policies.orphans == "drop":
            changes.append((col_names, f"row dropped: orphaned foreign key ({why})"))
            return True
        if policies.orphans == "null" and not any(pair.target.column(c).not_null for c in fk.columns):
            for c in fk.columns:
                values[index[c]] = None
            changes.append((col_names, f"orphaned foreign key set to NULL ({why})"))
            return False
        detail = why if policies.orphans == "fail" else f"{why}; the column is NOT NULL, use --orphans=drop"
        shown = shorten(fk_vals[0] if len(fk_vals) == 1 else tuple(fk_vals))
        not_null = any(pair.target.column(c).not_null for c in fk.columns)
        issues.append(Issue("orphan", col_names, shown, f"{detail} ({fk.name})", "--orphans=drop" if not_null else ""))
        return False

    def _policy_collisions(
        self,
        src: Any,
        pair: Pair,
        row: tuple[Any, ...],
        values: list[Any],
        key: str,
        issues: list[Issue],
        changes: list[tuple[str, str]],
    ) -> bool:
        """A key a policy changed (NULs stripped, invalid UTF-8 replaced) that now equals another row's key:
        PostgreSQL would refuse the pair. Reported (or, with --duplicates=drop, this row dropped)."""
        index = {c.name: i for i, c in enumerate(pair.columns)}
        assert pair.source is not None
        for uk in unique_keys_to_check(pair):
            idx = [index[c] for c in uk.columns]
            new = tuple(values[i] for i in idx)
            if all(values[i] is row[1 + i] for i in idx) or any(v is None or isinstance(v, Bytes) for v in new):
                continue
            claimed = self.claimed.setdefault((pair.target.name, uk.name), {})
            other = claimed.get(new)
            if other is None:
                match_ = " AND ".join(f"{quote(c)} = ?" for c in uk.columns)
                hit = src.execute(f"SELECT 1 FROM {quote(pair.source.name)} WHERE {match_} LIMIT 1", new).fetchone()
                other = "another row's" if hit is not None else None
            if other is None:
                claimed[new] = f"{key}'s"
                continue
            cols = ",".join(uk.columns)
            why = f"after the policy's change it equals {other} {uk.name} key ({key_text(uk.columns, new)})"
            if self.options.policies.duplicates == "drop":
                changes.append((cols, f"row dropped: duplicate created by a policy ({why})"))
                return True
            issues.append(Issue("duplicate", cols, shorten(new[0] if len(new) == 1 else new), why))
        return False

    def _renamed_keys(self, src: Any, pairs: list[Pair]) -> None:
        """Referenced keys a policy will change (so children are tested against the parent's key as it
        will be in PostgreSQL, whatever the table order): read as bytes, changed as the converter would."""
        self.renamed = {}
        policies = self.options.policies
        if policies.nul != "strip" and policies.invalid_utf8 != "replace":
            return
        by_name = {p.target.name: p for p in pairs}
        wanted = {(fk.ref_table, fk.ref_columns) for p in pairs for fk in p.target.foreign_keys}
        for table, cols in sorted(wanted):
            parent = by_name.get(table)
            if parent is None or parent.source is None:
                continue
            picks = ", ".join(f"CAST({quote(c)} AS BLOB), typeof({quote(c)}) = 'text'" for c in cols)
            odd = " OR ".join(
                f"(typeof({quote(c)}) = 'text' AND (instr(CAST({quote(c)} AS BLOB), x'00') > 0 "
                f"OR {quote(c)} GLOB '*[^' || char(1) || '-' || char(127) || ']*'))"  # any non-ASCII
                for c in cols
            )
            keys: set[tuple[Any, ...]] = set()
            for r in src.execute(f"SELECT {picks} FROM {quote(parent.source.name)} WHERE {odd}"):
                vals = [_policy_text(bytes(r[2 * i]), policies) if r[2 * i + 1] else r[2 * i] for i in range(len(cols))]
                if None not in vals:
                    keys.add(tuple(vals))
            self.renamed[(table, cols)] = keys

    def _remember_drop(self, table: str, pair: Pair, values: list[Any]) -> None:
        index = {c.name: i for i, c in enumerate(pair.columns)}
        for cols, keys in self.dropped.get(table, {}).items():
            if all(c in index for c in cols):
                keys.add(tuple(values[index[c]] for c in cols))


class TablePass:
    """One table's pass. Each row goes through the same steps, top to bottom:

    read     the rows in rowid order from the snapshot, with the SQLite-side tests' verdict (``flag``);
             text that is not UTF-8 is read again as bytes (and always examined exactly);
    examine  rows the SQLite-side tests passed, that no policy concerns, go as they are; the others ...
    convert  ... get the exact check (``Copier._slow``): the values to load, a policy's change, or problems;
    hash     the values exactly as they are sent (JSON as its text, see load.py); a JSON text that may
             be one jsonb refuses gets the exact check first, and is converted like a flagged row;
    write    the values to the table's COPY (load.TableLoader), unless a problem stopped writing.
    """

    def __init__(self, copier: Copier, src: Any, pair: Pair, result: TableResult, drop_rowids: set[int]) -> None:
        self.copier, self.src, self.pair, self.result, self.drop_rowids = copier, src, pair, result, drop_rowids
        table, source = pair.target, pair.source
        assert source is not None
        self.source = source
        self.convs = copier._converters(pair)
        self.names = [c.name for c in pair.columns]
        self.pk = _copied_pk(pair)
        self.pk_idx = [self.names.index(c) for c in self.pk]
        self.fks = [fk for fk in table.foreign_keys if all(c in self.names for c in fk.columns)]
        orphan_tests = [orphan_sql(table, fk.columns, fk.ref_table, fk.ref_columns) for fk in self.fks]
        self.long_cols = self._long_columns(copier.utf8_source)
        # The checksum's form: an earlier copy's own (its run says which) when comparing with it
        self.wire = None if copier.legacy_checksums else wire_types(pair.columns, self.convs)
        # The binary form's hashing looks for NUL characters itself (verify.RowHasher), far cheaper than SQLite
        nul = self.wire is None
        longs = [longtext.LONG if i in self.long_cols else None for i in range(len(self.convs))]
        tests = [c.attention_sql(at, nul) for c, at in zip(self.convs, longs, strict=True)]
        self.flag = " OR ".join(tests + orphan_tests) or "0"
        # Worker ranges of a staged table may leave whether a JSON text parses to PostgreSQL: its own jsonb
        # parse of the bytes it received is the exact test (Copier.server_json, load.ServerRefused)
        self.json_unchecked = copier.server_json and self.wire is not None
        if self.json_unchecked:
            tests = [c.attention_sql(at, nul, json=False) for c, at in zip(self.convs, longs, strict=True)]
        self.worker_flag = " OR ".join(tests + orphan_tests) or "0"
        self.order = "rowid" if source.has_rowid else ", ".join(quote(c) for c in self.pk) or "rowid"
        self.ident = row_ident_sql(source, self.pk)
        # Parents a policy dropped rows from: children pointing at them are orphans too (live sets).
        self.lost = any(fk.ref_columns in copier.dropped.get(fk.ref_table, {}) for fk in self.fks)
        self.hasher = RowHasher(self.convs, copier.oracle, json_as_sent=True, wire=self.wire)
        self.write_row: Any = None
        self.loader: TableLoader | None = None
        self.writing = copier.writing and copier.report.ok  # changes only when convert reports a problem
        self.seen = self.copied = self.total = 0
        self.last = ROWID_MIN

    def _long_columns(self, utf8_source: bool) -> list[int]:
        """The columns whose long values are read in pieces (longtext.py): JSON, and text without a length
        limit that no key or reference compares; only in a table that goes through the stage (load.py),
        and where a blob read gives the value's UTF-8 (a rowid table of a UTF-8 database)."""
        convs = self.convs
        if not (self.source.has_rowid and utf8_source and any(c.family == "json" for c in convs)):
            return []
        keyed = set(self.pk) | {c for fk in self.pair.target.foreign_keys for c in fk.columns}
        keyed |= {c for key in self.pair.target.uniques for c in key.columns}
        return [
            i
            for i, c in enumerate(convs)
            if c.family == "json" or (c.family == "text" and c.column.max_length is None and c.name not in keyed)
        ]

    def run(self, conn: Any) -> None:
        name, result = self.pair.target.name, self.result
        total = self.total = int(self.src.execute(f"SELECT count(*) FROM {quote(self.source.name)}").fetchone()[0])
        self.copier.progress.table_start(name, total)
        started = time.perf_counter()
        if self.copier.writing and conn is not None:
            loader = self.loader = TableLoader(
                conn, name, self.pair.columns, self.convs, self.long_cols, self.wire, self.json_unchecked
            )
            with loader as self.write_row:
                self._rows()
            self.loader = None
            result.staged_digest, result.stored_rows = loader.staged, loader.inserted
        else:
            self._rows()
        if not self.copier.report.ok:
            self.copier.writing = False
        result.source_rows, result.copied_rows = self.seen, self.copied
        result.seconds = time.perf_counter() - started
        result.source_digest = self.hasher.digest()
        self.copier.progress.table_done(name, self.seen, result.seconds)

    def _rows(self) -> None:
        ranges = self._ranges()
        if ranges is None:
            self._exact()
            return
        try:
            for done in ranges:
                if not done.clean or not self.examine_range(done):
                    self._exact(done.hi)  # the range again, row by row, in order
                else:
                    self._take(done)
        finally:
            # Stopped midway (an error, PostgreSQL refusing a text): the ranges in flight are dropped now, with
            # the workers that hold them, not whenever the traceback lets go of this generator: a pass done
            # again would otherwise read their results as its own
            ranges.close()

    def _exact(self, upto: int | None = None) -> None:
        for row in self.read(upto):
            values = row[1:-1] if self.examine(row) else None
            if values is None or not self.hash(values):
                values = self.convert(row)
            if values is not None:
                self.write(values)

    def _query(self, upto: bool, flag_sql: str | None = None) -> str:
        columns, flag = [quote(n) for n in self.names], f"({flag_sql or self.flag})"
        if self.long_cols:  # the flag's bit k+1: the k-th of them is long (its value is its length)
            bits, any_long = [], []
            for k, i in enumerate(self.long_cols):
                columns[i], is_long = select_sql(self.names[i])
                bits.append(f"{2 << k} * {is_long}")
                any_long.append(f"octet_length({quote(self.names[i])}) > {longtext.LONG}")
            # One cheap test first: almost no row has a long value, and the bits cost ~0.3 us each.
            flag = f"(coalesce({flag}, 0) + CASE WHEN {' OR '.join(any_long)} THEN {' + '.join(bits)} ELSE 0 END)"
        return (
            f"SELECT {self.ident}, {', '.join(columns)}, {flag} "
            f"FROM {quote(self.source.name)} "
            + ("WHERE rowid > ? " if self.source.has_rowid else "")
            + ("AND rowid <= ? " if upto else "")
            + f"ORDER BY {self.order}"
        )

    def _ranges(self) -> Generator[RangeDone, None, None] | None:
        """The table's rows read, tested and hashed by the worker processes, range by range in rowid order;
        None for the single path (no workers, a small or WITHOUT ROWID table, rows a policy drops by rowid)."""
        workers = self.copier.workers
        if workers is None or not self.source.has_rowid or self.drop_rowids or self.loader is None:
            return None
        rows = self.total
        if rows < parallel.MIN_ROWS:
            return None
        table = quote(self.source.name)
        lo, hi = self.src.execute(f"SELECT min(rowid), max(rowid) FROM {table}").fetchone()
        size = " + ".join(f"coalesce(octet_length({quote(n)}), 0)" for n in self.names)  # reads no value
        step = parallel.sample_step(lo, hi)
        samples = [(at, float(b or 0)) for at, b in self.src.execute(parallel.sample_sql(table, size), (lo, step, hi))]
        oids, limit = self.loader.wire_oids, parallel.RANGE_LIMIT
        unchecked = self.json_unchecked and oids is not None  # only rows sent as the worker wrote them
        query = self._query(True, self.worker_flag if unchecked else None)
        bounds = parallel.split_sized(lo, hi, rows, samples)
        tasks = (RangeTask(query, self.convs, a, b, oids, limit, self.wire, not unchecked) for a, b in bounds)
        return workers.run(self.pair.target.name, tasks)

    def examine_range(self, done: RangeDone) -> bool:
        """True when a worker's clean range can go as it is: no policy drop makes its rows need the exact path."""
        return not (self.lost and self.copier.drop_count and self._parents_dropped())

    def _parents_dropped(self) -> bool:
        """Has a policy dropped rows of a table this one refers to? Its rows may then point at one (orphans
        now); a row dropped from any other table (this one, say) concerns none of them."""
        dropped = self.copier.dropped
        return any(dropped.get(fk.ref_table, {}).get(fk.ref_columns) for fk in self.fks)

    def _take(self, done: RangeDone) -> None:
        """A clean range from a worker: its digests summed, its values written, as the single path would."""
        before = self.seen
        self.seen += done.rows
        self.last = done.hi
        self.hasher.merge(done.rows, done.total)
        self.result.worker_rows += done.rows
        if self.writing:
            assert self.loader is not None
            if done.data is not None:
                self.loader.add_encoded(done.data)
            else:
                write_row = self.write_row
                for values in done.values or ():
                    write_row(values)
            self.copied += done.rows
        if self.seen // PROGRESS_EVERY != before // PROGRESS_EVERY:
            self.copier.progress.table_rows(self.pair.target.name, self.seen)

    def read(self, upto: int | None = None) -> Iterator[tuple[Any, ...]]:
        """(row ident, values..., flag) for every row after ``self.last`` (up to rowid ``upto``); rows apsw
        cannot decode are read again as bytes."""
        c, src, source = self.copier, self.src, self.source
        query = self._query(upto is not None)
        params: tuple[Any, ...] = (self.last,) if source.has_rowid else ()
        if upto is not None:
            params = (self.last, upto)
        while True:
            try:
                for row in src.execute(query, params):
                    if self.long_cols and row[-1] > 1:
                        row = self._with_long(row)
                    self._count(row)
                    yield row
                return
            except UnicodeDecodeError:
                if not source.has_rowid:  # no rowid to step past it: the rest of the table read as bytes
                    for raw in c._raw_rows(src, source.name, self.names, self.flag, self.ident, self.order, self.seen):
                        self._count(raw)
                        yield raw
                    return
                raw = c._raw_row(src, source.name, self.names, self.flag, self.last)
                self._count(raw)
                yield raw
                params = (self.last,) if upto is None else (self.last, upto)

    def _with_long(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """The row with a LongText in place of each long value's length, the flag's own bit alone."""
        values, bits = list(row), row[-1] >> 1
        for k, i in enumerate(self.long_cols):
            if bits >> k & 1:
                json = self.convs[i].family == "json"
                values[1 + i] = LongText(self.src, self.source.name, self.names[i], row[0], values[1 + i], json)
        values[-1] = row[-1] & 1
        return tuple(values)

    def _count(self, row: tuple[Any, ...]) -> None:
        self.seen += 1
        self.last = row[0]
        if self.seen % PROGRESS_EVERY == 0:
            self.copier.progress.table_rows(self.pair.target.name, self.seen)

    def examine(self, row: tuple[Any, ...]) -> bool:
        """True when the row can go as it is: the SQLite-side tests found nothing, no policy concerns it."""
        return not (
            row[-1] or (self.lost and self.copier.drop_count and self._parents_dropped()) or row[0] in self.drop_rowids
        )

    def convert(self, row: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The exact check of one row: the values to load (hashed), or None when a policy dropped the row
        or a problem was reported (the row is then neither hashed nor written)."""
        c = self.copier
        problems = c.report.problem_count
        long_ = self.long_cols and any(type(v) is LongText for v in row)
        if long_:  # the exact check reads a long value whole (only bad data and policies come here)
            row = tuple(_whole(v) if type(v) is LongText else v for v in row)
        values = c._slow(
            self.src, self.pair, self.convs, self.fks, self.pk, self.pk_idx, row, c.options.policies, self.drop_rowids
        )
        row = ()  # a long value read whole is not kept beside what the policy made of it
        self.writing = c.writing and c.report.ok
        if values is None:
            self.result.dropped_rows += 1
            return None
        if c.report.problem_count != problems:
            return None
        self.hasher.add(values)  # the exact check passed these values: an error here is a bug, not bad data
        if long_:  # sent in pieces, not encoded whole beside the text (load.py)
            values = tuple(TextPieces(v) if type(v) is str and len(v) > longtext.LONG else v for v in values)
        return values

    def hash(self, values: tuple[Any, ...]) -> bool:
        """False (nothing counted) for a value the SQLite-side test passed that has no form PostgreSQL takes
        (a \\u0000 or lone surrogate escape, a number numeric cannot hold): the row needs convert."""
        try:
            self.hasher.add(values)
        except (ValueError, ArithmeticError):  # UnicodeEncodeError is a ValueError
            return False
        return True

    def write(self, values: tuple[Any, ...]) -> None:
        if self.writing:
            if self.write_row is not None:
                self.write_row(values)
            self.copied += 1


def copy(
    src: DatabaseUrl, dst: DatabaseUrl, root: Path, options: CopyOptions, progress: Progress | None = None
) -> CopyResult:
    copier = Copier(src, dst, root, options, progress or Progress())
    return copier.run()


def copy_outcome(
    src: DatabaseUrl, dst: DatabaseUrl, root: Path, options: CopyOptions, progress: Progress | None = None
) -> tuple[CopyResult, AgorDbError | None]:
    """The result as far as the copy got, and the refusal or failure that ended it (None on success):
    `copy --json` reports every outcome, with every problem found before it stopped."""
    copier = Copier(src, dst, root, options, progress or Progress())
    try:
        return copier.run(), None
    except AgorDbError as exc:
        return copier.result, exc
