"""An interrupt while COMMIT is on its way: the copy says what really happened to the target.

COMMIT can take long (a slow disk; a synchronous standby that does not answer, as in an HA setup). Here a
dedicated server waits for a standby that never comes (``synchronous_standby_names``), so the copy's
COMMIT waits until the copy is interrupted; PostgreSQL then keeps the commit (it is already durable
locally) and the copy must not claim it rolled back.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_cluster import Cluster, start_primary, stop_all
from test_copy_baddata import base_source, message

PORT = 54041


@pytest.fixture(scope="module")
def primary() -> Iterator[Cluster]:
    c = start_primary(PORT, "agorsync")
    yield c
    stop_all(c, "primary")


def _wait_for_syncrep(admin: str, timeout: float = 60) -> int:
    """The pid of the backend waiting for the standby (the copy's COMMIT)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(admin, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'").fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("the copy's COMMIT never waited for the standby")


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_an_interrupt_during_commit_reports_the_commit_that_went_through(
    primary: Cluster, tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    admin = primary.url(PORT)
    dbname = f"sync_{sig.name.lower()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    target = primary.url(PORT, dbname)
    source = tmp_path / "s.db"
    c = base_source(source)
    message(c, "m1")
    c.close()
    cli = [sys.executable, "-m", "agor_db"]
    assert subprocess.run([*cli, "migrate", "-d", target], capture_output=True, timeout=60).returncode == 0
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")  # every write's COMMIT waits
        conn.execute("SELECT pg_reload_conf()")
    try:
        copy = subprocess.Popen(
            [*cli, "copy", "--from", str(source), "--to", target], stderr=subprocess.PIPE, text=True
        )
        _wait_for_syncrep(admin)
        copy.send_signal(sig)
        _, err = copy.communicate(timeout=60)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")
    assert copy.returncode == code, err
    assert word in err and "after the commit had gone through: the target holds the copy" in err, err
    assert "rolled back" not in err and "Traceback" not in err
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (2,)  # base_source's and m1
    again = subprocess.run([*cli, "copy", "--from", str(source), "--to", target], capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
