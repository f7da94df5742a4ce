"""The built wheel carries the SQL folders: an installed agor-db works from any directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.slow
def test_wheel_installs_and_migrates_from_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("agor_db-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "agor_db/sql/sqlite/0000_pretty_mac_gargan.sql" in names
    assert "agor_db/sql/postgres/0010_baseline.sql" in names
    # check on the installed folders compares the snapshots and runs squawk with its configuration
    assert {"agor_db/sql/schema/postgres.sql", "agor_db/sql/schema/sqlite.sql", "agor_db/sql/squawk.toml"} <= set(names)
    # every module of every part (core/, drivers/, schema/, copy/, ops/, cli/): a package left out of
    # pyproject's list would be missing here
    runner = REPO / "runner"
    modules = {"agor_db/" + f.relative_to(runner).as_posix() for f in runner.rglob("*.py")}
    assert modules <= set(names), sorted(modules - set(names))

    # A fresh virtualenv; the dependencies come from the test environment's site-packages (no network),
    # agor-db itself only from the wheel. The venv gets no pip of its own (ensurepip costs ~7 s): the test
    # environment's pip installs into it (--python).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    install = subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    py = venv / "bin" / "python"
    agor_db = venv / "bin" / "agor-db"
    assert agor_db.exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGOR_") and k != "DATABASE_URL"}
    env["HOME"] = str(tmp_path / "home")
    where = subprocess.run(
        [str(py), "-c", "import agor_db.core.source as s; print(s.__file__); print(s.bundled_sql_root())"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module_file, sql_root = where.stdout.split()
    assert module_file.startswith(str(site)) and sql_root.startswith(str(site))

    migrate = subprocess.run(
        [str(agor_db), "migrate", "-d", "sqlite:agor.db"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert migrate.returncode == 0, migrate.stderr
    status = subprocess.run(
        [str(agor_db), "status", "--json", "-d", "sqlite:agor.db"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    doc = json.loads(status.stdout)
    assert [a["version"] for a in doc["applied"]] == [0, 1, 2, 3, 4, 5, 8, 9, 10]
    assert doc["pending"] == []
    assert (elsewhere / "agor.db").exists()
