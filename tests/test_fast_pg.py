"""The PostgreSQL no-op fast path (runner/fast_pg.py): libpq through ctypes, no psycopg, no typer.

Every case it does not handle must end exactly as the full CLI (AGOR_DB_NO_FASTPATH=1) ends, and
nothing may be written by it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import SECRETS, TEST_PASSWORD, WRONG_PASSWORD, PgServer, run_cli, write_migrations
from pg_cluster import PRIMARY_PORT, STANDBY_PORT, Cluster, cluster  # noqa: F401  (fixture)

FULL = {"AGOR_DB_NO_FASTPATH": "1"}
FILES = {
    "0001_a.sql": "CREATE TABLE a (id INTEGER);\n",
    "0002_b.sql": "-- depends: 0001_a\nCREATE TABLE b (id INTEGER);\n",
}

# Runs the real entry point in a fresh interpreter and reports its exit code and what it imported.
PROBE = """
import json, sys
from agor_db.entry import main
sys.argv = ["agor-db", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
mods = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_binary", "typer", "agor_db"))
print("\\nPROBE " + json.dumps({"code": code, "modules": mods}))
"""


def probe(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=full_env, timeout=120
    )
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    head, _, tail = proc.stdout.rpartition("\nPROBE ")
    result = json.loads(tail)
    return int(result["code"]), list(result["modules"]), head + proc.stderr


def dbname_of(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


def journal(url: str) -> list[tuple[int, str, str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute("SELECT version, name, checksum FROM agor_migrations ORDER BY version")]


@pytest.fixture
def migrated(pg_db: str, sql_root: Path) -> tuple[str, Path]:
    write_migrations(sql_root, "postgres", FILES)
    first = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert first.code == 0, first.output
    return pg_db, sql_root


def same_as_full(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    fast = run_cli(*args, env=env)
    full = run_cli(*args, env={**(env or {}), **FULL})
    assert (fast.code, fast.stdout, fast.stderr) == (full.code, full.stdout, full.stderr)
    return fast.code, fast.stdout, fast.stderr


def test_fast_and_full_path_print_the_same(migrated: tuple[str, Path]) -> None:
    url, root = migrated
    code, out, _err = same_as_full("migrate", "-d", url, "--sql-dir", str(root))
    assert code == 0 and out.startswith("nothing to migrate: postgresql://agor_test:***@") and "version 0002" in out


def test_empty_journal_and_no_files_print_the_same(pg_db: str, sql_root: Path) -> None:
    assert run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)).code == 0  # creates the empty journal
    code, out, _err = same_as_full("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert code == 0 and "is at version none" in out


def test_fast_path_imports_neither_psycopg_nor_typer(migrated: tuple[str, Path]) -> None:
    url, root = migrated
    code, modules, output = probe("migrate", "-d", url, "--sql-dir", str(root))
    assert code == 0 and "nothing to migrate" in output, output
    assert "agor_db.fast_pg" in modules, "the fast path did not run"
    heavy = [m for m in modules if m.split(".")[0] in ("psycopg", "psycopg_binary", "typer")]
    assert not heavy, f"the PostgreSQL no-op imported {heavy}"


def test_missing_libpq_hands_over(migrated: tuple[str, Path], tmp_path: Path) -> None:
    url, root = migrated
    empty = tmp_path / "no-libpq"
    empty.mkdir()
    env = {"AGOR_DB_LIBPQ_DIR": str(empty)}
    code, modules, output = probe("migrate", "-d", url, "--sql-dir", str(root), env=env)
    assert code == 0 and "nothing to migrate" in output
    assert "typer" in modules and "psycopg" in modules, "the full CLI did not take over"
    same_as_full("migrate", "-d", url, "--sql-dir", str(root), env=env)


def test_drift_hands_over_and_changes_nothing(migrated: tuple[str, Path]) -> None:
    url, root = migrated
    before = journal(url)
    (root / "postgres" / "0002_b.sql").write_text("CREATE TABLE b (id BIGINT);\n")
    code, _out, err = same_as_full("migrate", "-d", url, "--sql-dir", str(root))
    assert code == 3 and "0002_b.sql was changed after it was applied" in err
    assert journal(url) == before


def test_pending_hands_over_and_the_full_cli_applies(migrated: tuple[str, Path]) -> None:
    url, root = migrated
    write_migrations(root, "postgres", {"0003_c.sql": "CREATE TABLE c (id INTEGER);\n"})
    r = run_cli("migrate", "-d", url, "--sql-dir", str(root))
    assert r.code == 0 and "1 migration(s) applied" in r.stdout and "version 0003" in r.stdout, r.output
    assert [v for v, _n, _c in journal(url)] == [1, 2, 3]


def test_journal_outside_the_current_schema_hands_over(
    migrated: tuple[str, Path],
    pg_server: PgServer,
    pg_admin_of,  # type: ignore[no-untyped-def]
) -> None:
    url, root = migrated
    dbname = dbname_of(url)
    with pg_admin_of(url) as conn:
        conn.execute(f"CREATE SCHEMA other AUTHORIZATION {pg_server.role}")
        conn.execute(f'ALTER DATABASE "{dbname}" SET search_path = other, public')
    code, modules, output = probe("migrate", "-d", url, "--sql-dir", str(root))
    assert "typer" in modules, "the fast path read a journal outside the current schema"
    # The full path keeps the journal in current_schema() (other), beside what the migrations create:
    # for it this schema is fresh, so it applies both files there.
    assert code == 0 and "2 migration(s) applied" in output, output
    with pg_admin_of(url) as conn:
        rows = conn.execute("SELECT count(*) FROM other.agor_migrations").fetchone()
    assert rows == (2,)
    full = run_cli("migrate", "-d", url, "--sql-dir", str(root), env=FULL)
    assert full.code == 0 and "nothing to migrate" in full.stdout


def test_bad_url_hands_over(sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", FILES)
    url = f"postgresql://agor:{TEST_PASSWORD}@localhost:notaport/agor"
    code, _out, err = same_as_full("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert code in (2, 5) and "postgresql://agor:***@localhost:notaport/agor" in err


def test_refused_connection_ends_as_the_full_path(sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", FILES)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there now
    url = f"postgresql://agor:{TEST_PASSWORD}@127.0.0.1:{port}/agor"
    code, _out, err = same_as_full("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert code == 5 and f"cannot connect to postgresql://agor:***@127.0.0.1:{port}/agor" in err


def test_timeout_is_reported_in_the_full_paths_words(sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", FILES)
    silent = socket.socket()  # accepts and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"postgresql://u:{TEST_PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/db?connect_timeout=2"
        code, _out, err = same_as_full("migrate", "-d", url, "--sql-dir", str(sql_root))
    finally:
        silent.close()
    assert code == 5 and "connection timeout expired" in err and "u:***@" in err


def test_wrong_password_ends_as_the_full_path(migrated: tuple[str, Path], pg_server: PgServer) -> None:
    if not pg_server.password:
        pytest.skip("the external test server has no password to get wrong")
    url, root = migrated
    bad = pg_server.url(dbname_of(url), WRONG_PASSWORD)
    code, _out, err = same_as_full("migrate", "-d", bad, "--sql-dir", str(root))
    assert code == 5 and "password authentication failed" in err
    assert WRONG_PASSWORD not in err


def test_unknown_option_hands_over(migrated: tuple[str, Path]) -> None:
    url, root = migrated
    code, modules, _output = probe("migrate", "-d", url, "--sql-dir", str(root), "--dry-run")
    assert code == 0 and "typer" in modules


# -- through PgBouncer in transaction pooling --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def bouncer_url(migrated: tuple[str, Path], pg_server: PgServer) -> Iterator[str]:
    """The migrated database behind a real PgBouncer (transaction pooling, one server connection)."""
    exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(exe).exists():
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer)")
    if not pg_server.host.startswith("/") or not pg_server.password:
        pytest.skip("needs the suite's own pgserver (Unix socket, password login)")
    url, _root = migrated
    work = Path(tempfile.mkdtemp(prefix="agorbnc"))
    port = _free_port()
    (work / "users.txt").write_text(f'"{pg_server.role}" "{pg_server.password}"\n')
    (work / "bouncer.ini").write_text(
        f"[databases]\n{dbname_of(url)} = host={pg_server.host}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = plain\nauth_file = {work / 'users.txt'}\npool_mode = transaction\n"
        f"default_pool_size = 1\nlogfile = {work / 'bouncer.log'}\npidfile = {work / 'bouncer.pid'}\n"
    )
    prefix: list[str] = []
    if os.geteuid() == 0:  # pgserver's socket directory belongs to its own user
        shutil.chown(work, "pgserver", "pgserver")
        for f in work.iterdir():
            shutil.chown(f, "pgserver", "pgserver")
        prefix = ["setpriv", "--reuid=pgserver", "--regid=pgserver", "--clear-groups"]
    proc = subprocess.Popen(
        [*prefix, exe, str(work / "bouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"pgbouncer did not start: {proc.stderr.read() if proc.stderr else b''!r}")
                time.sleep(0.1)
        yield f"postgresql://{pg_server.role}:{quote(pg_server.password, safe='')}@127.0.0.1:{port}/{dbname_of(url)}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def test_through_pgbouncer_leaves_nothing_on_the_pooled_connection(
    bouncer_url: str, migrated: tuple[str, Path]
) -> None:
    import psycopg

    _url, root = migrated
    code, modules, output = probe("migrate", "-d", bouncer_url, "--sql-dir", str(root))
    assert code == 0 and "nothing to migrate" in output and "version 0002" in output, output
    assert "typer" not in modules and "agor_db.fast_pg" in modules, "the fast path did not run"
    assert probe("migrate", "-d", bouncer_url, "--sql-dir", str(root))[0] == 0  # the pooled connection again
    # one server connection behind the pool: what the fast path left there, the next client would inherit
    with psycopg.connect(bouncer_url, prepare_threshold=None, autocommit=True) as conn:
        prepared = conn.execute("SELECT name FROM pg_prepared_statements").fetchall()
        settings = conn.execute(
            "SELECT name FROM pg_settings WHERE source = 'session' AND name NOT IN "
            "('application_name', 'client_encoding', 'DateStyle', 'TimeZone', 'standard_conforming_strings')"
        ).fetchall()
    assert prepared == [] and settings == []
    # (checked after, because the full path's own session settings are not the fast path's business)
    same_as_full("migrate", "-d", bouncer_url, "--sql-dir", str(root))


# -- a hot standby -----------------------------------------------------------------------------


@pytest.fixture
def standby_url(cluster: Cluster, sql_root: Path) -> str:  # noqa: F811
    """A streaming hot standby (pg_basebackup -R) of a dedicated primary that holds the migrated journal."""
    import psycopg

    write_migrations(sql_root, "postgres", FILES)
    primary = cluster.url(PRIMARY_PORT)
    first = run_cli("migrate", "-d", primary, "--sql-dir", str(sql_root))
    assert first.code == 0, first.output
    with psycopg.connect(primary, autocommit=True) as conn:
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
    standby = cluster.url(STANDBY_PORT)
    deadline = time.monotonic() + 30
    with psycopg.connect(standby, autocommit=True) as conn:
        while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the standby did not replay the migration"
            time.sleep(0.1)
    return standby


def test_standby_hands_over(standby_url: str, sql_root: Path) -> None:
    root = sql_root
    code, modules, output = probe("migrate", "-d", standby_url, "--sql-dir", str(root))
    assert "typer" in modules, "the fast path answered for a server in recovery"
    full = run_cli("migrate", "-d", standby_url, "--sql-dir", str(root), env=FULL)
    assert (code, output.strip()) == (full.code, (full.stdout + full.stderr).strip())
    # the standby answers and holds the journal: recovery is what made the fast path step aside
    assert full.code == 0 and "nothing to migrate" in full.stdout, full.output


def _xact_counts(pg_server: PgServer, dbname: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s", (dbname,))
        commit, rollback = row.fetchone() or (0, 0)
        return int(commit), int(rollback)


def test_database_without_journal_hands_over_without_a_server_error(pg_db: str, pg_server: PgServer) -> None:
    """A fresh deployment's runners all try the fast path first: asking for a journal that is not there yet
    must not fail a statement (an ERROR line per runner in the server's log)."""
    from agor_db.core.urls import parse_url
    from agor_db.fast_pg import load_libpq, read_journal

    if load_libpq() is None:
        pytest.skip("no libpq found for the fast path")
    name = dbname_of(pg_db)
    before = _xact_counts(pg_server, name)
    assert read_journal(parse_url(pg_db)) is None  # no journal: the full CLI decides
    deadline = time.monotonic() + 10
    while (after := _xact_counts(pg_server, name))[0] == before[0] and time.monotonic() < deadline:
        time.sleep(0.1)  # the backend reports its statistics when it exits
    assert after[0] > before[0], "the fast path's own queries were never counted: the test proves nothing"
    assert after[1] == before[1], "a fast-path statement failed on the server"
