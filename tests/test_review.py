"""Defects found by a fresh-eyes review, one test each; each failed before its fix was applied."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import apsw
import pytest
from conftest import PgServer, run_cli, write_migrations

from agor_db.core.urls import parse_url, redact

ODD_PASSWORD = "pa?ss#w0rd-Rev"  # libpq accepts "?" and "#" unencoded in a URI's password


def _sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


# -- password with "?" or "#" ----------------------------------------------------------------


def test_password_with_question_mark_or_hash_is_redacted() -> None:
    for raw in (
        f"postgresql://agor:{ODD_PASSWORD}@db:5432/agor",
        f"postgresql://agor:{ODD_PASSWORD}@/agor?host=/run/postgresql",
        "postgres://agor:only#hash@db/agor",
        "postgres://agor:only?question@db/agor",
    ):
        url = parse_url(raw)
        password = raw.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        assert password not in url.display, url.display
        assert password in url.secrets
        assert password not in redact(f"cannot connect to {raw}: refused")


def test_cli_never_prints_a_password_with_question_mark(
    pg_server: PgServer, pg_db: str, pg_admin_of: Any, tmp_path: Path
) -> None:
    if not pg_server.host.startswith("/"):
        pytest.skip("builds a socket-directory URL; needs the suite's own pgserver")
    role = "rev_" + uuid.uuid4().hex[:8]
    dbname = pg_db.split("@/", 1)[1].split("?", 1)[0]
    with pg_admin_of(pg_db) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{ODD_PASSWORD}'")
    try:
        url = f"postgresql://{role}:{ODD_PASSWORD}@/{dbname}?host={pg_server.host}"
        root = tmp_path / "sql"
        write_migrations(root, "postgres", {"0001_a.sql": "CREATE TABLE a (x int);\n"})
        for args in (("status",), ("status", "--json")):
            result = run_cli(*args, "-d", url, "--sql-dir", str(root))
            assert result.code == 0, result.output
            assert ODD_PASSWORD not in result.output, result.output
            assert "***" in result.output
    finally:
        with pg_admin_of(pg_db) as admin:
            admin.execute(f"DROP ROLE {role}")


# -- COMMIT inside a transactional migration -------------------------------------------------------


def test_sqlite_commit_inside_migration_keeps_nothing(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    write_migrations(
        root,
        "sqlite",
        {
            "0001_t.sql": "CREATE TABLE t (x INTEGER);\n",
            "0002_rows.sql": "INSERT INTO t VALUES (1);\nCOMMIT;\nINSERT INTO t VALUES (2);\n",
        },
    )
    db = tmp_path / "a.db"
    result = run_cli("migrate", "-d", str(db), "--sql-dir", str(root))
    # today: exit 1 "rolled back, nothing of it was kept", yet t holds 1, 2, 1, 2 and 0002 is journaled
    assert result.code == 1, result.output
    assert _sqlite_rows(db, "SELECT x FROM t") == []
    assert _sqlite_rows(db, "SELECT version FROM agor_migrations") == [(1,)]
    assert "COMMIT" in result.output


def test_postgres_commit_inside_migration_keeps_nothing(pg_db: str, pg_admin_of, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "sql"
    write_migrations(
        root,
        "postgres",
        {
            "0001_t.sql": "CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\nCOMMIT;\n"
            "INSERT INTO missing VALUES (2);\n"
        },
    )
    result = run_cli("migrate", "-d", pg_db, "--sql-dir", str(root))
    assert result.code == 1, result.output
    with pg_admin_of(pg_db) as admin:
        # today: t exists with row 1 although the message says nothing was kept; the rerun then fails
        assert admin.execute("SELECT to_regclass('t')").fetchone() == (None,)
        assert admin.execute("SELECT count(*) FROM agor_migrations").fetchone() == (0,)


def test_transaction_control_guard_leaves_triggers_and_nontransactional_files_alone(tmp_path: Path) -> None:
    """What the proposed guard must not refuse (passes today, must keep passing)."""
    root = tmp_path / "sql"
    write_migrations(
        root,
        "sqlite",
        {
            "0001_t.sql": "CREATE TABLE t (x INTEGER);\n"
            "CREATE TRIGGER bump AFTER INSERT ON t BEGIN\n  UPDATE t SET x = x + 1 WHERE rowid = NEW.rowid;\nEND;\n"
            "INSERT INTO t VALUES (1);\n",
            "0002_own_txn.sql": "-- transactional: false\nBEGIN;\nINSERT INTO t VALUES (10);\nCOMMIT;\n",
        },
    )
    db = tmp_path / "a.db"
    result = run_cli("migrate", "-d", str(db), "--sql-dir", str(root))
    assert result.code == 0, result.output
    assert _sqlite_rows(db, "SELECT x FROM t ORDER BY x") == [(2,), (11,)]


# -- out-of-range timeouts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("migrate", "--lock-timeout", "inf"),
        ("migrate", "--lock-timeout", "3000000"),  # 3e9 ms overflows SQLite's busy timeout (C int)
        ("wait", "--timeout", "inf"),
    ],
)
def test_huge_timeouts_are_usage_errors_not_internal_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    root = tmp_path / "sql"
    write_migrations(root, "sqlite", {"0001_t.sql": "CREATE TABLE t (x INTEGER);\n"})
    db = tmp_path / "a.db"
    extra = ["--sql-dir", str(root)] if args[0] == "migrate" else []
    result = run_cli(*args, "-d", str(db), *extra, env={"AGOR_DB_NO_FASTPATH": "1"})
    assert "internal error" not in result.output, result.output
    assert result.code == 2, result.output
    assert not db.exists() or _sqlite_rows(db, "SELECT name FROM sqlite_master WHERE name = 't'") == []


# -- Ctrl-C during the no-op fast path ---------------------------------------------------------


def test_ctrl_c_while_fast_path_connects_prints_no_traceback() -> None:
    # a loopback listener that never answers: libpq's connect waits (connect_timeout) in the fast path
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agor_db", "migrate", "-d", f"postgresql://u:pw@127.0.0.1:{port}/db"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        silent.close()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)


# -- a directory named like a migration ---------------------------------------------------------


def test_directory_named_like_a_migration_is_not_called_a_bad_name(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    write_migrations(root, "sqlite", {"0001_t.sql": "CREATE TABLE t (x INTEGER);\n"})
    (root / "sqlite" / "0002_more.sql").mkdir()
    result = run_cli("status", "-d", str(tmp_path / "a.db"), "--sql-dir", str(root))
    assert result.code == 2, result.output
    # today: "malformed migration file name(s) ...: 0002_more.sql" although the name is well-formed
    assert "malformed" not in result.output
    assert "directory" in result.output


# -- an explicit empty --database-url ------------------------------------------------------------


def test_empty_database_url_flag_is_refused_not_the_default(tmp_path: Path) -> None:
    # `agor-db migrate -d "$DATABASE_URL"` in a deploy script with the variable unset
    root = tmp_path / "sql"
    write_migrations(root, "sqlite", {"0001_t.sql": "CREATE TABLE t (x INTEGER);\n"})
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("migrate", "-d", "", "--sql-dir", str(root), env={"HOME": str(home), "AGOR_TEST_HOME": str(home)})
    # today: exit 0 after creating and migrating $HOME/.agor/agor.db
    assert not (home / ".agor" / "agor.db").exists()
    assert result.code == 2, result.output
    assert "empty" in result.output
