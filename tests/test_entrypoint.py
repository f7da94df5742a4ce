"""docker/entrypoint.sh run directly (no Docker) against the real test PostgreSQL and SQLite files.

The "app" is a small Python script that records its PID and, optionally, the signal it got.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from agor_db.core.models import JOURNAL_TABLE
from conftest import REPO, SECRETS, write_migrations

ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
SHELLS = [s for s in ("sh", "bash") if shutil.which(s)]

APP = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    marker = Path(sys.argv[1])
    def stop(signum, frame):
        marker.with_suffix(".signal").write_text(str(signum))
        sys.exit(42)
    signal.signal(signal.SIGTERM, stop)
    # written whole then renamed: the test polls for the file and must never read it half-written
    marker.with_suffix(".tmp").write_text(str(os.getpid()))
    os.replace(marker.with_suffix(".tmp"), marker)
    if len(sys.argv) > 2:  # stay up until signalled
        time.sleep(60)
    """
)

GOOD = {"0001_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"}
BROKEN = {"0001_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n"}


def _agor_db_bin_dir() -> Path:
    here = Path(sys.executable).parent
    if (here / "agor-db").exists():
        return here
    found = shutil.which("agor-db")
    if not found:
        pytest.skip("the agor-db console script is not installed (pip install -e .)")
    return Path(found).parent


@pytest.fixture
def app(tmp_path: Path) -> tuple[Path, list[str]]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    marker = tmp_path / "app.started"
    return marker, [sys.executable, str(script), str(marker)]


