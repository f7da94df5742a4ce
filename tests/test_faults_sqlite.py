"""SQLite under hostile conditions: another writer holds the file, the file is read-only, the disk is full.

Each case must end with a clear message and a non-zero exit, and leave the file exactly as it was:
``PRAGMA integrity_check`` clean, the journal and the data unchanged (for the read-only file: not one
byte changed).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import SECRETS, write_migrations

BASE = {"0001_base.sql": "CREATE TABLE base (id INTEGER);\nINSERT INTO base VALUES (1);\n"}
FAT = {
    "0002_fat.sql": "CREATE TABLE fat (b BLOB);\n"
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 4000)\n"
    "INSERT INTO fat SELECT randomblob(1000) FROM c;\n"
    "INSERT INTO base VALUES (2);\n"
}


def _run(
    args: Sequence[str],
    *,
    prefix: Sequence[str] = (),
    preexec: Callable[[], None] | None = None,
    timeout: float = 60,
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "agor_db", *args],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=preexec,
        timeout=timeout,
    )
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _prepared(tmp_path: Path, sql_root: Path, journal_mode: str = "delete") -> tuple[Path, list[str]]:
    """A database with 0001 applied and 0002 (a few MB of rows) pending."""
    db = tmp_path / "agor.db"
    conn = apsw.Connection(str(db))
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.close()
    write_migrations(sql_root, "sqlite", BASE)
    args = ["migrate", "-d", str(db), "--sql-dir", str(sql_root)]
    code, _, err = _run(args)
    assert code == 0, err
    write_migrations(sql_root, "sqlite", FAT)
    return db, args


def _snapshot(db: Path) -> tuple[Any, ...]:
    conn = apsw.Connection(str(db))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        journal = conn.execute("SELECT version, name, checksum, applied_at FROM agor_migrations").fetchall()
        tables = conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
        rows = conn.execute("SELECT id FROM base ORDER BY id").fetchall()
        return (journal, tables, rows)
    finally:
        conn.close()


def _digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


# -- another writer ------------------------------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_busy_writer_holds_the_file(tmp_path: Path, sql_root: Path, journal_mode: str) -> None:
    db, args = _prepared(tmp_path, sql_root, journal_mode)
    before = _snapshot(db)
    writer = apsw.Connection(str(db))
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO base VALUES (99)")
    try:
        code, out, err = _run([*args, "--lock-timeout", "0.3"])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert code == 4, err
    assert f"{db} stayed locked by another connection while applying 0002_fat.sql" in err
    assert "nothing of it was applied" in err
    assert "applied 0002" not in out
    assert _snapshot(db) == before
    code, out, err = _run(args)
    assert code == 0, err
    assert "applied 0002_fat.sql" in out


def test_busy_writer_before_the_journal_exists(tmp_path: Path, sql_root: Path) -> None:
    write_migrations(sql_root, "sqlite", BASE)
    db = tmp_path / "agor.db"
    writer = apsw.Connection(str(db))
    writer.execute("PRAGMA user_version = 7")  # a real, empty database file (no tables: nothing to adopt)
    writer.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = _run(["migrate", "-d", str(db), "--sql-dir", str(sql_root), "--lock-timeout", "0.3"])
    finally:
        writer.execute("ROLLBACK")
    assert code == 4, err
    assert f"cannot create the journal table: {db} is locked by another connection" in err
    assert out == ""
    assert writer.execute("SELECT name FROM sqlite_master").fetchall() == []
    writer.close()


def test_exclusive_writer_is_a_lock_timeout_too(tmp_path: Path, sql_root: Path) -> None:
    """A writer in the middle of committing (EXCLUSIVE lock) keeps even readers out. Waiting it out for
    --lock-timeout and giving up is the same situation as the BEGIN IMMEDIATE case, so it must be
    the same exit code (4), which scripts use to decide to retry."""
    db, args = _prepared(tmp_path, sql_root)
    before = _snapshot(db)
    writer = apsw.Connection(str(db))
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO base VALUES (99)")
    started = time.monotonic()
    try:
        # every wait, the no-op fast path's included, must stay within --lock-timeout
        code, out, err = _run([*args, "--lock-timeout", "0.3"], timeout=15)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "locked" in err and str(db) in err
    assert "applied" not in out
    assert _snapshot(db) == before
    assert code == 4, err
    assert time.monotonic() - started < 10


def test_exclusive_writer_on_an_up_to_date_database(tmp_path: Path, sql_root: Path) -> None:
    """The no-op check reads without the lock; a busy file must not make it wait 60 s either."""
    db, args = _prepared(tmp_path, sql_root)
    (sql_root / "sqlite" / "0002_fat.sql").unlink()
    writer = apsw.Connection(str(db))
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO base VALUES (99)")
    started = time.monotonic()
    try:
        code, _out, err = _run([*args, "--lock-timeout", "0.3"], timeout=15)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert code == 4, err
    assert time.monotonic() - started < 10
    code, out, err = _run(args)
    assert code == 0 and "nothing to migrate" in out, err


# -- read-only file ------------------------------------------------------------------------------


def _read_only_prefix() -> list[str]:
    """How to run agor-db so that file permissions bind: as is for a normal user; for root, without
    the capabilities that bypass them (root ignores chmod 0444 otherwise)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only for the runner")
    caps = "-dac_override,-dac_read_search,-fowner,-linux_immutable"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]


