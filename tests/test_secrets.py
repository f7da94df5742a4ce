"""No password ever reaches stdout or stderr, on any failure path agor-db has.

``run_cli`` (tests/conftest.py) already refuses any output containing a test password; these tests
drive every failure we can provoke with a password-bearing URL, check the exit code and message
(so the path really was taken), and scan stdout and stderr separately, raw and percent-encoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import SECRETS, TEST_PASSWORD, WRONG_PASSWORD, CliResult, PgServer, run_cli, write_migrations

from agor_db.drivers.pg_lock import LOCK_KEY


def _clean(r: CliResult) -> CliResult:
    for secret in (*SECRETS, quote(TEST_PASSWORD), quote(WRONG_PASSWORD)):
        assert secret not in r.stdout, f"password in stdout: {r.stdout}"
        assert secret not in r.stderr, f"password in stderr: {r.stderr}"
    assert "internal error" not in r.stderr, r.stderr
    return r


def _migrations(sql_root: Path) -> None:
    write_migrations(sql_root, "postgres", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})


def _with_password(url: str, password: str) -> str:
    return url.replace(quote(TEST_PASSWORD, safe=""), quote(password, safe=""))


def test_wrong_password(pg_db: str, sql_root: Path) -> None:
    _migrations(sql_root)
    url = _with_password(pg_db, WRONG_PASSWORD)
    assert url != pg_db
    for command in (["migrate"], ["status", "--json"]):
        r = _clean(run_cli(*command, "-d", url, "--sql-dir", str(sql_root)))
        assert r.code == 5, r.output
        assert "password authentication failed" in r.stderr
        assert "***" in r.stderr  # the URL is shown, redacted


@pytest.mark.parametrize(
    "url",
    [
        # nothing listens on port 1: refused at once
        f"postgresql://agor:{quote(TEST_PASSWORD, safe='')}@127.0.0.1:1/agor",
        # the password in the query string instead of the userinfo
        f"postgresql://agor@127.0.0.1:1/agor?password={quote(TEST_PASSWORD, safe='')}&sslmode=disable",
        # a name that never resolves (RFC 2606), with a short connect timeout
        f"postgres://agor:{quote(TEST_PASSWORD, safe='')}@agor-db-test.invalid:5432/agor?connect_timeout=2",
    ],
    ids=["refused", "query-password", "unresolvable"],
)
def test_unreachable_server(url: str, sql_root: Path) -> None:
    _migrations(sql_root)
    r = _clean(run_cli("migrate", "-d", url, "--sql-dir", str(sql_root)))
    assert r.code == 5, r.output
    assert "cannot connect to postgres" in r.stderr and "***" in r.stderr, r.stderr


def test_missing_database(pg_server: PgServer, sql_root: Path) -> None:
    _migrations(sql_root)
    r = _clean(run_cli("migrate", "-d", pg_server.url("no_such_database"), "--sql-dir", str(sql_root)))
    assert r.code == 5, r.output
    assert 'database "no_such_database" does not exist' in r.stderr
    assert "hint: create the database first" in r.stderr


def test_lock_timeout(pg_db: str, sql_root: Path, pg_admin_of: Any) -> None:
    _migrations(sql_root)
    # The holder is another role (the superuser): without pg_read_all_stats, agor-db's role sees
    # NULL backend_start/state for it, which once crashed the message.
    with pg_admin_of(pg_db) as holder:
        holder.execute("SET application_name = 'someone-else'")
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        r = _clean(run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root), "--lock-timeout", "0.2"))
    assert r.code == 4, r.output
    assert "application_name 'someone-else'" in r.stderr
    assert "***" in r.stderr


def test_failing_migration_and_drift(pg_db: str, sql_root: Path, pg_admin_of: Any) -> None:
    _migrations(sql_root)
    assert _clean(run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root))).code == 0
    # the password also sits inside the SQL and comes back in the database's error message
    write_migrations(
        sql_root, "postgres", {"0002_bad.sql": f"SELECT 'x' FROM no_such_table_{TEST_PASSWORD.count('!')};\n"}
    )
    r = _clean(run_cli("migrate", "-d", pg_db, "--sql-dir", str(sql_root)))
    assert r.code == 1 and "0002_bad.sql failed" in r.stderr, r.output
    (sql_root / "postgres" / "0002_bad.sql").unlink()
    (sql_root / "postgres" / "0001_a.sql").write_text("CREATE TABLE a (id BIGINT);\n")
    for command in (["migrate"], ["status", "--json"]):
        r = _clean(run_cli(*command, "-d", pg_db, "--sql-dir", str(sql_root)))
        assert r.code == 3, r.output


def test_success_paths_print_no_password(pg_db: str, sql_root: Path) -> None:
    _migrations(sql_root)
    for command in (["migrate", "--dry-run"], ["migrate"], ["status"], ["status", "--json"]):
        r = _clean(run_cli(*command, "-d", pg_db, "--sql-dir", str(sql_root)))
        assert r.code == 0, r.output
        assert "***" in r.output


def test_password_from_the_environment(pg_db: str, sql_root: Path) -> None:
    _migrations(sql_root)
    bad = _with_password(pg_db, WRONG_PASSWORD)
    for var in ("AGOR_DATABASE_URL", "DATABASE_URL"):
        r = _clean(run_cli("migrate", "--sql-dir", str(sql_root), env={var: bad}))
        assert r.code == 5, r.output
        assert "password authentication failed" in r.stderr


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://agor:{quote(TEST_PASSWORD, safe='')}@[::1/agor",  # unclosed IPv6 bracket
        f"postgresql://agor:{quote(TEST_PASSWORD, safe='')}@[::1/agor?sslmode=disable",
        f"postgresql:agor:{quote(TEST_PASSWORD, safe='')}@localhost/agor",
        f"mysql://agor:{quote(TEST_PASSWORD, safe='')}@localhost/agor",
    ],
    ids=["ipv6", "ipv6-query", "no-slashes", "scheme"],
)
def test_malformed_urls(url: str, sql_root: Path) -> None:
    """A typo in a URL is a usage error (exit 2) with the URL shown redacted, never a crash."""
    _migrations(sql_root)
    r = _clean(run_cli("migrate", "-d", url, "--sql-dir", str(sql_root)))
    assert r.code == 2, r.output


def test_bad_port(sql_root: Path) -> None:
    _migrations(sql_root)
    url = f"postgresql://agor:{quote(TEST_PASSWORD, safe='')}@localhost:notaport/agor"
    r = _clean(run_cli("migrate", "-d", url, "--sql-dir", str(sql_root)))
    assert r.code in (2, 5), r.output  # libpq takes the port as a service name and fails to resolve it
    assert "postgresql://agor:***@localhost:notaport/agor" in r.stderr


def test_keyword_conninfo_is_not_mistaken_for_a_printable_path(tmp_path: Path, sql_root: Path) -> None:
    # libpq keyword strings are not accepted (they read as a file path), but even then no secret prints
    _migrations(sql_root)
    r = _clean(
        run_cli("migrate", "-d", f"host=/tmp dbname=agor password={TEST_PASSWORD}", "--sql-dir", str(sql_root)),
    )
    assert r.code != 0


def test_a_keyword_string_is_shown_masked_and_the_message_keeps_its_colon(pg_server: PgServer, sql_root: Path) -> None:
    """`cannot connect to host=… password=***: …`: the masking of the printed line took the ':' after
    the masked display for part of the password and printed 'password=*** connection failed'."""
    if not pg_server.host.startswith("/"):
        pytest.skip("needs the suite's own PostgreSQL (on a Unix socket)")
    _migrations(sql_root)
    conninfo = f"host={pg_server.host} dbname=postgres user={pg_server.role} password='{WRONG_PASSWORD}'"
    r = _clean(run_cli("migrate", "-d", conninfo, "--sql-dir", str(sql_root)))
    assert r.code == 5, r.output
    shown = f"host={pg_server.host} dbname=postgres user={pg_server.role} password=***"
    assert f"error: cannot connect to {shown}: connection failed: " in r.stderr, r.stderr


# -- redaction by structure: short and common passwords -------------------------------------------


@pytest.fixture
def role_with_password(pg_server: PgServer) -> Any:
    """Create a login role (and a database it owns) with a given name and password; dropped afterwards."""
    import uuid

    import psycopg

    made: list[tuple[str, str]] = []

    def make(password: str, name: str | None = None) -> str:
        if pg_server.password != TEST_PASSWORD:
            pytest.skip("needs the suite's own PostgreSQL (CREATE ROLE)")
        name = name or "r_" + uuid.uuid4().hex[:10]
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            conn.execute(f"CREATE DATABASE {name} OWNER {name}")
        made.append((name, name))
        return f"postgresql://{name}:{quote(password, safe='')}@/{name}?host={pg_server.host}"

    yield make
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        for db, role in made:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_dev_style_credentials_show_user_and_database(role_with_password: Any, sql_root: Path) -> None:
    # the dev defaults are agor/agor/agor: user, password and database are one word
    import uuid

    name = "agor_" + uuid.uuid4().hex[:8]
    url = role_with_password(name, name)
    _migrations(sql_root)
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    assert f"postgresql://{name}:***@/{name}?host=" in r.stdout, r.stdout
    r = run_cli("status", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 0 and f"database: postgresql://{name}:***@/{name}?host=" in r.stdout, r.stdout
    r = run_cli("migrate", "-d", url.replace(f"{name}:{name}@", f"{name}:nope@"), "--sql-dir", str(sql_root))
    assert r.code == 5, r.output
    assert f'password authentication failed for user "{name}"' in r.stderr, r.stderr


def test_one_letter_password_mangles_nothing_and_is_scrubbed_where_echoed(
    role_with_password: Any, sql_root: Path
) -> None:
    url = role_with_password("p")
    _migrations(sql_root)
    r = run_cli("status", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 0, r.output
    assert "(postgres, from --database-url)" in r.stdout and "0 applied, 1 pending" in r.stdout
    assert ":***@/" in r.stdout
    assert run_cli("migrate", "-d", url, "--sql-dir", str(sql_root)).code == 0
    # the server echoes the password's text back in its error message: that is where it is scrubbed
    write_migrations(sql_root, "postgres", {"0002_bad.sql": "SELECT 'p'::integer;\n"})
    r = run_cli("migrate", "-d", url, "--sql-dir", str(sql_root))
    assert r.code == 1, r.output
    assert 'invalid input syntax for type integer: "***"' in r.stderr, r.stderr
    assert '"p"' not in r.stderr and "'p'" not in r.stderr
    assert "postgres" in r.stderr and "0002_bad.sql" in r.stderr  # ordinary words intact


@pytest.mark.parametrize(("char", "host"), [("@", "127.0.0.1:1"), ("/", "127.0.0.1:1"), ("@", "db.example")])
def test_unencoded_special_characters_in_the_password_are_a_usage_error(char: str, host: str, sql_root: Path) -> None:
    # libpq would take part of the password for the host or database name and try to connect there
    _migrations(sql_root)
    url = f"postgresql://agor:{TEST_PASSWORD}{char}more@{host}/agor"
    for command in (["migrate", "--sql-dir", str(sql_root)], ["status", "--sql-dir", str(sql_root)], ["wait"]):
        r = _clean(run_cli(*command, "-d", url))
        assert r.code == 2, r.output
        assert r.stdout == ""
        lines = r.stderr.splitlines()
        assert lines[0] == (
            f"error: cannot read the PostgreSQL URL from --database-url: its user name or password "
            f"contains an unencoded '{char}'"
        ), r.stderr
        assert lines[1].startswith("hint: percent-encode special characters") and len(lines) == 2
    # the same password, percent-encoded, is read as written: refused by the server port, not the URL
    r = _clean(run_cli("status", "-d", f"postgresql://agor:{quote(TEST_PASSWORD + char, safe='')}@127.0.0.1:1/agor"))
    assert r.code == 5, r.output
