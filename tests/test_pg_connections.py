"""PostgreSQL as deployed: every libpq connection form, and the server's settings and state that make a
run fail (role timeouts, privileges, read-only sessions, search_path, standbys, restarts), each with its
own message and exit code, and nothing changed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import TEST_PASSWORD, PgServer, finish_cli, run_cli, spawn_cli, write_migrations
from agor_db.core.urls import parse_url
from pg_cluster import PRIMARY_PORT, STANDBY_PORT, Cluster, cluster  # noqa: F401  (fixture)

ONE = {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"}
TWO = {**ONE, "0002_b.sql": "CREATE TABLE b (id INTEGER);\n"}


def redacted(url: str) -> str:
    return parse_url(url).display


def _dbname(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


def _tables(conn: psycopg.Connection, schema: str = "public") -> list[str]:  # type: ignore[type-arg]
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def role(pg_server: PgServer, pg_db: str, pg_admin_of):  # type: ignore[no-untyped-def]
    """A second login role (same test password) for the test database; dropped afterwards."""
    name = "r_" + uuid.uuid4().hex[:8]
    with pg_admin_of(pg_db) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{TEST_PASSWORD}'")
    yield name
    with pg_admin_of(pg_db) as conn:
        conn.execute(f"DROP OWNED BY {name}")
        conn.execute(f"DROP ROLE {name}")


def _as(pg_server: PgServer, pg_db: str, role: str) -> str:
    import dataclasses

    return dataclasses.replace(pg_server, role=role).url(_dbname(pg_db))


# -- connection forms ---------------------------------------------------------------------------


def _keywords(pg_server: PgServer, pg_db: str, **extra: str) -> str:
    parts = {"host": pg_server.host, "dbname": _dbname(pg_db), "user": pg_server.role, "password": TEST_PASSWORD}
    if pg_server.port:
        parts["port"] = pg_server.port
    parts.update(extra)
    return " ".join(f"{k}={v}" for k, v in parts.items())


def test_keyword_string_is_postgres_never_a_file(pg_server: PgServer, pg_db: str, sql_root: Path, tmp_path: Path):
    write_migrations(sql_root, "postgres", ONE)
    work = tmp_path / "cwd"
    work.mkdir()
    r = run_cli("migrate", "-d", _keywords(pg_server, pg_db), "--sql-dir", str(sql_root), cwd=work)
    assert r.code == 0, r.output
    assert "applied 0001_a" in r.stdout and "password=***" in r.stdout
    assert list(work.iterdir()) == []  # no file named after the string (or its password)
    with psycopg.connect(pg_db) as conn:
        assert _tables(conn) == ["a", "agor_migrations"]


def test_empty_url_takes_everything_from_pg_environment(pg_server: PgServer, pg_db: str, sql_root: Path):
    write_migrations(sql_root, "postgres", ONE)
    env = {"PGHOST": pg_server.host, "PGUSER": pg_server.role, "PGPASSWORD": TEST_PASSWORD}
    env |= {"PGPORT": pg_server.port} if pg_server.port else {}
    r = run_cli("migrate", "-d", f"postgresql:///{_dbname(pg_db)}", "--sql-dir", str(sql_root), env=env)
    assert r.code == 0, r.output
    r = run_cli("status", "-d", "postgresql://", "--sql-dir", str(sql_root), env={**env, "PGDATABASE": _dbname(pg_db)})
    assert r.code == 0, r.output
    assert "1 applied, 0 pending" in r.stdout
    # which server a bare postgresql:// talks to is said; the password is not
    assert f"PGHOST={pg_server.host}" in r.stdout and f"PGDATABASE={_dbname(pg_db)}" in r.stdout, r.stdout
    assert f"PGUSER={pg_server.role}" in r.stdout and "PGPASSWORD" not in r.stdout


def test_service_file(pg_server: PgServer, pg_db: str, sql_root: Path, tmp_path: Path):
    write_migrations(sql_root, "postgres", ONE)
    service = tmp_path / "pg_service.conf"
    body = "\n".join(_keywords(pg_server, pg_db).split())
    service.write_text(f"[agor]\n{body}\n")
    r = run_cli("migrate", "-d", "service=agor", "--sql-dir", str(sql_root), env={"PGSERVICEFILE": str(service)})
    assert r.code == 0, r.output
    assert "applied 0001_a" in r.stdout
    r = run_cli("migrate", "-d", "service=nosuch", "--sql-dir", str(sql_root), env={"PGSERVICEFILE": str(service)})
    assert r.code == 2, r.output
    assert 'definition of service "nosuch" not found' in r.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hots=db port=5432 dbname=agor user=agor password=PW", "did you mean 'host'?"),
        ("agor", "is neither a URL nor a SQLite file path"),
        ("host=db password", "write it as keyword=value pairs"),
    ],
)
def test_bad_strings_are_usage_errors_creating_nothing(raw: str, expected: str, sql_root: Path, tmp_path: Path):
    write_migrations(sql_root, "postgres", ONE)
    write_migrations(sql_root, "sqlite", ONE)
    r = run_cli("migrate", "-d", raw.replace("PW", TEST_PASSWORD), "--sql-dir", str(sql_root), cwd=tmp_path)
    assert r.code == 2, r.output
    assert expected in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sql"]


def test_every_host_unreachable(sql_root: Path):
    write_migrations(sql_root, "postgres", ONE)
    url = f"postgresql://agor:{TEST_PASSWORD}@127.0.0.1:1,127.0.0.1:2/agor?connect_timeout=2"
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 5, r.output
    assert "every host failed: 127.0.0.1:1: " in r.stderr and "; 127.0.0.1:2: " in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # the error and its hint


def test_one_unreachable_host_of_several_is_skipped(pg_server: PgServer, pg_db: str, sql_root: Path):
    if not pg_server.host.startswith("/"):
        pytest.skip("needs the suite's own server on a unix socket")
    write_migrations(sql_root, "postgres", ONE)
    url = _keywords(pg_server, pg_db, host=f"127.0.0.1,{pg_server.host}", port="1,5432", connect_timeout="2")
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output


def test_bad_startup_option_is_a_usage_error(pg_db: str, sql_root: Path, pg_admin_of):  # type: ignore[no-untyped-def]
    write_migrations(sql_root, "postgres", ONE)
    r = run_cli("migrate", "-d", pg_db + "&options=-c%20statement_timeout%3Dxyz", "--sql-dir", str(sql_root))
    assert r.code == 2, r.output
    assert "refused a setting in the connection options" in r.stderr
    assert 'invalid value for parameter "statement_timeout": "xyz"' in r.stderr
    assert "did not answer in time" not in r.stderr
    r = run_cli("wait", "-d", pg_db + "&options=-c%20statement_timeout%3Dxyz", "--timeout", "30")
    assert r.code == 2 and "refused a setting in the connection options" in r.stderr, r.output  # at once
    with pg_admin_of(pg_db) as conn:
        assert _tables(conn) == []


# -- the server's settings ----------------------------------------------------------------------


def test_role_timeouts_do_not_cut_migrations_short(pg_db: str, sql_root: Path, pg_admin_of):  # type: ignore[no-untyped-def]
    slow = {"0001_slow.sql": "SELECT pg_sleep(0.6);\nCREATE TABLE slow (id INTEGER);\n"}
    write_migrations(sql_root, "postgres", slow)
    with pg_admin_of(pg_db) as conn:
        conn.execute(f'ALTER DATABASE "{_dbname(pg_db)}" SET statement_timeout = 200')
        conn.execute(f'ALTER DATABASE "{_dbname(pg_db)}" SET idle_in_transaction_session_timeout = 200')
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    with pg_admin_of(pg_db) as conn:
        assert _tables(conn) == ["agor_migrations", "slow"]


def test_missing_privileges_on_the_journal(pg_server, pg_db, role, sql_root, pg_admin_of):  # type: ignore[no-untyped-def]
    write_migrations(sql_root, "postgres", ONE)
    assert run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)).code == 0
    write_migrations(sql_root, "postgres", TWO)
    for command in ("migrate", "status"):
        r = run_cli(command, "-d", _as(pg_server, pg_db, role), "--sql-dir", str(sql_root))
        assert r.code == 1, r.output
        assert f"role {role} lacks a privilege needed while reading the journal" in r.stderr
        assert "permission denied for table agor_migrations" in r.stderr
        assert "internal error" not in r.stderr
    with pg_admin_of(pg_db) as conn:
        assert _tables(conn) == ["a", "agor_migrations"]
        assert conn.execute("SELECT count(*) FROM agor_migrations").fetchone() == (1,)


def test_missing_create_privilege_on_the_schema(pg_server, pg_db, role, sql_root, pg_admin_of):  # type: ignore[no-untyped-def]
    write_migrations(sql_root, "postgres", ONE)
    r = run_cli("migrate", "-d", _as(pg_server, pg_db, role), "--sql-dir", str(sql_root))
    assert r.code == 1, r.output
    assert "permission denied for schema public" in r.stderr
    assert "creating it needs CREATE on the schema" in r.stderr
    with pg_admin_of(pg_db) as conn:
        assert _tables(conn) == []


def test_read_only_role(pg_server, pg_db, role, sql_root, pg_admin_of):  # type: ignore[no-untyped-def]
    write_migrations(sql_root, "postgres", ONE)
    with pg_admin_of(pg_db) as conn:
        conn.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    url = _as(pg_server, pg_db, role)
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 1, r.output
    assert "the session is read-only (default_transaction_read_only = on, set for role" in r.stderr
    assert f"ALTER ROLE {role} RESET default_transaction_read_only" in r.stderr
    # with a journal already there, the refusal comes from the migration itself: same cause, not "fix the file"
    assert run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)).code == 0
    with pg_admin_of(pg_db) as conn:
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    write_migrations(sql_root, "postgres", TWO)
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 1, r.output
    assert "the session is read-only (default_transaction_read_only" in r.stderr
    assert "refused while applying 0002_b.sql (statement 1 of 1, line 1)" in r.stderr
    assert "fix " not in r.stderr
    r = run_cli("status", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 0 and "1 applied, 1 pending" in r.stdout
    with pg_admin_of(pg_db) as conn:
        assert _tables(conn) == ["a", "agor_migrations"]


def test_search_path_journal_lives_with_the_tables(pg_db: str, sql_root: Path, pg_admin_of):  # type: ignore[no-untyped-def]
    write_migrations(sql_root, "postgres", ONE)
    assert run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)).code == 0  # public.agor_migrations
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA agor")
    with pg_admin_of(pg_db) as conn:
        conn.execute(f'ALTER DATABASE "{_dbname(pg_db)}" SET search_path = agor, public')
    r = run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    assert "applied 0001_a" in r.stdout  # agor.a did not exist: public's journal is not this schema's
    with pg_admin_of(pg_db) as conn:
        assert _tables(conn, "agor") == ["a", "agor_migrations"]
        assert conn.execute("SELECT count(*) FROM public.agor_migrations").fetchone() == (1,)
    r = run_cli("status", "-d", pg_db, "--sql-dir", str(sql_root), "--json")
    assert r.code == 0 and '"version": 1' in r.stdout


# -- a dedicated primary and its hot standby ----------------------------------------------------


def test_standby_migrate_status_wait(cluster: Cluster, sql_root: Path):  # noqa: F811
    write_migrations(sql_root, "postgres", ONE)
    assert run_cli("migrate", "-d", cluster.url(PRIMARY_PORT), "--sql-dir", str(sql_root)).code == 0
    write_migrations(sql_root, "postgres", TWO)
    standby = cluster.url(STANDBY_PORT)
    with psycopg.connect(standby, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while conn.execute("SELECT to_regclass('agor_migrations')").fetchone() == (None,):
            assert time.monotonic() < deadline, "the standby did not replay the first migration"
            time.sleep(0.05)
    r = run_cli("status", "-d", standby, "--sql-dir", str(sql_root))
    assert r.code == 0 and "1 applied, 1 pending" in r.stdout, r.output
    assert "is a hot standby (read-only replica): what it shows may lag behind the primary" in r.stderr
    r = run_cli("migrate", "-d", standby, "--sql-dir", str(sql_root))
    assert r.code == 5, r.output
    assert "is a hot standby (read-only replica, pg_is_in_recovery() is true)" in r.stderr
    assert "migrations must run against the primary" in r.stderr
    started = time.monotonic()
    r = run_cli("wait", "-d", standby, "--timeout", "30")
    assert r.code == 5, r.output
    assert "hot standby" in r.stderr and "does not become writable by waiting" in r.stderr
    assert time.monotonic() - started < 10
    both = (
        f"host={cluster.root},{cluster.root} port={STANDBY_PORT},{PRIMARY_PORT} dbname=postgres user=postgres "
        "target_session_attrs=read-write"
    )
    assert run_cli("wait", "-d", both, "--timeout", "10").code == 0
    assert run_cli("migrate", "-d", both, "--sql-dir", str(sql_root)).code == 0


def test_server_restart_mid_migration(cluster: Cluster, sql_root: Path):  # noqa: F811
    dbname = "restart_" + uuid.uuid4().hex[:6]
    with psycopg.connect(cluster.url(PRIMARY_PORT), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    files = {**ONE, "0002_slow.sql": "CREATE TABLE slow (id INTEGER);\nSELECT pg_sleep(30);\n"}
    write_migrations(sql_root, "postgres", files)
    url = cluster.url(PRIMARY_PORT, dbname)
    proc = spawn_cli(["migrate", "-d", url, "--sql-dir", str(sql_root)])
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 20
        query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%'"
        while conn.execute(query).fetchone() != (1,):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
    cluster.pg_ctl("primary", "-m", "fast", "restart")
    code, _out, err = finish_cli(proc)
    assert code == 5, err
    assert f"the server ended the session with {redacted(url)} (a shutdown, restart" in err
    assert "pg_terminate_backend) while applying 0002_slow.sql" in err
    assert "0002_slow.sql and its journal row commit together" in err and "nothing of it was kept" in err
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM agor_migrations").fetchall() == [(1,)]
        assert conn.execute("SELECT to_regclass('slow')").fetchone() == (None,)


def test_a_timeout_that_still_ends_something_is_named(pg_db: str, pg_admin_of):  # type: ignore[no-untyped-def]
    """Outside agor-db's guarded transactions (a non-transactional statement, a wait in autocommit) the
    server's statement_timeout can still cancel: the message names it, where it is set, and the reset."""
    from agor_db.drivers.pg_diagnosis import SessionFacts, session_cause
    from agor_db.core.errors import ExitCode

    dbname = _dbname(pg_db)
    with pg_admin_of(pg_db) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" SET statement_timeout = 100')
    url = parse_url(pg_db)
    with psycopg.connect(pg_db, autocommit=True) as conn:
        facts = SessionFacts.read(conn)
        with pytest.raises(psycopg.errors.QueryCanceled) as caught:
            conn.execute("SELECT pg_sleep(2)")
    error = session_cause(url, facts, caught.value, "waiting for the migration lock")
    assert error is not None and error.exit_code == ExitCode.FAILURE
    assert "the server cancelled agor-db while waiting for the migration lock: statement_timeout = 100ms, " in str(
        error
    )
    assert f"set for database {dbname} (ALTER DATABASE … SET)" in str(error)
    assert f"ALTER DATABASE {dbname} RESET statement_timeout" in str(error)
    assert TEST_PASSWORD not in str(error)


