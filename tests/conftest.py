"""Shared test fixtures: a real PostgreSQL 16 for the session, a fresh database per test,
real SQLite files, the shared spec/fixtures, and a helper that runs the real CLI in a subprocess.

If AGOR_TEST_DATABASE_URL is set (e.g. the docker compose server), it is used instead of pgserver.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SPEC = SHARED / "spec"
FIXTURES = SHARED / "fixtures"

# Every password the tests use; tests/test_secrets.py (and `run_cli`) assert none is ever printed.
TEST_PASSWORD = "s3cr3t-Agor-pw!x"
WRONG_PASSWORD = "wr0ng-Agor-pw!y"
SECRETS = (TEST_PASSWORD, WRONG_PASSWORD, quote(TEST_PASSWORD, safe=""), quote(WRONG_PASSWORD, safe=""))
TEST_ROLE = "agor_test"

# Agor's application tables in an order where every table comes after the tables it references.
AGOR_TABLES = (
    "users",
    "boards",
    "repos",
    "worktrees",
    "sessions",
    "tasks",
    "messages",
    "board_objects",
    "board_comments",
    "mcp_servers",
    "session_mcp_servers",
)


def _bytecode_cache() -> None:
    """Let the suite's ~700 starts of Python (`agor-db` subprocesses, copy workers, xdist workers) load
    compiled bytecode instead of compiling agor_db and its imports from source each time (~0.1 s a start):
    a private cache outside the checkout (so no __pycache__ appears in it, what PYTHONDONTWRITEBYTECODE was
    there for), made by the first process (xdist's controller; its workers inherit it), removed at its exit."""
    if "PYTHONPYCACHEPREFIX" in os.environ:  # the user's own, or the controller's
        return
    cache = tempfile.mkdtemp(prefix="agorpyc")
    os.environ["PYTHONPYCACHEPREFIX"] = cache
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    atexit.register(shutil.rmtree, cache, True)


_bytecode_cache()


def needs_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared spec/fixtures live beside the repository (../shared) in CI")
    return path


@dataclass(frozen=True)
class PgServer:
    admin_url: str  # superuser / owner URL used to create and drop test databases
    role: str
    password: str
    host: str  # socket directory or host name
    port: str | None

    def url(self, dbname: str, password: str | None = None) -> str:
        pw = quote(self.password if password is None else password, safe="")
        if self.host.startswith("/"):
            return f"postgresql://{self.role}:{pw}@/{dbname}?host={self.host}" + (
                f"&port={self.port}" if self.port else ""
            )
        port = f":{self.port}" if self.port else ""
        return f"postgresql://{self.role}:{pw}@{self.host}{port}/{dbname}"


def _admin_connect(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    external = os.environ.get("AGOR_TEST_DATABASE_URL")
    if external:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(external)
        yield PgServer(
            admin_url=external,
            role=str(params.get("user", "postgres")),
            password=str(params.get("password", "")),
            host=str(params.get("host", "localhost")),
            port=str(params["port"]) if params.get("port") else None,
        )
        return
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="agorpg"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    admin = server.get_uri()
    # Password authentication for everyone but the superuser, so wrong-password paths are real.
    hba = data / "pg_hba.conf"
    hba.write_text("local all postgres trust\nlocal all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
    with _admin_connect(admin) as conn:
        # A throwaway server: no flush to disk per COMMIT and per CREATE/DROP DATABASE (a few hundred ms of a
        # test's setup each). A crash of PostgreSQL itself still loses nothing (WAL is in the OS's cache);
        # only an OS crash could, and then the server is gone anyway. As tests/pg_cluster.py's servers.
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute(f"CREATE ROLE {TEST_ROLE} LOGIN CREATEDB PASSWORD '{TEST_PASSWORD}'")
    yield PgServer(admin_url=admin, role=TEST_ROLE, password=TEST_PASSWORD, host=str(data), port=None)
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


def _admin_db_url(server: PgServer, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(server.admin_url, dbname=dbname)


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database owned by the test role; yields its URL (with the password in it)."""
    name = "t_" + uuid.uuid4().hex[:12]
    with _admin_connect(pg_server.admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {pg_server.role}')
    yield pg_server.url(name)
    with _admin_connect(pg_server.admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_admin_of(pg_server: PgServer):  # type: ignore[no-untyped-def]
    """Connect as the server's admin to a given test database (for inspecting and sabotaging)."""

    def connect(url: str):  # type: ignore[no-untyped-def]
        from psycopg.conninfo import conninfo_to_dict

        return _admin_connect(_admin_db_url(pg_server, str(conninfo_to_dict(url)["dbname"])))

    return connect


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'agor.db'}"


@pytest.fixture
def fixture_copy(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copy one of ../shared/fixtures/*.db into the test's temp dir and return the copy's path."""

    def copy(name: str) -> Path:
        src = needs_shared(FIXTURES / name)
        dst = tmp_path / name
        shutil.copyfile(src, dst)
        dst.chmod(0o644)
        return dst

    return copy


def cli_env() -> dict[str, str]:
    """The test process's environment without any agor-db or database settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}


def spawn_cli(args: Sequence[str]) -> subprocess.Popen[str]:
    """Start the real `agor-db` in the background (for races, kills and signals)."""
    return subprocess.Popen(
        [sys.executable, "-m", "agor_db", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def finish_cli(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    """Wait for a spawned `agor-db`; its output must hold no password and no traceback."""
    out, err = proc.communicate(timeout=timeout)
    for secret in SECRETS:
        assert secret not in out + err, "a password leaked into agor-db's output"
    assert "Traceback" not in err, err
    return proc.returncode, out, err


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    prefix: list[str] | None = None,
) -> CliResult:
    """Run the real `agor-db` in a subprocess (plain output, no tty) and check it leaked no secret."""
    full_env = cli_env()
    full_env["HOME"] = full_env.get("AGOR_TEST_HOME", full_env.get("HOME", "/tmp"))
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "agor_db", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )
    result = CliResult(proc.returncode, proc.stdout, proc.stderr)
    for secret in SECRETS:
        assert secret not in result.output, f"a password leaked into the output of agor-db {' '.join(args)}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def run_cli_as_nobody(*args: str) -> CliResult:
    """Run the CLI as uid/gid 65534 (for permission tests when the suite runs as root)."""
    return run_cli(*args, prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])


@pytest.fixture
def cli():  # type: ignore[no-untyped-def]
    return run_cli


def write_migrations(root: Path, dialect: str, files: dict[str, str]) -> Path:
    folder = root / dialect
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body)
    return folder


@pytest.fixture
def sql_root(tmp_path: Path) -> Path:
    """An empty SQL root with sqlite/ and postgres/ folders, for tests independent of the real schema."""
    root = tmp_path / "sql"
    (root / "sqlite").mkdir(parents=True)
    (root / "postgres").mkdir(parents=True)
    return root