@pytest.mark.parametrize("journal_exists", [True, False])
def test_read_only_file(tmp_path: Path, sql_root: Path, journal_exists: bool) -> None:
    prefix = _read_only_prefix()
    if journal_exists:
        db, args = _prepared(tmp_path, sql_root)
    else:
        write_migrations(sql_root, "sqlite", BASE)
        db = tmp_path / "agor.db"
        conn = apsw.Connection(str(db))
        conn.execute("PRAGMA user_version = 7")  # an existing, empty database
        conn.close()
        args = ["migrate", "-d", str(db), "--sql-dir", str(sql_root)]
    digest = _digest(db)
    db.chmod(0o444)
    try:
        code, out, err = _run(args, prefix=prefix)
    finally:
        db.chmod(0o644)
    assert code == 1, err
    doing = "apply 0002_fat.sql" if journal_exists else "create the journal table"
    assert f"cannot {doing}: {db} is read-only" in err, err
    assert "hint: make the file and its directory writable" in err
    assert "applied" not in out
    assert _digest(db) == digest, "the read-only file was modified"
    assert not Path(f"{db}-journal").exists()


def test_read_only_directory(tmp_path: Path, sql_root: Path) -> None:
    """The file is writable but its directory is not, so SQLite cannot create its rollback journal."""
    prefix = _read_only_prefix()
    db, args = _prepared(tmp_path, sql_root)
    digest = _digest(db)
    tmp_path.chmod(0o555)
    try:
        code, out, err = _run(args, prefix=prefix)
    finally:
        tmp_path.chmod(0o755)
    assert code == 1, err
    assert "cannot apply 0002_fat.sql" in err and str(db) in err
    assert "applied" not in out
    assert _digest(db) == digest


# -- full disk -----------------------------------------------------------------------------------


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        # Ignored SIGXFSZ turns "file too large" into an EFBIG error SQLite sees, like a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_full_disk_leaves_the_database_intact(tmp_path: Path, sql_root: Path, journal_mode: str) -> None:
    db, args = _prepared(tmp_path, sql_root, journal_mode)
    before = _snapshot(db)
    size = db.stat().st_size
    code, out, err = _run(args, preexec=_file_size_limit(size + 64 * 1024))
    assert code == 1, err
    assert f"cannot apply 0002_fat.sql in {db}" in err or f"cannot apply 0002_fat.sql: the disk holding {db}" in err
    assert "applied 0002" not in out
    assert _snapshot(db) == before  # integrity_check ok, journal and rows unchanged
    code, out, err = _run(args)  # room again: the same migration goes through
    assert code == 0, err
    assert "applied 0002_fat.sql" in out


def test_full_disk_error_names_the_cause(tmp_path: Path, sql_root: Path) -> None:
    """'disk I/O error' alone sends people hunting; the OS reason (EFBIG here, ENOSPC on a full
    disk) is known to SQLite (sqlite3_system_errno) and belongs in the message."""
    db, args = _prepared(tmp_path, sql_root)
    code, _out, err = _run(args, preexec=_file_size_limit(db.stat().st_size + 64 * 1024))
    assert code == 1, err
    assert "File too large" in err, err
    assert "nothing of it was kept" in err or "nothing was kept" in err, err


NON_TRANSACTIONAL_FAT = {"0002_fat.sql": "-- transactional: false\n" + FAT["0002_fat.sql"]}


def test_full_disk_in_a_non_transactional_migration(tmp_path: Path, sql_root: Path) -> None:
    """Outside a transaction each statement commits on its own; an I/O error must still be reported
    as agor-db's own error (not an 'internal error'), and the migration must stay unjournaled."""
    db, args = _prepared(tmp_path, sql_root)
    write_migrations(sql_root, "sqlite", NON_TRANSACTIONAL_FAT)
    journal_before = _snapshot(db)[0]
    code, out, err = _run(args, preexec=_file_size_limit(db.stat().st_size + 64 * 1024))
    assert "internal error" not in err, err
    assert code == 1, err
    assert "0002_fat.sql" in err and "NOT transactional" in err, err
    assert "applied 0002" not in out
    assert _snapshot(db)[0] == journal_before  # integrity_check ok, 0002 not journaled


def test_busy_writer_during_a_non_transactional_migration(tmp_path: Path, sql_root: Path) -> None:
    db, args = _prepared(tmp_path, sql_root)
    write_migrations(sql_root, "sqlite", NON_TRANSACTIONAL_FAT)
    before = _snapshot(db)
    writer = apsw.Connection(str(db))
    writer.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = _run([*args, "--lock-timeout", "0.3"])
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "internal error" not in err, err
    assert code == 4, err
    assert "0002_fat.sql" in err and "locked" in err, err
    assert "applied 0002" not in out
    assert _snapshot(db) == before  # the first statement could not even start
