"""`agor-db migrate` with nothing to do on SQLite stays light: no PostgreSQL driver, no SQL parser.

The container-start case runs this on every boot, so what it imports is part of the contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import write_migrations

HEAVY = ("psycopg", "yoyo", "sqlparse")


def _imported(args: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agor_db", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    return modules, proc


def test_noop_migrate_on_sqlite_imports_no_heavy_module(tmp_path: Path, sql_root: Path) -> None:
    write_migrations(
        sql_root,
        "sqlite",
        {
            "0001_a.sql": "CREATE TABLE a (id INTEGER);\n",
            "0002_b.sql": "-- depends: 0001_a\nCREATE TABLE b (id INTEGER);\n",
        },
    )
    db = tmp_path / "up-to-date.db"
    args = ["migrate", "-d", f"sqlite://{db}", "--sql-dir", str(sql_root)]
    first = subprocess.run([sys.executable, "-m", "agor_db", *args], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr

    modules, proc = _imported(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to migrate" in proc.stdout
    assert "agor_db.drivers.sqlite" in modules, "the import log was not captured"
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"a no-op SQLite migrate imported {heavy}"


def test_applying_on_sqlite_still_needs_no_postgres_driver(tmp_path: Path, sql_root: Path) -> None:
    """Nor yoyo: agor-db reads the directives itself (yoyo's import loads every backend it has)."""
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "-- transactional: true\nCREATE TABLE a (id INTEGER);\n"})
    modules, proc = _imported(["migrate", "-d", str(tmp_path / "fresh.db"), "--sql-dir", str(sql_root)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "agor_db.core.sqltext" in modules, "the import log was not captured"
    assert not sorted(m for m in modules if m.split(".")[0] in ("psycopg", "yoyo"))


def test_full_cli_commands_import_neither_pydantic_nor_the_copier(tmp_path: Path, sql_root: Path) -> None:
    """Commands that take the full CLI (status, a migrate with work) parse their options without pydantic
    (typer 0.29 imports it for every option: +0.25 s per command, hence typer<0.29) and without loading
    the copier, which only `agor-db copy` needs."""
    write_migrations(sql_root, "sqlite", {"0001_a.sql": "CREATE TABLE a (id INTEGER);\n"})
    db = tmp_path / "fresh.db"
    for command in ("migrate", "status"):
        args = [command, "-d", str(db), "--sql-dir", str(sql_root)]
        modules, proc = _imported(args, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "typer" in modules, "the full CLI did not run: the import log proves nothing"
        loaded = sorted(m for m in modules if m.split(".")[0] == "pydantic" or m.startswith("agor_db.copy"))
        assert not loaded, f"`agor-db {args[0]}` imported {loaded}"
