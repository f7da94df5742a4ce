"""`agor-db wait` against the real test PostgreSQL and real SQLite locations."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from agor_db.ops.wait import classify_postgres_error
from conftest import SECRETS, WRONG_PASSWORD, run_cli, run_cli_as_nobody

SLACK = 3.0  # seconds beyond --timeout: process start-up plus libpq's 2 s minimum connect timeout


def _timed(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = run_cli(*args, env=env)
    return result, time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dbname(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_pg_ready_exits_0_at_once(pg_db):
    r, took = _timed("wait", "-d", pg_db, "--timeout", "10")
    assert r.code == 0, r.output
    assert "ready after" in r.stdout and "1 attempt)" in r.stdout
    assert "PostgreSQL 16" in r.stdout and "out of recovery" in r.stdout
    assert "not ready" not in r.stdout
    assert took < 5


def test_pg_no_server_on_tcp_port_times_out_with_exit_5(pg_server):
    url = f"postgresql://{pg_server.role}:{pg_server.password}@127.0.0.1:{_free_port()}/agor"
    # 2 s, not 0.5: on a busy host the first probe's psycopg import alone can outlast half a second
    r, took = _timed("wait", "-d", url, "--timeout", "2", "--interval", "0.1")
    assert r.code == 5, r.output
    assert "was not ready after 2s" in r.stderr
    assert "Connection refused; Is the server running" in r.stderr  # the last error is shown, its lines kept apart
    assert "nothing accepted connections" in r.stderr  # and what it means
    assert "postgresql://agor_test:***@127.0.0.1" in r.stderr
    assert "attempt 1, " in r.stdout  # progress was printed
    assert 2 <= took < 2 + SLACK


def test_pg_socket_dir_without_server_times_out(pg_server, tmp_path):
    empty = tmp_path / "sock"
    empty.mkdir()
    url = f"postgresql://{pg_server.role}:{pg_server.password}@/agor?host={empty}"
    r, took = _timed("wait", "-d", url, "--timeout", "0.5", "--interval", "0.1")
    assert r.code == 5, r.output
    assert "was not ready after 0.5s" in r.stderr
    assert str(empty) in r.stderr and "No such file or directory" in r.stderr
    assert took < 0.5 + SLACK


def test_pg_wrong_password_retries_then_names_the_cause(pg_server, pg_db):
    url = pg_server.url(_dbname(pg_db), password=WRONG_PASSWORD)
    r, took = _timed("wait", "-d", url, "--timeout", "2", "--interval", "0.1")
    assert r.code == 5, r.output
    assert "password authentication failed" in r.stderr
    assert "refused the login for the whole wait" in r.stderr and "password is wrong" in r.stderr
    assert "login refused; retrying" in r.stdout
    assert "***" in r.output  # the URL is shown, redacted (run_cli asserts no password leaked)
    assert took < 2 + SLACK


def test_pg_missing_database_names_the_cause(pg_server):
    url = pg_server.url("no_such_db_" + uuid.uuid4().hex[:6])
    r = run_cli("wait", "-d", url, "--timeout", "0.5", "--interval", "0.2")
    assert r.code == 5, r.output
    assert "does not exist" in r.stderr and "the database does not exist" in r.stderr


def test_pg_role_created_during_the_wait_becomes_ready(pg_server, pg_db, pg_admin_of):
    """What happens while the postgres image runs its init scripts: the login is refused, then works."""
    role = "late_" + uuid.uuid4().hex[:8]
    password = "late-pw-" + uuid.uuid4().hex[:8]
    url = dataclasses.replace(pg_server, role=role, password=password).url(_dbname(pg_db))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agor_db", "wait", "-d", url, "--timeout", "20", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # Create the role only once a refused login has been reported (a fixed sleep races with a slow start).
        seen = []
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if "login refused" in line:
                break
        assert proc.poll() is None, "".join(seen) + proc.communicate()[1]
        with pg_admin_of(pg_db) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        out, err = proc.communicate(timeout=15)
        out = "".join(seen) + out
    finally:
        if proc.poll() is None:
            proc.kill()
        with pg_admin_of(pg_db) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")
    assert proc.returncode == 0, out + err
    assert "login refused; retrying" in out
    assert "ready after" in out
    assert password not in out + err


def test_bad_url_is_a_usage_error_without_waiting():
    r, took = _timed("wait", "-d", "mysql://x@y/z", "--timeout", "30")
    assert r.code == 2, r.output
    assert "unsupported database URL scheme" in r.stderr
    assert took < 5


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("connection failed: FATAL:  the database system is starting up", "starting"),
        ("connection failed: FATAL:  the database system is shutting down", "starting"),
        ('FATAL:  password authentication failed for user "agor"', "auth"),
        ('FATAL:  role "agor" does not exist', "auth"),
        ('FATAL:  database "agor" does not exist', "no-database"),
        ("connection failed: Connection refused", "unreachable"),
        ("connection timeout expired", "timeout"),
    ],
)
def test_postgres_errors_are_classified(message, cause):
    assert classify_postgres_error(message) == cause


# -- SQLite -------------------------------------------------------------------------------------


def test_sqlite_existing_database_is_ready(tmp_path):
    import apsw

    db = tmp_path / "agor.db"
    conn = apsw.Connection(str(db))
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    before = db.read_bytes()
    r = run_cli("wait", "-d", f"sqlite://{db}", "--timeout", "5")
    assert r.code == 0, r.output
    assert "is a readable SQLite database" in r.stdout
    assert db.read_bytes() == before  # waiting never writes


def test_sqlite_missing_file_in_existing_directory_is_ready_and_not_created(tmp_path):
    db = tmp_path / "agor.db"
    r = run_cli("wait", "-d", f"sqlite://{db}", "--timeout", "5")
    assert r.code == 0, r.output
    assert "does not exist yet; migrate will create it" in r.stdout
    assert not db.exists()


def test_sqlite_missing_directory_times_out(tmp_path):
    db = tmp_path / "volume" / "agor.db"
    r, took = _timed("wait", "-d", f"sqlite://{db}", "--timeout", "0.5", "--interval", "0.1")
    assert r.code == 5, r.output
    assert f"the directory {db.parent} does not exist" in r.stderr
    assert "was not ready after 0.5s" in r.stderr
    assert not db.parent.exists()
    assert took < 0.5 + SLACK


def test_sqlite_directory_mounted_during_the_wait_becomes_ready(tmp_path):
    db = tmp_path / "volume" / "agor.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agor_db", "wait", "-d", f"sqlite://{db}", "--timeout", "20", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # mount only once the wait has seen the directory missing (a fixed sleep raced a slow start)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "does not exist (a volume not mounted yet?)" in line:
            break
    db.parent.mkdir()
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, "".join(seen) + out + err
    assert "ready after" in out


def test_sqlite_garbage_file_is_not_ready(tmp_path):
    db = tmp_path / "agor.db"
    db.write_bytes(b"this is not a database at all" * 100)
    r = run_cli("wait", "-d", f"sqlite://{db}", "--timeout", "0.3", "--interval", "0.1")
    assert r.code == 5, r.output
    assert "is not a SQLite database" in r.stderr
    assert db.read_bytes() == b"this is not a database at all" * 100


def test_sqlite_path_that_is_a_directory_is_not_ready(tmp_path):
    r = run_cli("wait", "-d", f"sqlite://{tmp_path}", "--timeout", "0")
    assert r.code == 5, r.output
    assert "is a directory, not a SQLite database file" in r.stderr
    assert "(1 attempt)" in r.stderr


def test_sqlite_unwritable_directory_is_not_ready(tmp_path):
    as_root = os.geteuid() == 0
    if as_root and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: root ignores directory permissions")
    base = Path(tempfile.mkdtemp(prefix="agor-wait-ro-")) if as_root else tmp_path
    base.chmod(0o755)
    folder = base / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        runner = run_cli_as_nobody if as_root else run_cli
        r = runner("wait", "-d", f"sqlite://{folder / 'agor.db'}", "--timeout", "0")
    finally:
        folder.chmod(0o755)
        if as_root:
            shutil.rmtree(base, ignore_errors=True)
    assert r.code == 5, r.output
    assert "is not writable" in r.stderr


def test_timeout_comes_from_agor_wait_timeout(tmp_path):
    db = tmp_path / "nowhere" / "agor.db"
    r = run_cli("wait", "-d", f"sqlite://{db}", "--interval", "0.1", env={"AGOR_WAIT_TIMEOUT": "0.4"})
    assert r.code == 5, r.output
    assert "was not ready after 0.4s" in r.stderr


def test_same_error_is_not_repeated_on_every_attempt(tmp_path):
    db = tmp_path / "nowhere" / "agor.db"
    r = run_cli("wait", "-d", f"sqlite://{db}", "--timeout", "0.6", "--interval", "0.05")
    assert r.code == 5, r.output
    attempts = int(r.stderr.split("(")[1].split(" attempt")[0])
    assert attempts >= 5  # it kept checking ...
    assert r.stdout.count("not ready:") == 1  # ... but said so once


def test_sqlite_wait_does_not_import_psycopg(tmp_path):
    code = (
        "import sys\n"
        "from agor_db.core.urls import parse_url\n"
        "from agor_db.ops.wait import wait_until_ready\n"
        f"wait_until_ready(parse_url({str(tmp_path / 'a.db')!r}), timeout=1, interval=0.1)\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_no_secret_in_messages_of_a_url_with_password_in_query(pg_server, tmp_path):
    url = f"postgresql://{pg_server.role}@/agor?host={tmp_path}&password={SECRETS[0]}"
    r = run_cli("wait", "-d", url, "--timeout", "0")  # run_cli asserts nothing secret is printed
    assert r.code == 5, r.output
    assert "password=***" in r.stderr or "password=%2A%2A%2A" in r.stderr


def test_wait_is_listed_in_help():
    r = run_cli("wait", "--help")
    assert r.code == 0
    for flag in ("--timeout", "--interval", "--database-url", "AGOR_WAIT_TIMEOUT"):
        assert flag in r.stdout


def test_paths_are_absolute_in_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli("wait", "-d", "missing-dir/agor.db", "--timeout", "0", cwd=Path(tmp_path))
    assert r.code == 5, r.output
    assert str(tmp_path / "missing-dir") in r.stderr
