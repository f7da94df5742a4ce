#!/usr/bin/env python
"""Two agor-db source trees A/B on PostgreSQL: 500 small migrations on a fresh database, then no-op runs.

For before/after comparisons on a busy machine, where only same-run figures mean anything: the two
trees run alternately (which one goes first alternates too), as whole processes, against one pgserver.

    git archive BASE runner | tar -x -C /tmp/a && mkdir -p /tmp/a/pkg && ln -s /tmp/a/runner /tmp/a/pkg/agor_db
    (the same for /tmp/b), then: python bench/ab_migrate_pg.py /tmp/a/pkg /tmp/b/pkg --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pgserver
import psycopg
from psycopg.conninfo import conninfo_to_dict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="PYTHONPATH entry holding the 'before' agor_db package")
    parser.add_argument("after", help="PYTHONPATH entry holding the 'after' agor_db package")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trees = {"before": args.before, "after": args.after}
    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="agorab")), cleanup_mode="delete")
    admin = server.get_uri()
    host = conninfo_to_dict(admin)["host"]
    root = Path(tempfile.mkdtemp(prefix="agorabsql"))
    (root / "postgres").mkdir()
    (root / "sqlite").mkdir()
    for v in range(1, 501):
        (root / "postgres" / f"{v:04d}_m{v}.sql").write_text(
            f"CREATE TABLE t{v:04d} (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n"
            f"INSERT INTO t{v:04d} (id, v) VALUES (1, 'x');\n"
        )

    def run(tree: str, db: str) -> float:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL"))}
        env["PYTHONPATH"] = trees[tree]
        url = f"postgresql://postgres@/{db}?host={host}"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "agor_db", "migrate", "-d", url, "--sql-dir", str(root)],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode:
            raise SystemExit(proc.stderr)
        return time.perf_counter() - started

    many: dict[str, list[float]] = {t: [] for t in trees}
    noop: dict[str, list[float]] = {t: [] for t in trees}
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            for i in range(args.rounds):
                dbs: dict[str, str] = {}
                for tree in list(trees)[:: 1 if i % 2 == 0 else -1]:
                    dbs[tree] = "ab" + uuid.uuid4().hex[:8]
                    conn.execute(f'CREATE DATABASE "{dbs[tree]}"')
                    many[tree].append(run(tree, dbs[tree]))
                for _ in range(3):
                    for tree in trees:
                        noop[tree].append(run(tree, dbs[tree]))
    finally:
        server.cleanup()
    for tree in trees:
        print(
            f"{tree}: 500 migrations {statistics.median(many[tree]) * 1000:.0f} ms (min {min(many[tree]) * 1000:.0f}); "
            f"no-op {statistics.median(noop[tree]) * 1000:.0f} ms (min {min(noop[tree]) * 1000:.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
