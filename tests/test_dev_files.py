"""The dev and container files: docker-compose.dev.yml, Dockerfile, .dockerignore, the Justfile.

No Docker engine runs here, so the files are parsed and checked for the properties that matter, and
the Justfile's recipes run for real with a stand-in `docker` on PATH. The last tests use a real
engine through the docker SDK when one is reachable, and are skipped (with the reason) otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_cli, write_migrations

COMPOSE = REPO / "docker-compose.dev.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
JUSTFILE = REPO / "Justfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"

# What the README tells developers to use, and what `just` and the compose defaults must agree on.
DEV_URL = "postgresql://agor:agor@127.0.0.1:5432/agor"


# -- docker-compose.dev.yml ----------------------------------------------------------------------


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution, the forms this file uses: ${VAR}, ${VAR:-default}, $$."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(3)
        got = env.get(name)
        return got if got else (default or "")

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", one, value)


def _compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return dict(_interpolate(doc, env or {}))


def _env_dict(environment: Any) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in (environment or {}).items()}


def test_compose_db_is_postgres_16_with_a_named_volume():
    doc = _compose()
    db = doc["services"]["db"]
    assert db["image"] == "postgres:16"
    named = [v.split(":", 1)[0] for v in db["volumes"] if not v.startswith((".", "/", "~"))]
    assert named, "the data must live in a named volume"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert set(named) <= set(doc.get("volumes") or {})


def test_compose_db_port_is_bound_to_loopback_with_an_overridable_host_port():
    db = _compose()["services"]["db"]
    assert db["ports"] == ["127.0.0.1:5432:5432"]
    moved = _compose({"AGOR_PG_PORT": "55432"})["services"]["db"]
    assert moved["ports"] == ["127.0.0.1:55432:5432"]


def _healthcheck_command() -> str:
    check = _compose()["services"]["db"]["healthcheck"]
    assert {"interval", "timeout", "retries"} <= set(check)
    test = check["test"]
    return str(test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:]))


def test_compose_db_healthcheck_logs_in_over_tcp():
    command = _healthcheck_command()
    assert "pg_isready" not in command  # it never logs in: "ready" even for a missing database
    assert "psql" in command and "-c 'select 1'" in command
    # over TCP: the image's init-time server listens on the socket only and would look healthy
    assert "-h 127.0.0.1 -p 5432" in command
    # $$ keeps the variables for the container's shell instead of compose's interpolation
    assert '-U "${POSTGRES_USER}"' in command and '-d "${POSTGRES_DB}"' in command
    assert 'PGPASSWORD="${POSTGRES_PASSWORD}"' in command


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pgserver = pytest.importorskip("pgserver", reason="psql comes with pgserver (test extra)")
        candidate = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
        found = str(candidate) if candidate.exists() else None
    if not found:
        pytest.skip(f"{name} is not installed")
    return found


def test_compose_db_healthcheck_fails_for_a_wrong_database_or_password(pg_server, pg_db):
    """The healthcheck's own command, run against the test server (its socket instead of 127.0.0.1:5432)."""
    from psycopg.conninfo import conninfo_to_dict

    psql = _pg_bin("psql")
    where = f"-h {pg_server.host}" + (f" -p {pg_server.port}" if pg_server.port else "")
    command = _healthcheck_command().replace("-h 127.0.0.1 -p 5432", where)
    good = {"POSTGRES_USER": pg_server.role, "POSTGRES_PASSWORD": pg_server.password}
    good["POSTGRES_DB"] = str(conninfo_to_dict(pg_db)["dbname"])

    def health(**change: str) -> int:
        env = {"PATH": f"{Path(psql).parent}{os.pathsep}{os.environ['PATH']}", **good, **change}
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30).returncode

    assert health() == 0
    assert health(POSTGRES_DB="no_such_database") != 0
    assert health(POSTGRES_USER="no_such_role") != 0
    if pg_server.password:
        assert health(POSTGRES_PASSWORD="wrong") != 0
    # what the old check said for the missing database: ready
    isready = subprocess.run(
        [_pg_bin("pg_isready"), *where.split(), "-U", "no_such_role", "-d", "no_such_database"], capture_output=True
    )
    assert isready.returncode == 0


