"""Many runners at once on one database: each migration applied exactly once, or a clear lock timeout.

Every migration creates its own table *and* inserts into a shared ``counter`` table that has no unique
constraint, so a migration applied twice would either fail (CREATE TABLE of an existing table) or
leave two counter rows: double application cannot hide.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import cli_env, finish_cli, spawn_cli, write_migrations

RUNNERS = 16
MIGRATIONS = 50


_env = cli_env
_spawn = spawn_cli
_finish = finish_cli


def _counter_migrations(root: Path, dialect: str, count: int = MIGRATIONS) -> None:
    files: dict[str, str] = {}
    for v in range(1, count + 1):
        head = "CREATE TABLE counter (version INTEGER NOT NULL);\n" if v == 1 else ""
        files[f"{v:04d}_m{v}.sql"] = (
            f"{head}CREATE TABLE m{v:04d} (id INTEGER);\nINSERT INTO counter (version) VALUES ({v});\n"
        )
    write_migrations(root, dialect, files)


def _assert_each_once(journal: list[tuple[Any, ...]], counter: list[tuple[Any, ...]], tables: set[str]) -> None:
    versions = [r[0] for r in journal]
    assert versions == list(range(1, MIGRATIONS + 1)), versions
    assert len(set(r[1] for r in journal)) == MIGRATIONS, "journal ids are not unique"
    assert sorted(r[0] for r in counter) == list(range(1, MIGRATIONS + 1)), "a migration ran twice or never"
    assert {f"m{v:04d}" for v in range(1, MIGRATIONS + 1)} <= tables


def _race(args: Sequence[str]) -> list[tuple[int, str, str]]:
    procs = [_spawn(args) for _ in range(RUNNERS)]
    return [_finish(p) for p in procs]


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_pg_sixteen_runners_apply_each_migration_once(pg_db: str, sql_root: Path, pg_admin_of: Any) -> None:
    _counter_migrations(sql_root, "postgres")
    results = _race(["migrate", "-d", pg_db, "--sql-dir", str(sql_root)])
    codes = [r[0] for r in results]
    assert codes == [0] * RUNNERS, "\n".join(r[2] for r in results if r[0])
    applied_lines = sum(r[1].count("applied 0") for r in results)
    assert applied_lines == MIGRATIONS, "the runs together must report each migration applied exactly once"
    with pg_admin_of(pg_db) as conn:
        journal = conn.execute("SELECT version, id FROM agor_migrations ORDER BY version").fetchall()
        counter = conn.execute("SELECT version FROM counter").fetchall()
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        # every runner ended its session, so no advisory lock is left behind
        locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    _assert_each_once(journal, counter, tables)
    assert locks == (0,)


def _wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_pg_lock_timeout_names_the_holder(pg_db: str, sql_root: Path, pg_admin_of: Any) -> None:
    # The holder is a real agor-db whose first migration waits on a table the test keeps locked,
    # so it holds the migration lock exactly as long as the test wants (its statements may wait for
    # table locks longer than the test runs: no rollback-and-retry that would let a waiter in).
    write_migrations(
        sql_root,
        "postgres",
        {
            "0001_gated.sql": "CREATE TABLE gated (id INTEGER);\nSELECT count(*) FROM gate;\n",
            "0002_after.sql": "CREATE TABLE after_gate (id INTEGER);\n",
        },
    )
    with pg_admin_of(pg_db) as admin:
        admin.execute("CREATE TABLE gate (id INTEGER)")
        admin.execute("GRANT SELECT ON gate TO PUBLIC")
        gate_tx = admin.transaction()
        gate_tx.__enter__()
        admin.execute("LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
        with pg_admin_of(pg_db) as watcher:
            holder = _spawn(["migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--statement-lock-timeout", "60"])
            try:
                holder_pid = _wait_for(
                    lambda: watcher.execute(
                        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
                    ).fetchone(),
                    "the first runner to take the migration lock",
                )[0]
                waiters = [
                    _spawn(["migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--lock-timeout", "0.3"])
                    for _ in range(3)
                ]
                results = [_finish(w) for w in waiters]
            finally:
                gate_tx.__exit__(None, None, None)  # let the holder finish
            code, out, err = _finish(holder)
        assert code == 0, err
        assert "applied 0002_after.sql" in out
        for wcode, wout, werr in results:
            assert wcode == 4, werr
            assert "timed out after 0.3s waiting for the migration lock" in werr
            assert f"pid {holder_pid}" in werr and "application_name 'agor-db'" in werr, werr
            assert "applied" not in wout
        versions = [r[0] for r in admin.execute("SELECT version FROM agor_migrations ORDER BY version")]
        assert versions == [1, 2]


# -- SQLite --------------------------------------------------------------------------------------


def _sqlite_state(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], set[str]]:
    conn = apsw.Connection(str(path))
    try:
        journal = list(conn.execute("SELECT version, id FROM agor_migrations ORDER BY version"))
        counter = list(conn.execute("SELECT version FROM counter"))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    return journal, counter, tables


@pytest.mark.slow
@pytest.mark.parametrize("journal_mode", ["wal"])  # as Agor runs it; the lock tests below use rollback mode
def test_sqlite_sixteen_runners_apply_each_migration_once(tmp_path: Path, sql_root: Path, journal_mode: str) -> None:
    _counter_migrations(sql_root, "sqlite")
    db = tmp_path / "race.db"
    if journal_mode == "wal":
        conn = apsw.Connection(str(db))
        conn.execute("PRAGMA journal_mode = WAL")
        conn.close()
    results = _race(["migrate", "-d", f"sqlite://{db}", "--sql-dir", str(sql_root)])
    assert [r[0] for r in results] == [0] * RUNNERS, "\n".join(r[2] for r in results if r[0])
    assert sum(r[1].count("applied 0") for r in results) == MIGRATIONS
    _assert_each_once(*_sqlite_state(db))


def test_sqlite_lock_timeout_while_a_run_holds_the_lock(tmp_path: Path, sql_root: Path) -> None:
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    db = tmp_path / "held.db"
    apsw.Connection(str(db)).close()
    # what a running agor-db holds for the whole run
    fd = os.open(db, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        waiters = [
            _spawn(["migrate", "-d", str(db), "--sql-dir", str(sql_root), "--lock-timeout", "0.3"]) for _ in range(3)
        ]
        results = [_finish(w) for w in waiters]
        assert time.monotonic() - started < 15
    finally:
        os.close(fd)
    for code, out, err in results:
        assert code == 4, err
        assert f"another agor-db run holds the migration lock on {db}" in err
        assert "waited 0.3s" in err
        assert "applied" not in out
    conn = apsw.Connection(str(db))
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []  # not even the journal
    conn.close()


def test_sqlite_lock_timeout_behind_a_real_runner(tmp_path: Path, sql_root: Path) -> None:
    # The holder is a real agor-db stuck in BEGIN IMMEDIATE behind a writer the test controls.
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    db = tmp_path / "held.db"
    writer = apsw.Connection(str(db))
    writer.execute("PRAGMA user_version = 7")  # an existing, empty database (nothing to adopt)
    writer.execute("BEGIN IMMEDIATE")
    holder = _spawn(["migrate", "-d", str(db), "--sql-dir", str(sql_root)])
    try:
        _wait_for(lambda: _holds_flock(holder.pid), "the runner to take its lock")
        waiters = [
            _spawn(["migrate", "-d", str(db), "--sql-dir", str(sql_root), "--lock-timeout", "0.3"]) for _ in range(3)
        ]
        results = [_finish(w) for w in waiters]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    code, out, err = _finish(holder)
    assert code == 0, err
    assert "applied 0001_a.sql" in out
    for wcode, _wout, werr in results:
        assert wcode == 4, werr
        assert "holds the migration lock" in werr


def _holds_flock(pid: int) -> bool:
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        pytest.skip("needs /proc/locks (Linux)")
    return any(line.split()[1:2] == ["FLOCK"] and line.split()[4:5] == [str(pid)] for line in text.splitlines())
