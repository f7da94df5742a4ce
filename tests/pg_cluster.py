"""A dedicated PostgreSQL 16 primary and a hot standby made from it with ``pg_basebackup -R``.

For tests that restart a server or need a standby, so the session-wide server stays untouched. Built
from pgserver's bundled binaries in a temp dir; when the suite runs as root, the servers run as the
user ``pgserver`` (PostgreSQL refuses to run as root). Only unix sockets, in that private directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PRIMARY_PORT, STANDBY_PORT = 54031, 54032


def _bin_dir() -> Path:
    try:
        import pgserver
    except ImportError:
        pytest.skip("pgserver is not installed: no bundled PostgreSQL binaries to build a primary and a standby")
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    import pwd

    try:
        user = pwd.getpwnam("pgserver")
    except KeyError:
        pytest.skip("running as root without a 'pgserver' user to run PostgreSQL as")
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


@dataclass
class Cluster:
    root: Path
    bin: Path
    prefix: list[str]

    def run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60)

    def url(self, port: int, dbname: str = "postgres", user: str = "postgres", **extra: str) -> str:
        query = "".join(f"&{k}={v}" for k, v in extra.items())
        return f"postgresql://{user}@/{dbname}?host={self.root}&port={port}{query}"

    def pg_ctl(self, name: str, *args: str) -> None:
        self.run("pg_ctl", "-D", str(self.root / name), "-l", str(self.root / f"{name}.log"), "-w", *args)

    def start(self, name: str, port: int) -> None:
        self.pg_ctl(name, "-o", f"-k {self.root} -c listen_addresses='' -p {port} -c fsync=off", "start")


def start_primary(port: int, prefix: str = "agorcl") -> Cluster:
    """A fresh server of its own in a private temp dir ("primary"), listening on ``port`` there."""
    c = Cluster(Path(tempfile.mkdtemp(prefix=prefix)), _bin_dir(), _as_server_user())
    if c.prefix:
        shutil.chown(c.root, "pgserver", "pgserver")
    c.root.chmod(0o700)
    c.run("initdb", "-D", str(c.root / "primary"), "-U", "postgres", "-A", "trust", "--no-sync", "-N")
    c.start("primary", port)
    return c


def stop_all(c: Cluster, *names: str) -> None:
    for name in names:
        subprocess.run(
            [*c.prefix, str(c.bin / "pg_ctl"), "-D", str(c.root / name), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
    shutil.rmtree(c.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = start_primary(PRIMARY_PORT)
    c.run(
        "pg_basebackup", "-h", str(c.root), "-p", str(PRIMARY_PORT), "-U", "postgres",
        "-D", str(c.root / "standby"), "-R", "-X", "stream",
    )  # fmt: skip
    c.start("standby", STANDBY_PORT)
    yield c
    stop_all(c, "standby", "primary")