def test_compose_defaults_match_the_dev_database_url():
    db = _compose()["services"]["db"]
    env = _env_dict(db["environment"])
    port = db["ports"][0].split(":")[1]
    url = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@127.0.0.1:{port}/{env['POSTGRES_DB']}"
    assert url == DEV_URL
    custom = _compose({"AGOR_PG_USER": "u", "AGOR_PG_PASSWORD": "p", "AGOR_PG_DB": "d"})["services"]["db"]
    assert _env_dict(custom["environment"]) == {"POSTGRES_USER": "u", "POSTGRES_PASSWORD": "p", "POSTGRES_DB": "d"}


def test_readme_database_url_matches_compose_if_it_names_one():
    readme = (REPO / "README.md").read_text()
    # the Development section names the dev database; Deploying shows production-shaped examples
    development = readme.split("## Development", 1)[1].split("\n## ", 1)[0]
    urls = set(re.findall(r"DATABASE_URL=(postgresql://\S+?)(?=[\s`'\"]|$)", development))
    assert urls, "the Development section names the dev DATABASE_URL"
    for url in urls:
        assert url == DEV_URL, f"README's DATABASE_URL {url} differs from the compose defaults"


def test_compose_migrate_service_runs_the_image_entrypoint_once_the_db_is_healthy():
    doc = _compose()
    migrate = doc["services"]["migrate"]
    build = migrate["build"]
    context = build["context"] if isinstance(build, dict) else build
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    assert (REPO / context / dockerfile).resolve() == DOCKERFILE
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert "entrypoint" not in migrate, "the image's entrypoint (wait, migrate) must run"
    assert migrate.get("restart", "no") == "no"
    # always the working tree's code: `run` builds first instead of reusing a stale image
    assert migrate["pull_policy"] == "build"
    # no command: the entrypoint waits, migrates and exits (an agor-db command would skip both)
    assert "command" not in migrate
    env = _env_dict(migrate["environment"])
    assert env["DATABASE_URL"] == "postgresql://db:5432"  # the service name, not localhost
    assert (env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"]) == ("agor", "agor", "agor")


@pytest.mark.parametrize("password", ["p@ss", "a:b/c?d#e%f", "with space&x=y"])
def test_compose_migrate_credentials_reach_libpq_verbatim(password):
    from psycopg.conninfo import conninfo_to_dict

    db = _compose({"AGOR_PG_PASSWORD": password, "AGOR_PG_USER": "me@corp"})["services"]
    assert _env_dict(db["db"]["environment"])["POSTGRES_PASSWORD"] == password
    env = _env_dict(db["migrate"]["environment"])
    # the password is not pasted into the URL (compose cannot percent-encode): libpq reads PGPASSWORD
    assert password not in env["DATABASE_URL"] and "@" not in env["DATABASE_URL"]
    assert (env["PGUSER"], env["PGPASSWORD"]) == ("me@corp", password)
    assert conninfo_to_dict(env["DATABASE_URL"]) == {"host": "db", "port": "5432"}


# -- Dockerfile and .dockerignore ----------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append(ins)
    return stages


def test_dockerfile_builds_the_wheel_in_one_stage_and_installs_it_in_a_slim_one():
    build, final = _stages()
    assert build[0] == ("FROM", "python:3.11-slim AS build")
    assert any(w == "RUN" and "pip wheel --no-deps" in r and r.rstrip().endswith(" .") for w, r in build)
    assert final[0][1].split()[0] == "python:3.11-slim"
    assert any(w == "COPY" and r.startswith("--from=build ") for w, r in final)
    assert any(w == "RUN" and "pip install" in r and ".whl" in r for w, r in final)
    runs = " ".join(r for w, r in final if w == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "apk add"):
        assert tool not in runs, f"the runtime stage must not install build tools ({tool})"


def test_dockerfile_runs_as_a_non_root_user_with_the_entrypoint():
    final = _stages()[-1]
    users = [r for w, r in final if w == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any(w == "RUN" and "useradd" in r and users[-1].split(":")[0] in r for w, r in final)
    user_at = max(i for i, (w, _) in enumerate(final) if w == "USER")
    assert all(w != "RUN" for w, _ in final[user_at + 1 :]), "nothing runs as root after USER"
    copies = [r for w, r in final if w == "COPY" and "docker/entrypoint.sh" in r]
    assert copies
    target = copies[0].split()[-1]
    entry = [r for w, r in final if w == "ENTRYPOINT"]
    assert entry and entry[-1].startswith("["), "exec form, so no shell sits between Docker and the script"
    assert entry[-1] == f'["{target}"]'
    # without CMD the base image's ["python3"] would be the "app"
    assert any(w == "CMD" for w, _ in final)


def test_dockerfile_installs_pinned_dependencies_before_the_code_and_sql():
    build, final = _stages()
    copies = [r for w, r in final if w == "COPY"]
    deps = next(i for i, (w, r) in enumerate(final) if w == "RUN" and "-r /tmp/constraints.txt" in r)
    assert "--only-binary=:all:" in final[deps][1]
    assert any(w == "COPY" and r.startswith("constraints.txt ") for w, r in final[:deps])
    wheel = next(i for i, (w, r) in enumerate(final) if w == "COPY" and r.startswith("--from=build "))
    assert deps < wheel, "the dependency layer must not depend on runner/ or sql/"
    assert any(w == "RUN" and "pip install --no-deps" in r and "pip check" in r for w, r in final[wheel:])
    assert not any("runner" in r or "sql" in r for r in copies)
    # in the build stage, the build backend is installed before the sources are copied
    backend = next(i for i, (w, r) in enumerate(build) if w == "RUN" and "setuptools==" in r)
    first_source = next(i for i, (w, r) in enumerate(build) if w == "COPY")
    assert backend < first_source
    assert any(w == "RUN" and "--no-build-isolation" in r for w, r in build)


def test_dockerfile_user_group_volume_dir_and_no_silent_default():
    final = _stages()[-1]
    runs = " ".join(r for w, r in final if w == "RUN")
    assert "groupadd --system --gid 10001 agor" in runs
    assert "--uid 10001 --gid agor" in runs
    assert "install -d -o agor -g agor" in runs and "/home/agor/.agor" in runs
    env = " ".join(r for w, r in final if w == "ENV")
    assert "AGOR_DB_REQUIRE_URL=1" in env
    # an `agor-db ...` CMD would run as an agor-db command, without waiting and migrating
    assert [r for w, r in final if w == "CMD"] == ["[]"]


def _runtime_closure() -> dict[str, str]:
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = ["agor-db"]
    while todo:
        dist = distribution(todo.pop())
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if name in seen:
            continue
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            extra = "binary" if name == "psycopg" else ""
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo.append(req.name)
    del seen["agor-db"]
    return seen


def test_constraints_pin_exactly_the_runtime_dependencies_the_suite_runs_with():
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    installed = _runtime_closure()
    assert set(pins) == set(installed), "constraints.txt is stale: run `just lock`"
    differ = {n: (pins[n], installed[n]) for n in pins if pins[n] != installed[n]}
    assert not differ, f"installed versions differ from constraints.txt: {differ}; pip install -c constraints.txt"


def _context_files() -> set[str]:
    build_utils = pytest.importorskip("docker.utils.build", reason="the docker SDK is in the dev extra")
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    return {p for p in build_utils.exclude_paths(str(REPO), patterns, dockerfile="Dockerfile")}


def test_dockerignore_sends_what_the_dockerfile_copies_and_nothing_else():
    included = _context_files()
    sources = []
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            sources += [s for s in rest.split()[:-1] if not s.startswith("--")]
    for src in sources:
        assert (REPO / src).exists(), src
        assert src in included, f"{src} is copied by the Dockerfile but excluded by .dockerignore"
    assert "runner/ops/wait.py" in included
    assert any(p.startswith("sql/postgres/") and p.endswith(".sql") for p in included)
    for unwanted in (".git", "tests", "bench", ".venv", "agor_db.egg-info", "Justfile"):
        assert not any(p == unwanted or p.startswith(unwanted + "/") for p in included), unwanted
    assert not any("__pycache__" in p or p.endswith((".pyc", ".db")) for p in included)


# -- Justfile ------------------------------------------------------------------------------------

REQUIRED_RECIPES = [
    "db-up",
    "db-down",
    "db-reset",
    "db-psql",
    "migrate",
    "status",
    "new",
    "check",
    "copy",
    "test",
    "lint",
    "bench",
]


def _just_bin() -> str:
    here = Path(sys.executable).parent / "just"
    found = str(here) if here.exists() else shutil.which("just")
    if not found:
        pytest.skip("`just` is not installed: it comes from PyPI (rust-just) in the dev extra")
    return found


def _just(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    base.update(env or {})
    return subprocess.run(
        [_just_bin(), "--justfile", str(JUSTFILE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
    )


def test_just_list_documents_every_recipe():
    r = _just("--list")
    assert r.returncode == 0, r.stderr
    listed = {}
    for line in r.stdout.splitlines()[1:]:
        m = re.match(r"^\s+(\S+)(.*?)(?:# (.*))?$", line)
        assert m, line
        listed[m.group(1)] = (m.group(2).strip(), (m.group(3) or "").strip())
    for name in REQUIRED_RECIPES:
        assert name in listed, f"recipe {name} is missing"
        assert listed[name][1], f"recipe {name} has no doc comment"
    assert listed["new"][0] == "NAME"
    assert listed["copy"][0].startswith("*")  # passes arguments through


def test_just_dry_run_db_up_starts_the_db_waits_then_migrates():
    r = _just("--dry-run", "db-up")
    assert r.returncode == 0, r.stderr
    lines = [line.strip() for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, lines
    assert lines[0].startswith("docker compose -f docker-compose.dev.yml up -d") and lines[0].endswith(" db")
    assert lines[1].startswith("agor-db wait")
    assert lines[2].startswith("agor-db migrate")


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("test", ["python -m pytest -q"]),
        ("lint", ["ruff check runner tests bench", "mypy"]),
        (
            "bench",
            [
                "mkdir -p bench/out",
                "python bench/bench_migrate.py --out bench/out/migrate.md",
                "python bench/bench_copy.py",
            ],
        ),
        ("db-down", ["docker compose -f docker-compose.dev.yml down"]),
    ],
)
def test_just_dry_run_commands(recipe, expected):
    r = _just("--dry-run", recipe)
    assert r.returncode == 0, r.stderr
    lines = [re.sub(r' "\$@"$', "", line.strip()) for line in r.stderr.splitlines() if line.strip()]
    assert lines == expected


@pytest.mark.parametrize("password", ["p@ss", "a:b/c?d#e%f", "with space&x=y"])
def test_just_percent_encodes_the_credentials(password):
    from psycopg.conninfo import conninfo_to_dict

    url = _just("--evaluate", "DATABASE_URL", env={"AGOR_PG_PASSWORD": password, "AGOR_PG_USER": "me@corp"}).stdout
    assert password not in url
    parsed = conninfo_to_dict(url)  # libpq's own parser
    assert (parsed["user"], parsed["password"], parsed["host"], parsed["dbname"]) == (
        "me@corp",
        password,
        "127.0.0.1",
        "agor",
    )


def test_just_lock_rewrites_constraints_from_a_scratch_virtualenv():
    r = _just("--dry-run", "lock")
    assert r.returncode == 0, r.stderr
    assert "pip freeze --exclude agor-db" in r.stdout + r.stderr
    assert "constraints.txt" in r.stdout + r.stderr


def test_just_exports_the_compose_database_url():
    assert _just("--evaluate", "DATABASE_URL").stdout == DEV_URL
    moved = _just("--evaluate", "DATABASE_URL", env={"AGOR_PG_PORT": "55432"}).stdout
    assert moved == DEV_URL.replace(":5432/", ":55432/")
    mine = "sqlite:///tmp/mine.db"
    assert _just("--evaluate", "DATABASE_URL", env={"DATABASE_URL": mine}).stdout == mine


@pytest.fixture
def fake_bin(tmp_path: Path) -> tuple[Path, Path]:
    """A directory with stand-ins that record their arguments, one per line, then a blank line."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    log = tmp_path / "calls.log"
    return folder, log


def _fake(folder: Path, log: Path, name: str) -> None:
    script = folder / name
    script.write_text(
        f'#!/bin/sh\n{{ echo "{name}"; for a in "$@"; do printf "%s\\n" "$a"; done; echo; }} >> "{log}"\n'
    )
    script.chmod(0o755)


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [block.split("\n") for block in log.read_text().strip("\n").split("\n\n") if block]


def test_just_db_up_runs_compose_then_waits_and_migrates_for_real(pg_db, pg_admin_of, sql_root, fake_bin):
    folder, log = fake_bin
    _fake(folder, log, "docker")
    write_migrations(sql_root, "postgres", {"0001_t.sql": "CREATE TABLE t (id INTEGER PRIMARY KEY);\n"})
    r = _just(
        "db-up",
        env={
            "PATH": f"{folder}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DATABASE_URL": pg_db,
            "AGOR_SQL_DIR": str(sql_root),
        },
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert _calls(log) == [["docker", "compose", "-f", "docker-compose.dev.yml", "up", "-d", "db"]]
    assert "ready after" in r.stdout and "applied 0001_t.sql" in r.stdout
    with pg_admin_of(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('t') IS NOT NULL").fetchone() == (True,)


def test_just_copy_and_new_pass_arguments_through_unchanged(fake_bin):
    folder, log = fake_bin
    _fake(folder, log, "agor-db")
    env = {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}
    odd = "postgresql://u@/db?host=/tmp/x&port=5433"
    r = _just("copy", "--from", "~/.agor/agor.db", "--to", odd, "two words", env=env)
    assert r.returncode == 0, r.stderr
    r = _just("new", "add_tags", env=env)
    assert r.returncode == 0, r.stderr
    assert _calls(log) == [
        ["agor-db", "copy", "--from", "~/.agor/agor.db", "--to", odd, "two words"],
        ["agor-db", "new", "add_tags"],
    ]


def test_just_db_reset_asks_first_and_does_nothing_on_no(fake_bin):
    folder, log = fake_bin
    _fake(folder, log, "docker")
    r = _just("db-reset", env={"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, stdin="n\n")
    assert r.returncode != 0
    assert "deletes the dev PostgreSQL data volume" in r.stderr
    assert _calls(log) == []
    r = _just("--yes", "db-reset", env={"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"})
    assert r.returncode == 0, r.stderr
    assert _calls(log) == [
        ["docker", "compose", "-f", "docker-compose.dev.yml", "down", "--volumes", "--remove-orphans"]
    ]


def test_just_db_psql_uses_the_container_psql():
    r = _just("--dry-run", "db-psql")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "docker compose -f docker-compose.dev.yml exec db psql -U agor -d agor"


# -- a real engine, when there is one -------------------------------------------------------------


def _docker_client() -> Any:
    docker = pytest.importorskip("docker", reason="the docker SDK is in the dev extra: pip install -e '.[dev]'")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160]
        pytest.skip(f"no Docker engine reachable ({reason}); these tests start postgres:16 in it")
    return client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def docker_image() -> Any:
    """The image built from this repository's Dockerfile (needs an engine that has or can pull python:3.11-slim)."""
    client = _docker_client()
    _needs_image(client, "python:3.11-slim")
    image, _logs = client.images.build(path=str(REPO), dockerfile="Dockerfile", tag="agor-db:test", rm=True)
    return client, image


def _needs_image(client: Any, name: str) -> None:
    """Skip, saying why, when the engine neither has the image nor can pull it (CI has no registry)."""
    docker = pytest.importorskip("docker")
    try:
        client.images.get(name)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(name)
    except docker.errors.APIError as exc:
        reason = " ".join(str(exc).split())[:160]
        pytest.skip(f"the Docker engine has no {name} image and cannot pull it ({reason})")


def _run_image(client: Any, image: Any, *command: str, **kwargs: Any) -> tuple[int, str]:
    container = client.containers.run(image.id, list(command) or None, detach=True, **kwargs)
    try:
        status = container.wait(timeout=120)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    return int(status["StatusCode"]), logs


@pytest.mark.slow
def test_docker_image_user_group_and_agor_db_commands(docker_image):
    client, image = docker_image
    code, logs = _run_image(client, image, "id", entrypoint="")
    assert code == 0 and logs.strip().startswith("uid=10001(agor) gid=10001(agor)"), logs
    down = {"DATABASE_URL": "postgresql://agor:pw@nowhere.invalid:5432/agor", "AGOR_WAIT_TIMEOUT": "30"}
    code, logs = _run_image(client, image, "agor-db", "--help", environment=down)
    assert code == 0 and "Usage: agor-db" in logs and "waiting" not in logs, logs  # no implicit wait
    code, logs = _run_image(client, image, "", environment=down)
    assert code == 2 and 'the command is empty ("")' in logs, logs


@pytest.mark.slow
def test_docker_image_refuses_to_run_without_a_database(docker_image):
    client, image = docker_image
    code, logs = _run_image(client, image)
    assert code == 2, logs
    assert "no database configured" in logs and "applied" not in logs
    code, logs = _run_image(client, image, "agor-db", "migrate")
    assert code == 2 and "no database given" in logs, logs


@pytest.mark.slow
def test_docker_image_sqlite_on_a_named_volume(docker_image):
    client, image = docker_image
    volume = client.volumes.create("agor-db-test-" + uuid.uuid4().hex[:8])
    try:
        mount = {volume.name: {"bind": "/home/agor/.agor", "mode": "rw"}}
        env = {"AGOR_DB_PATH": "~/.agor/agor.db"}
        code, logs = _run_image(client, image, environment=env, volumes=mount)
        assert code == 0, logs
        assert "applied" in logs and "no command given; the database is ready" in logs
        code, logs = _run_image(client, image, "agor-db", "status", "--exit-code", environment=env, volumes=mount)
        assert code == 0 and "0 pending" in logs, logs  # the data outlived the first container
    finally:
        volume.remove(force=True)


@pytest.fixture(scope="module")
def docker_pg() -> Any:
    """postgres:16 with the compose file's environment, on a private network and a loopback port."""
    client = _docker_client()
    _needs_image(client, "postgres:16")
    env = _env_dict(_compose()["services"]["db"]["environment"])
    name = "agor-db-test-" + uuid.uuid4().hex[:8]
    network = client.networks.create(name)
    port = _free_port()
    container = client.containers.run(
        "postgres:16",
        name=name,
        detach=True,
        environment=env,
        network=network.name,
        ports={"5432/tcp": ("127.0.0.1", port)},
    )
    try:
        url = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@127.0.0.1:{port}/{env['POSTGRES_DB']}"
        r = run_cli("wait", "-d", url, "--timeout", "120", "--interval", "0.5", timeout=180)
        assert r.code == 0, r.output
        yield client, network, name, url
    finally:
        container.remove(force=True, v=True)
        network.remove()


def _columns(url: str) -> set[tuple[str, str, str, str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()
    return {tuple(r) for r in rows}


@pytest.mark.slow
def test_docker_postgres16_migrates_to_the_same_schema_as_the_test_server(docker_pg, pg_db):
    _client, _network, _name, url = docker_pg
    r = run_cli("migrate", "-d", url, timeout=180)
    assert r.code == 0, r.output
    r = run_cli("status", "-d", url, "--exit-code")
    assert r.code == 0, r.output
    assert run_cli("migrate", "-d", pg_db).code == 0
    assert _columns(url) == _columns(pg_db) != set()


@pytest.mark.slow
def test_docker_image_entrypoint_migrates_then_runs_the_command(docker_pg, pg_db, request):
    client, network, db_host, url = docker_pg
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE agor_image")
    _client, image = request.getfixturevalue("docker_image")
    env = _env_dict(_compose()["services"]["db"]["environment"])
    inner = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@{db_host}:5432/agor_image"
    container = client.containers.run(image.id, environment={"DATABASE_URL": inner}, network=network.name, detach=True)
    try:
        status = container.wait(timeout=180)
        logs = container.logs().decode()
        container.reload()
        user = container.attrs["Config"]["User"]
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs
    assert "ready after" in logs and "applied" in logs and "no command given" in logs
    assert user == "agor"
    assert run_cli("migrate", "-d", pg_db).code == 0
    image_url = url.rsplit("/", 1)[0] + "/agor_image"
    assert _columns(image_url) == _columns(pg_db) != set()
