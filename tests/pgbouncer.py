"""A real PgBouncer (the Debian package) in front of the suite's PostgreSQL, for pooler tests.

pgserver's socket directory is 0700 and owned by its own system user when the suite runs as root,
so the bouncer then runs as that user (setpriv), with its config, auth file and log in a temp dir it owns.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pgbouncer(host: str, port: str | None, role: str, password: str, mode: str, pool_size: int = 4) -> Iterator[str]:
    """Run PgBouncer in ``mode`` (transaction/session) on 127.0.0.1; yields a URL template with {db}."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install -y pgbouncer); the pooler tests need a real one")
    owner = os.stat(host).st_uid if host.startswith("/") else os.geteuid()
    work = Path(tempfile.mkdtemp(prefix="agorbouncer"))
    listen = _free_port()
    server_port = port or "5432"
    (work / "userlist.txt").write_text(f'"{role}" "{password}"\n')
    (work / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={server_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {work / 'userlist.txt'}\n"
        f"pool_mode = {mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
        "max_db_connections = 0\nserver_login_retry = 1\n"
        f"logfile = {work / 'pgbouncer.log'}\npidfile = {work / 'pgbouncer.pid'}\n"
    )
    cmd = [PGBOUNCER, str(work / "pgbouncer.ini")]
    if os.geteuid() == 0 and owner != 0:
        user = pwd.getpwuid(owner)
        for path in [work, *work.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
        cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (work / "pgbouncer.log").read_text() if (work / "pgbouncer.log").exists() else ""
                    why = proc.stderr.read() if proc.stderr else ""
                    raise RuntimeError(f"pgbouncer did not start: {why}{log}") from None
                time.sleep(0.05)
        yield f"postgresql://{role}:{quote(password, safe='')}@127.0.0.1:{listen}/{{db}}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