def _env(url: str, sql_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    env["PATH"] = f"{_agor_db_bin_dir()}{os.pathsep}{env.get('PATH', '')}"
    env["DATABASE_URL"] = url
    env["AGOR_SQL_DIR"] = str(sql_root)
    env.update(extra)
    return env


def _start(env: dict[str, str], *command: str, shell: str = "sh") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [shell, str(ENTRYPOINT), *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(env: dict[str, str], *command: str, shell: str = "sh", timeout: float = 60) -> tuple[int, str]:
    proc = _start(env, *command, shell=shell)
    out, err = proc.communicate(timeout=timeout)
    output = out + err
    for secret in SECRETS:
        assert secret not in output, "a password leaked into the entrypoint's output"
    assert "Traceback" not in output, output
    return proc.returncode, output


def _pg_tables(pg_admin_of, url: str) -> set[str]:  # type: ignore[no-untyped-def]
    with pg_admin_of(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def _sqlite_tables(db: Path) -> set[str]:
    import apsw

    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


# -- success -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_pg_waits_migrates_then_execs_the_app(shell, pg_db, pg_admin_of, sql_root, app):
    write_migrations(sql_root, "postgres", GOOD)
    marker, command = app
    proc = _start(_env(pg_db, sql_root), *command, shell=shell)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "ready after" in out and "applied 0001_items.sql" in out
    assert "items" in _pg_tables(pg_admin_of, pg_db)
    # exec: the app runs as the entrypoint's own process, not as a child of a shell
    assert marker.read_text() == str(proc.pid)


def test_sqlite_waits_migrates_then_execs_the_app(tmp_path, sql_root, app):
    write_migrations(sql_root, "sqlite", GOOD)
    db = tmp_path / "data" / "agor.db"
    db.parent.mkdir()
    marker, command = app
    code, output = _run(_env(f"sqlite://{db}", sql_root), *command)
    assert code == 0, output
    assert "items" in _sqlite_tables(db)
    assert marker.exists()


def test_without_a_command_it_migrates_and_exits_0(pg_db, pg_admin_of, sql_root):
    write_migrations(sql_root, "postgres", GOOD)
    code, output = _run(_env(pg_db, sql_root))
    assert code == 0, output
    assert "no command given" in output
    assert "items" in _pg_tables(pg_admin_of, pg_db)


def test_arguments_reach_the_app_unchanged(tmp_path, sql_root):
    out = tmp_path / "args.txt"
    code, output = _run(
        _env(f"sqlite://{tmp_path / 'agor.db'}", sql_root),
        sys.executable,
        "-c",
        "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text('|'.join(sys.argv[2:]))",
        str(out),
        "two words",
        "$HOME",
        "*",
        "",
    )
    assert code == 0, output
    assert out.read_text() == "two words|$HOME|*|"


# -- failures never start the app ----------------------------------------------------------------


def test_unreachable_database_times_out_and_never_starts_the_app(pg_server, tmp_path, sql_root, app):
    write_migrations(sql_root, "postgres", GOOD)
    url = f"postgresql://{pg_server.role}:{pg_server.password}@/agor?host={tmp_path}"
    marker, command = app
    started = time.monotonic()
    code, output = _run(_env(url, sql_root, AGOR_WAIT_TIMEOUT="0.5"), *command)
    took = time.monotonic() - started
    assert code == 5, output
    assert "was not ready after 0.5s" in output
    assert "agor-db wait failed with exit code 5 (database unavailable)" in output
    assert "the app was not started" in output
    assert "applied" not in output
    assert not marker.exists()
    assert took < 0.5 + 4


def test_failing_migration_never_starts_the_app(pg_db, pg_admin_of, sql_root, app):
    write_migrations(sql_root, "postgres", BROKEN)
    marker, command = app
    code, output = _run(_env(pg_db, sql_root), *command)
    assert code == 1, output
    assert "no_such_table" in output
    assert "agor-db migrate failed with exit code 1 (failure)" in output and "the app was not started" in output
    assert not marker.exists()
    assert "items" not in _pg_tables(pg_admin_of, pg_db)  # rolled back


def test_failing_sqlite_migration_never_starts_the_app(tmp_path, sql_root, app):
    write_migrations(sql_root, "sqlite", BROKEN)
    db = tmp_path / "agor.db"
    marker, command = app
    code, output = _run(_env(f"sqlite://{db}", sql_root), *command)
    assert code == 1, output
    assert not marker.exists()
    assert "items" not in _sqlite_tables(db)


def test_missing_agor_db_executable_exits_127(tmp_path, sql_root, app):
    marker, command = app
    env = _env(f"sqlite://{tmp_path / 'agor.db'}", sql_root, AGOR_DB_BIN="agor-db-not-installed")
    code, output = _run(env, *command)
    assert code == 127, output
    assert "cannot find 'agor-db-not-installed' on PATH" in output
    assert not marker.exists()


def test_bad_wait_timeout_is_a_usage_error(tmp_path, sql_root, app):
    marker, command = app
    code, output = _run(_env(f"sqlite://{tmp_path / 'agor.db'}", sql_root, AGOR_WAIT_TIMEOUT="soon"), *command)
    assert code == 2, output
    assert "AGOR_WAIT_TIMEOUT" in output and "exit code 2 (usage error)" in output
    assert not marker.exists()


# -- an agor-db command runs exactly as given: no implicit wait or migrate ---------------------------


def test_agor_db_dry_run_stays_dry(pg_db, pg_admin_of, sql_root):
    write_migrations(sql_root, "postgres", GOOD)
    code, output = _run(_env(pg_db, sql_root), "agor-db", "migrate", "--dry-run")
    assert code == 0, output
    assert "1 migration(s) would be applied" in output and "0001_items.sql" in output
    assert "ready after" not in output and "applied 0001" not in output
    assert _pg_tables(pg_admin_of, pg_db) == set()  # not even the journal


@pytest.mark.parametrize("command", [["agor-db", "--help"], ["--help"], ["agor-db", "migrate", "--help"]])
def test_agor_db_help_works_while_the_database_is_down(pg_server, tmp_path, sql_root, command):
    url = f"postgresql://{pg_server.role}:{pg_server.password}@/agor?host={tmp_path}"  # nothing listens
    started = time.monotonic()
    code, output = _run(_env(url, sql_root, AGOR_WAIT_TIMEOUT="30"), *command)
    assert code == 0, output
    assert "Usage: agor-db" in output and "waiting" not in output
    assert time.monotonic() - started < 10


def test_agor_db_version_and_status_run_without_migrating(tmp_path, sql_root):
    write_migrations(sql_root, "sqlite", GOOD)
    db = tmp_path / "agor.db"
    env = _env(f"sqlite://{db}", sql_root)
    code, output = _run(env, "--version")
    assert code == 0 and output.startswith("agor-db "), output
    code, output = _run(env, "agor-db", "status", "--exit-code")
    assert code == 6, output  # pending: the entrypoint did not migrate first
    assert "0 applied, 1 pending" in output
    assert not db.exists() or "items" not in _sqlite_tables(db)


def test_agor_db_command_uses_agor_db_bin(tmp_path, sql_root):
    fake = tmp_path / "bin" / "my-agor-db"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nprintf "%s|" "$@" > "{tmp_path / "args"}"\n')
    fake.chmod(0o755)
    env = _env(f"sqlite://{tmp_path / 'agor.db'}", sql_root, AGOR_DB_BIN=str(fake))
    code, output = _run(env, "agor-db", "status", "--json")
    assert code == 0, output
    assert (tmp_path / "args").read_text() == "status|--json|"


def test_sigterm_reaches_an_agor_db_command_which_rolls_back(tmp_path, sql_root):
    write_migrations(sql_root, "sqlite", LONG_SQLITE)
    db = tmp_path / "agor.db"
    proc = _start(_env(f"sqlite://{db}", sql_root), "agor-db", "migrate")
    _until(lambda: Path(f"{db}-journal").exists() or Path(f"{db}-wal").exists(), proc, "the long insert")
    proc.send_signal(signal.SIGTERM)  # the entrypoint exec'd agor-db: this is agor-db's pid
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, out + err
    assert "terminated (SIGTERM)" in err
    assert "big" not in _sqlite_tables(db)


# -- bad commands and a missing database: one line, a documented exit code, nothing run ------------


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        ([""], 2, 'the command is empty ("")'),
        (["no-such-app-xyz", "--serve"], 127, "command not found: 'no-such-app-xyz' is not on PATH"),
        (["./no/such/app"], 127, "command not found: './no/such/app' does not exist"),
        (["TMP/notes.txt"], 126, "cannot execute 'TMP/notes.txt': not an executable file"),
        (["TMP"], 126, "cannot execute 'TMP': not an executable file"),
    ],
    ids=["empty", "unknown", "missing-path", "not-executable", "directory"],
)
def test_bad_command_is_refused_before_anything_runs(pg_db, pg_admin_of, sql_root, tmp_path, command, code, message):
    write_migrations(sql_root, "postgres", GOOD)
    (tmp_path / "notes.txt").write_text("vm\n")
    (tmp_path / "notes.txt").chmod(0o644)  # root may still pass `test -x` on it
    command = [c.replace("TMP", str(tmp_path)) for c in command]
    message = message.replace("TMP", str(tmp_path))
    got, output = _run(_env(pg_db, sql_root), *command)
    assert got == code, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [f"agor-db-entrypoint: {message}; nothing was run"] or (
        command == [""] and len(lines) == 1 and message in lines[0]
    ), lines
    assert _pg_tables(pg_admin_of, pg_db) == set()  # neither waited nor migrated


def _no_database_env(tmp_path: Path, sql_root: Path, **extra: str) -> dict[str, str]:
    env = _env("unused", sql_root, HOME=str(tmp_path / "home"), **extra)
    del env["DATABASE_URL"]
    return env


@pytest.mark.parametrize("command", [[], ["app"]], ids=["no-command", "app"])
def test_no_database_configured_is_refused_with_exit_2(tmp_path, sql_root, app, command):
    write_migrations(sql_root, "sqlite", GOOD)
    marker, app_command = app
    code, output = _run(_no_database_env(tmp_path, sql_root), *(app_command if command else []))
    assert code == 2, output
    assert "no database configured: set DATABASE_URL" in output
    assert len([line for line in output.splitlines() if line.strip()]) == 1
    assert not marker.exists()
    assert not (tmp_path / "home" / ".agor").exists()  # no throwaway SQLite file was made


def test_no_database_for_an_agor_db_command_in_the_image_is_refused_too(tmp_path, sql_root):
    # the image sets AGOR_DB_REQUIRE_URL=1, so `docker run agor-db agor-db migrate` cannot hit the default
    write_migrations(sql_root, "sqlite", GOOD)
    env = _no_database_env(tmp_path, sql_root, AGOR_DB_REQUIRE_URL="1")
    code, output = _run(env, "agor-db", "migrate")
    assert code == 2, output
    assert "no database given" in output and "AGOR_DB_PATH=~/.agor/agor.db" in output
    assert not (tmp_path / "home" / ".agor").exists()


def test_sqlite_default_when_asked_for_by_name(tmp_path, sql_root, app):
    write_migrations(sql_root, "sqlite", GOOD)
    (tmp_path / "home" / ".agor").mkdir(parents=True)  # the volume mounted at /home/agor/.agor
    marker, command = app
    env = _no_database_env(tmp_path, sql_root, AGOR_DB_PATH="~/.agor/agor.db", AGOR_DB_REQUIRE_URL="1")
    code, output = _run(env, *command)
    assert code == 0, output
    assert "items" in _sqlite_tables(tmp_path / "home" / ".agor" / "agor.db")
    assert marker.exists()


# -- knobs ---------------------------------------------------------------------------------------


def test_migrate_on_start_0_skips_migrating(pg_db, pg_admin_of, sql_root, app):
    write_migrations(sql_root, "postgres", GOOD)
    marker, command = app
    code, output = _run(_env(pg_db, sql_root, AGOR_MIGRATE_ON_START="0"), *command)
    assert code == 0, output
    assert "AGOR_MIGRATE_ON_START=0: not migrating" in output
    assert marker.exists()
    assert _pg_tables(pg_admin_of, pg_db) == set()  # not even the journal


# -- signals -------------------------------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the entrypoint exited {proc.returncode} early:\n{out}{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear")
        time.sleep(0.05)


def test_sigterm_reaches_the_app(tmp_path, sql_root, app):
    marker, command = app
    proc = _start(_env(f"sqlite://{tmp_path / 'agor.db'}", sql_root), *command, "stay-up")
    _wait_for(marker, proc)
    assert marker.read_text() == str(proc.pid)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 42, out + err  # the app's own exit code: it handled the signal
    assert marker.with_suffix(".signal").read_text() == str(int(signal.SIGTERM))


def test_sigterm_while_waiting_stops_at_once_and_never_starts_the_app(tmp_path, sql_root, app):
    marker, command = app
    db = tmp_path / "not-mounted" / "agor.db"
    proc = _start(_env(f"sqlite://{db}", sql_root, AGOR_WAIT_TIMEOUT="30"), *command)
    deadline = time.monotonic() + 10
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "waiting up to 30s for ..." : agor-db wait is running
    assert "waiting up to 30s" in line and time.monotonic() < deadline
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert proc.returncode == 143, out + err
    assert "stopped by a signal; the app was not started" in err
    assert not marker.exists()


# -- several replicas at once --------------------------------------------------------------------

SLOW_PG = {"0001_items.sql": "SELECT pg_sleep(0.3);\nCREATE TABLE items (id INTEGER PRIMARY KEY);\n"}
SLOW_SQLITE = {
    "0001_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY);\n"
    + "".join(f"INSERT INTO items VALUES ({i});\n" for i in range(2000))
}


def _replicas(env: dict[str, str], tmp_path: Path, n: int = 3) -> list[tuple[int, str, Path]]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    procs = []
    for i in range(n):
        marker = tmp_path / f"replica{i}.started"
        procs.append((_start(env, sys.executable, str(script), str(marker)), marker))
    results = []
    for proc, marker in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out + err, marker))
    return results


