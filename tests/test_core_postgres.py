"""PostgreSQL specifics: connection failures, the advisory lock and its holder, concurrent runners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import TEST_PASSWORD, WRONG_PASSWORD, PgServer, run_cli, write_migrations

from agor_db.drivers.pg_lock import LOCK_KEY


def test_unreachable_server(sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    url = f"postgresql://agor:{TEST_PASSWORD}@127.0.0.1:1/agor"
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 5
    assert "cannot connect to postgresql://agor:***@127.0.0.1:1/agor" in r.stderr
    assert "hint: check that the server is running" in r.stderr
    assert len(r.stderr.splitlines()) <= 6


def test_wrong_password(pg_server: PgServer, pg_db: str, sql_root: Path, pg_admin_of) -> None:  # type: ignore[no-untyped-def]
    if not pg_server.password:
        pytest.skip("the external test server has no password to get wrong")
    write_migrations(sql_root, "postgres", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    dbname = pg_db.rsplit("/", 1)[1].split("?")[0]
    r = run_cli("migrate", "-d", pg_server.url(dbname, WRONG_PASSWORD), "--sql-dir", str(sql_root))
    assert r.code == 5
    assert "password authentication failed" in r.stderr
    assert "hint: the user name or password is wrong" in r.stderr
    with pg_admin_of(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('agor_migrations')").fetchone() == (None,)


def test_missing_database(pg_server: PgServer, sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    r = run_cli("migrate", "-d", pg_server.url("no_such_db_here"), "--sql-dir", str(sql_root))
    assert r.code == 5
    assert 'database "no_such_db_here" does not exist' in r.stderr
    assert "createdb" in r.stderr


def test_bad_conninfo_is_a_usage_error(sql_root: Path) -> None:
    r = run_cli("migrate", "-d", "postgresql://u:pw@h/db?bogus_option=1", "--sql-dir", str(sql_root))
    assert r.code == 2
    assert "bogus_option" in r.stderr


def test_an_unknown_to_version_is_named_as_written_with_what_the_folder_has(pg_db: str, pg_admin_of) -> None:  # type: ignore[no-untyped-def]
    """`--to 0005` on PostgreSQL (whose folder starts at 0010): exit 2, nothing created, and the message
    says 0005 (not "5") and which versions there are."""
    r = run_cli("migrate", "-d", pg_db, "--to", "0005")
    assert r.code == 2, r.output
    assert "--to 0005: the postgres folder has no migration with that version (it has 0010)" in r.stderr
    with pg_admin_of(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('agor_migrations')").fetchone() == (None,)


def test_lock_timeout_names_the_holder(pg_db: str, sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    with psycopg.connect(pg_db, autocommit=True, application_name="holder-app") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        pid = holder.info.backend_pid
        r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--lock-timeout", "0.5")
        assert r.code == 4, r.output
        assert "timed out after 0.5s waiting for the migration lock" in r.stderr
        assert f"pid {pid}, application_name 'holder-app', connected since" in r.stderr
        # the lock is taken before the journal is created: nothing was written
        assert holder.execute("SELECT to_regclass('agor_migrations')").fetchone() == (None,)
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--lock-timeout", "0.5")
    assert r.code == 0, r.output


def test_runner_uses_application_name_and_releases_the_lock(pg_db: str, sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", {"0001_a.sql": "SELECT pg_sleep(0.6);\n"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "agor_db", "migrate", "-d", pg_db, "--sql-dir", str(sql_root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    import time

    seen: list[tuple[str, bool]] = []
    with psycopg.connect(pg_db, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen:
            seen = conn.execute(
                "SELECT a.application_name, l.granted FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory'"
            ).fetchall()
            time.sleep(0.05)
        assert proc.wait(30) == 0
        assert seen == [("agor-db", True)]
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_concurrent_runners_apply_each_migration_once(
    dialect: str, tmp_path: Path, sql_root: Path, request: pytest.FixtureRequest
) -> None:
    files = {"0001_counter.sql": "CREATE TABLE counter (v INTEGER NOT NULL);\n"}
    for i in range(2, 13):
        files[f"{i:04d}_step.sql"] = f"CREATE TABLE t{i} (id INTEGER);\nINSERT INTO counter VALUES ({i});\n"
    write_migrations(sql_root, dialect, files)
    url = str(tmp_path / "race.db") if dialect == "sqlite" else request.getfixturevalue("pg_db")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "agor_db", "migrate", "-d", url, "--sql-dir", str(sql_root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(120), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    applied_lines = sum(out.count("applied 0") for _, out, _ in results)
    assert applied_lines == 12  # every migration reported applied by exactly one runner
    if dialect == "sqlite":
        import apsw

        conn = apsw.Connection(url)
        counter = [r[0] for r in conn.execute("SELECT v FROM counter ORDER BY v")]
        journal = [r[0] for r in conn.execute("SELECT version FROM agor_migrations ORDER BY id")]
    else:
        with psycopg.connect(url) as conn:
            counter = [r[0] for r in conn.execute("SELECT v FROM counter ORDER BY v")]
            journal = [r[0] for r in conn.execute("SELECT version FROM agor_migrations ORDER BY id")]
    assert counter == list(range(2, 13))
    assert journal == list(range(1, 13))


def test_unanswering_server_costs_one_connect_timeout_not_two() -> None:
    """The no-op fast path reports an unreachable server itself instead of handing over to reconnect."""
    import socket
    import time

    silent = socket.socket()  # accepts TCP connections and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        r = run_cli("migrate", "-d", f"postgresql://u:{TEST_PASSWORD}@127.0.0.1:{port}/db?connect_timeout=2")
        took = time.monotonic() - started
    finally:
        silent.close()
    assert r.code == 5, r.output
    assert "cannot connect to postgresql://u:***@127.0.0.1" in r.stderr
    assert took < 3.5, f"{took:.1f}s: the connection was attempted twice"