def test_idle_in_transaction_timeout_is_named(pg_db: str, role, pg_server, pg_admin_of):  # type: ignore[no-untyped-def]
    from agor_db.drivers.pg_diagnosis import SessionFacts, session_cause

    with pg_admin_of(pg_db) as conn:
        conn.execute(f"ALTER ROLE {role} SET idle_in_transaction_session_timeout = 100")
    url = _as(pg_server, pg_db, role)
    with psycopg.connect(url, autocommit=True) as conn:
        facts = SessionFacts.read(conn)
        conn.execute("BEGIN")
        time.sleep(0.5)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT 1")
    error = session_cause(parse_url(url), facts, caught.value, "applying 0002_b.sql")
    assert error is not None
    assert (
        "the server ended agor-db's session while applying 0002_b.sql: idle_in_transaction_session_timeout = 100ms"
        in (str(error))
    )
    assert f"set for role {role} (ALTER ROLE … SET)" in str(error)
    assert f"ALTER ROLE {role} RESET idle_in_transaction_session_timeout" in str(error)


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("sslmode=bogus", 'invalid sslmode value: "bogus"'),
        ("target_session_attrs=bogus", 'invalid target_session_attrs value: "bogus"'),
        ("port=x", 'invalid integer value "x" for connection option "port"'),
    ],
)
@pytest.mark.parametrize("command", [("status",), ("migrate",), ("wait", "--timeout", "30")])
def test_a_parameter_libpq_cannot_use_is_a_usage_error_at_once(
    pg_db: str, sql_root: Path, query: str, said: str, command: tuple[str, ...]
) -> None:
    url = f"{pg_db}&{query}"
    started = time.monotonic()
    r = run_cli(*command, "-d", url, *(("--sql-dir", str(sql_root)) if command[0] != "wait" else ()))
    assert r.code == 2, r.output
    assert f"cannot use the PostgreSQL URL {redacted(url)}: {said}" in r.stderr
    assert "fix that parameter" in r.stderr
    assert time.monotonic() - started < 20  # not retried by wait