def test_replicas_starting_at_once_on_postgres_all_start(pg_db, pg_admin_of, sql_root, tmp_path):
    write_migrations(sql_root, "postgres", SLOW_PG)
    results = _replicas(_env(pg_db, sql_root), tmp_path)
    assert [code for code, _, _ in results] == [0, 0, 0], "\n".join(o for _, o, _ in results)
    assert all(marker.exists() for _, _, marker in results)
    assert sum("applied 0001_items.sql" in output for _, output, _ in results) == 1
    with pg_admin_of(pg_db) as conn:
        assert conn.execute(f"SELECT count(*) FROM {JOURNAL_TABLE}").fetchone() == (1,)


def test_replicas_starting_at_once_on_sqlite_all_start(tmp_path, sql_root):
    write_migrations(sql_root, "sqlite", SLOW_SQLITE)
    db = tmp_path / "agor.db"
    results = _replicas(_env(f"sqlite://{db}", sql_root), tmp_path)
    assert [code for code, _, _ in results] == [0, 0, 0], "\n".join(o for _, o, _ in results)
    assert all(marker.exists() for _, _, marker in results)
    assert sum("applied 0001_items.sql" in output for _, output, _ in results) == 1
    assert "items" in _sqlite_tables(db)


# -- the script itself ---------------------------------------------------------------------------


