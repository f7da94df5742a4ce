"""SQLite specifics: table rebuilds never cascade, foreign_key_check gates the commit, WAL files,
the run lock, and unusable locations."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import apsw
import pytest
from conftest import run_cli, run_cli_as_nobody, write_migrations

from agor_db.core.migrate import RunOptions, migrate
from agor_db.core.urls import parse_url

PARENT_CHILD = """
CREATE TABLE parent (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id TEXT NOT NULL REFERENCES parent(id) ON DELETE CASCADE,
                    note TEXT);
"""

REBUILD_PARENT = """
CREATE TABLE parent_new (id TEXT PRIMARY KEY, name TEXT NOT NULL, extra INTEGER NOT NULL DEFAULT 0);
INSERT INTO parent_new (id, name) SELECT id, name FROM parent;
DROP TABLE parent;
ALTER TABLE parent_new RENAME TO parent;
"""


def _seed(path: Path) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("PRAGMA foreign_keys = ON")
    with conn:
        for i in range(5):
            conn.execute("INSERT INTO parent VALUES (?, ?)", (f"p{i}", f"name {i}"))
            for j in range(3):
                conn.execute("INSERT INTO child (parent_id, note) VALUES (?, ?)", (f"p{i}", f"n{i}.{j}"))
    conn.close()


def test_rebuild_never_cascades_even_with_foreign_keys_on(tmp_path: Path, sql_root: Path) -> None:
    write_migrations(sql_root, "sqlite", {"0001_tables.sql": PARENT_CHILD})
    url = parse_url(str(tmp_path / "a.db"))
    migrate(url, sql_root, RunOptions())
    _seed(tmp_path / "a.db")
    write_migrations(sql_root, "sqlite", {"0002_rebuild.sql": REBUILD_PARENT})

    # Drive the driver on a connection that runs with foreign_keys=ON, as Agor's own connections do.
    from agor_db.drivers.sqlite import SqliteDriver
    from agor_db.core.source import list_migrations, parse

    driver = SqliteDriver(url)
    assert driver.conn is not None
    driver.conn.execute("PRAGMA foreign_keys = ON")
    script = parse(list_migrations(sql_root / "sqlite")[1])
    driver.apply(script)
    assert driver.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)  # restored afterwards
    driver.close()

    conn = apsw.Connection(str(tmp_path / "a.db"))
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (5,)
    assert conn.execute("SELECT count(*) FROM child").fetchone() == (15,)
    assert conn.execute("SELECT note FROM child WHERE parent_id='p4' ORDER BY id").fetchall() == [
        ("n4.0",),
        ("n4.1",),
        ("n4.2",),
    ]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_naive_rebuild_would_cascade(tmp_path: Path) -> None:
    """The control experiment: the same SQL run naively inside a transaction deletes children."""
    conn = apsw.Connection(str(tmp_path / "naive.db"))
    conn.execute(PARENT_CHILD)
    conn.close()
    _seed(tmp_path / "naive.db")
    conn = apsw.Connection(str(tmp_path / "naive.db"))
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN; PRAGMA foreign_keys = OFF;" + REBUILD_PARENT + "COMMIT;")
    assert conn.execute("SELECT count(*) FROM child").fetchone() == (0,)


def test_foreign_key_violation_rolls_back(tmp_path: Path, sql_root: Path) -> None:
    write_migrations(
        sql_root,
        "sqlite",
        {
            "0001_tables.sql": PARENT_CHILD,
            "0002_lossy_rebuild.sql": REBUILD_PARENT.replace(
                "SELECT id, name FROM parent", "SELECT id, name FROM parent WHERE id <> 'p1'"
            ),
        },
    )
    db = tmp_path / "a.db"
    assert run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root), "--to", "1").code == 0
    _seed(db)
    r = run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root))
    assert r.code == 1
    assert "0002_lossy_rebuild.sql leaves 3 foreign-key violation(s); rolled back" in r.stderr
    assert "child rowid" in r.stderr and "-> parent" in r.stderr
    conn = apsw.Connection(str(db))
    assert conn.execute("SELECT count(*) FROM parent").fetchone() == (5,)
    assert [c[1] for c in conn.execute("PRAGMA table_info(parent)")] == ["id", "name"]
    assert conn.execute("SELECT max(version) FROM agor_migrations").fetchone() == (1,)


def test_wal_file_with_a_live_reader(tmp_path: Path, sql_root: Path) -> None:
    db = tmp_path / "wal.db"
    write_migrations(
        sql_root, "sqlite", {"0001_app.sql": "CREATE TABLE app (x INTEGER);\nINSERT INTO app VALUES (1);\n"}
    )
    assert run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root)).code == 0
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA journal_mode = WAL")
    # An open read transaction on another connection, as Agor would hold.
    reader = apsw.Connection(str(db))
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM app").fetchone() == (1,)
    write_migrations(sql_root, "sqlite", {"0002_a.sql": "CREATE TABLE a (id INTEGER);\nINSERT INTO app VALUES (2);\n"})
    r = run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    assert Path(str(db) + "-wal").exists()
    assert reader.execute("SELECT count(*) FROM app").fetchone() == (1,)  # its snapshot is untouched
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM app").fetchone() == (2,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_lock_timeout_when_another_run_holds_the_file(tmp_path: Path, sql_root: Path) -> None:
    db = tmp_path / "a.db"
    write_migrations(sql_root, "sqlite", {"0001_app.sql": "CREATE TABLE app (x INTEGER);\n"})
    assert run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root)).code == 0
    write_migrations(sql_root, "sqlite", {"0002_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    fd = os.open(db, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root), "--lock-timeout", "0.3")
    finally:
        os.close(fd)
    assert r.code == 4
    assert "another agor-db run holds the migration lock" in r.stderr
    assert "a" not in {n for (n,) in apsw.Connection(str(db)).execute("SELECT name FROM sqlite_master")}
    assert run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root)).code == 0


def test_busy_writer_gives_a_clear_error(tmp_path: Path, sql_root: Path) -> None:
    db = tmp_path / "a.db"
    write_migrations(sql_root, "sqlite", {"0001_app.sql": "CREATE TABLE app (x INTEGER);\n"})
    assert run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root)).code == 0
    write_migrations(sql_root, "sqlite", {"0002_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    writer = apsw.Connection(str(db))
    writer.execute("BEGIN IMMEDIATE")
    r = run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root), "--lock-timeout", "0.3")
    writer.execute("ROLLBACK")
    assert r.code == 4, r.output
    assert "locked" in r.stderr
    names = {n for (n,) in writer.execute("SELECT name FROM sqlite_master")}
    assert "a" not in names and "app" in names


@pytest.mark.parametrize("case", ["directory", "missing_dir", "not_a_db", "unwritable_dir"])
def test_unusable_locations(tmp_path: Path, sql_root: Path, case: str) -> None:
    as_nobody = case == "unwritable_dir" and os.geteuid() == 0
    if as_nobody:
        # root writes through any mode bits: run as nobody, in a directory tree nobody may read
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a directory unwritable")
        tmp_path = Path(tempfile.mkdtemp(prefix="agor-ro-"))
        tmp_path.chmod(0o755)
        sql_root = tmp_path / "sql"
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    if case == "directory":
        target, expected = tmp_path, "is a directory, not a SQLite database file"
    elif case == "missing_dir":
        target, expected = tmp_path / "nope" / "a.db", "the directory"
    elif case == "not_a_db":
        target = tmp_path / "notes.txt"
        target.write_text("hello, this is not sqlite " * 100)
        expected = "is not a SQLite database"
    else:
        locked = tmp_path / "ro"
        locked.mkdir()
        locked.chmod(0o555)
        target, expected = locked / "a.db", "is not writable"
    before = sorted(p.name for p in tmp_path.iterdir())
    try:
        if as_nobody:
            r = run_cli_as_nobody("migrate", "-d", str(target), "--sql-dir", str(sql_root))
        else:
            r = run_cli("migrate", "-d", str(target), "--sql-dir", str(sql_root))
        assert r.code == 5, r.output
        assert expected in r.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before
        if case == "not_a_db":
            assert target.read_text().startswith("hello")
        if case == "unwritable_dir":
            assert list((tmp_path / "ro").iterdir()) == []
    finally:
        if as_nobody:
            shutil.rmtree(tmp_path, ignore_errors=True)


def test_unreadable_migration_folder_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    root = Path(tempfile.mkdtemp(prefix="agor-unreadable-"))
    try:
        root.chmod(0o755)
        folder = write_migrations(root / "sql", "sqlite", {"0001_a.sql": "SELECT 1;\n"})
        folder.chmod(0o700 if os.geteuid() == 0 else 0o000)
        db = root / "db"
        db.mkdir(mode=0o777)
        db.chmod(0o777)
        runner = run_cli_as_nobody if os.geteuid() == 0 else run_cli
        r = runner("migrate", "-d", str(db / "a.db"), "--sql-dir", str(root / "sql"))
        assert r.code == 2, r.output
        assert f"cannot read the migration folder {folder}: Permission denied" in r.stderr
        assert list(db.iterdir()) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_default_location_is_created_under_home(tmp_path: Path, sql_root: Path) -> None:
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    r = run_cli("migrate", "--sql-dir", str(sql_root), env={"HOME": str(tmp_path)})
    assert r.code == 0, r.output
    assert (tmp_path / ".agor" / "agor.db").exists()
    r = run_cli("status", "--sql-dir", str(sql_root), env={"HOME": str(tmp_path), "AGOR_DB_PATH": "file:~/x.db"})
    assert "x.db" in r.stdout and "AGOR_DB_PATH" in r.stdout


def test_ctrl_c_stops_a_long_statement_at_once_and_rolls_back(tmp_path: Path, sql_root: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "a.db"
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    assert run_cli("migrate", "-d", str(db), "--sql-dir", str(sql_root)).code == 0
    write_migrations(
        sql_root,
        "sqlite",
        {
            "0002_big.sql": "CREATE TABLE big (x INTEGER PRIMARY KEY, b BLOB);\n"
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000)\n"
            "INSERT INTO big SELECT x, randomblob(32) FROM c;\n"
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "agor_db", "migrate", "-d", str(db), "--sql-dir", str(sql_root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # well inside the insert (tens of seconds): its pages spill into the file, which grows past 1 MB
    start, deadline = db.stat().st_size, time.monotonic() + 60
    while db.stat().st_size < start + (1 << 20):
        assert proc.poll() is None and time.monotonic() < deadline, "the insert never started"
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 3, "Ctrl-C waited for the statement to finish"
    assert "interrupted" in err and "Traceback" not in err
    conn = apsw.Connection(str(db))
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert "big" not in {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert [v for (v,) in conn.execute("SELECT version FROM agor_migrations")] == [1]