def test_script_is_posix_sh_and_executable():
    assert os.access(ENTRYPOINT, os.X_OK)
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert 'exec "$@"' in text
    for shell in SHELLS:
        subprocess.run([shell, "-n", str(ENTRYPOINT)], check=True)
    if shutil.which("checkbashisms"):
        subprocess.run(["checkbashisms", str(ENTRYPOINT)], check=True)


# -- agor-db itself as PID 1 (`--entrypoint agor-db`, a Kubernetes `command:`, an init container) --

LONG_SQLITE = {
    "0001_big.sql": "CREATE TABLE big (x INTEGER PRIMARY KEY, b BLOB);\n"
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000)\n"
    "INSERT INTO big SELECT x, randomblob(32) FROM c;\n"
}
LONG_PG = {"0001_slow.sql": "CREATE TABLE slow (id INTEGER);\nSELECT pg_sleep(60);\n"}


def _pid1_namespaces_work() -> None:
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here ({probe.stderr.strip()}); needs root or user namespaces")


def _start_as_pid1(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], int]:
    """Start `agor-db ARGS` as PID 1 of a new PID namespace; return unshare's process and agor-db's pid."""
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", sys.executable, "-m", "agor_db", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + 10
    while not children.read_text().split():
        assert time.monotonic() < deadline, "unshare did not start agor-db"
        time.sleep(0.02)
    pid = int(children.read_text().split()[0])
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "agor-db is not PID 1 in its namespace"
    return proc, pid


def _until(ready: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Wait until agor-db is really inside the work (its start takes a while on a busy host)."""
    deadline = time.monotonic() + 30
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"agor-db never got to {what}"
        time.sleep(0.05)
    time.sleep(0.3)


def _sigterm_pid1(proc: subprocess.Popen[str], pid: int) -> tuple[int, str, float]:
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("agor-db as PID 1 ignored SIGTERM (it would be killed after the grace period)")
    took = time.monotonic() - sent
    for secret in SECRETS:
        assert secret not in out + err
    assert "Traceback" not in err, err
    return proc.returncode, err, took


def test_sigterm_to_agor_db_as_pid1_rolls_back_a_long_sqlite_migration(tmp_path, sql_root):
    _pid1_namespaces_work()
    write_migrations(sql_root, "sqlite", {"0000_first.sql": "CREATE TABLE first (id INTEGER);\n", **LONG_SQLITE})
    db = tmp_path / "agor.db"
    env = _env(f"sqlite://{db}", sql_root)
    proc, pid = _start_as_pid1(env, "migrate")
    # 0000 is committed, 0001's insert is running inside its transaction (the rollback journal exists)
    _until(lambda: Path(f"{db}-journal").exists() or Path(f"{db}-wal").exists(), proc, "the long insert")
    code, err, took = _sigterm_pid1(proc, pid)
    assert code == 143, err
    assert took < 5, "SIGTERM waited for the statement to finish"
    assert "terminated (SIGTERM); the migration in progress (if any) was rolled back" in err
    assert _sqlite_tables(db) >= {"first", JOURNAL_TABLE} and "big" not in _sqlite_tables(db)
    import apsw

    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [v for (v,) in conn.execute(f"SELECT version FROM {JOURNAL_TABLE}")] == [0]
    finally:
        conn.close()


def test_sigterm_to_agor_db_as_pid1_rolls_back_a_long_postgres_migration(pg_db, pg_admin_of, sql_root):
    _pid1_namespaces_work()
    write_migrations(sql_root, "postgres", LONG_PG)
    proc, pid = _start_as_pid1(_env(pg_db, sql_root), "migrate")

    def sleeping() -> bool:
        with pg_admin_of(pg_db) as conn:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'"
            return bool(conn.execute(sql).fetchone()[0])

    _until(sleeping, proc, "pg_sleep(60)")
    code, err, took = _sigterm_pid1(proc, pid)
    assert code == 143, err
    assert took < 5, "SIGTERM waited for pg_sleep(60)"
    assert "terminated (SIGTERM)" in err
    assert "slow" not in _pg_tables(pg_admin_of, pg_db)
    with pg_admin_of(pg_db) as conn:
        assert conn.execute(f"SELECT count(*) FROM {JOURNAL_TABLE}").fetchone() == (0,)
        # psycopg cancelled the query: no backend of the runner is left sleeping
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"
        )
        assert left.fetchone() == (0,)


def test_sigterm_to_agor_db_wait_as_pid1_exits_143(tmp_path, sql_root):
    _pid1_namespaces_work()
    env = _env(f"sqlite://{tmp_path / 'not-mounted' / 'agor.db'}", sql_root)
    proc, pid = _start_as_pid1(env, "wait", "--timeout", "60")
    assert proc.stdout is not None
    assert "waiting up to 60s" in proc.stdout.readline()  # agor-db wait is running
    time.sleep(0.5)
    code, err, took = _sigterm_pid1(proc, pid)
    assert code == 143, err
    assert took < 5
    assert err.startswith("error: terminated (SIGTERM)"), err
