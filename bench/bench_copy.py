"""Benchmark `agor-db copy` end to end against pgloader and the raw COPY ceiling, in one run.

    python bench/bench_copy.py                       # generates /tmp/agor-bench-500000.db if missing
    python bench/bench_copy.py --messages 50000      # a quicker run

Each contender copies the same SQLite file into a fresh database (schema from sql/postgres) of one
pgserver-started PostgreSQL 16, and runs as a child process under /usr/bin/time for wall time and
peak RSS:
  * agor-db copy: the real CLI (migrate, scan, convert, COPY, index/FK rebuild, verification, commit);
  * raw ceiling: bare psycopg `COPY ... FROM STDIN` + write_row of the same rows into the same schema,
    FK order, one transaction, no checks;
  * pgloader (Debian package): data only into the same schema, with prefetch/batch rows that fit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ORDER = (
    "users", "boards", "repos", "worktrees", "sessions", "tasks", "messages",
    "board_objects", "board_comments", "mcp_servers", "session_mcp_servers",
)  # fmt: skip
PGLOADER_ROWS = 1000  # prefetch rows = batch rows: pgloader's defaults (100k) exhaust its heap on this file


def raw_copy(source: str, url: str) -> None:
    """The ceiling: stream every row straight from apsw into COPY, nothing else."""
    import apsw
    import psycopg

    src = apsw.Connection(source, flags=apsw.SQLITE_OPEN_READONLY)
    with psycopg.connect(url) as pg, pg.transaction():
        cur = pg.cursor()
        for t in ORDER:
            cols = ", ".join(f'"{r[1]}"' for r in src.execute(f'PRAGMA table_info("{t}")'))
            started = time.perf_counter()
            with cur.copy(f'COPY "{t}" ({cols}) FROM STDIN') as copy:
                for row in src.execute(f'SELECT {cols} FROM "{t}"'):
                    copy.write_row(row)
            print(json.dumps({"table": t, "seconds": time.perf_counter() - started}), flush=True)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child under /usr/bin/time; wall seconds, peak RSS (MB), output."""
    full = [*(["/usr/bin/time", "-f", "TIME %e %M %U %S"] if Path("/usr/bin/time").exists() else []), *cmd]
    started = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    rss = cpu = None
    m = re.search(r"TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)", proc.stderr)
    if m:
        rss = int(m.group(2)) / 1024
        cpu = float(m.group(3)) + float(m.group(4))  # the child's own CPU (user + system), not the server's
    out = {"code": proc.returncode, "wall": wall, "rss_mb": rss, "cpu_s": cpu}
    return {**out, "stdout": proc.stdout, "stderr": proc.stderr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--source", type=Path, help="an existing generated database (default: generate one)")
    parser.add_argument("--only", default="agor,raw,pgloader", help="comma list of agor, raw, pgloader")
    parser.add_argument("--raw-child", nargs=2, metavar=("SOURCE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_child:
        raw_copy(*args.raw_child)
        return 0

    import apsw
    import pgserver
    import psycopg

    sys.path.insert(0, str(HERE.parent))
    from agor_db import core
    from agor_db.source import bundled_sql_root
    from agor_db.urls import parse_url

    source = args.source or Path(tempfile.gettempdir()) / f"agor-bench-{args.messages}.db"
    if not source.exists():
        print(f"generating {source} ({args.messages} messages)...", flush=True)
        subprocess.run(
            [sys.executable, str(HERE / "gen_agor_db.py"), str(source), "--messages", str(args.messages)], check=True
        )
    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    rows = {t: src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in ORDER}
    json_bytes = src.execute("SELECT sum(length(CAST(data AS BLOB))) FROM messages").fetchone()[0] or 0
    src.close()
    total_rows = sum(rows.values())
    size = source.stat().st_size
    print(
        f"source {source}: {size / 1e6:.0f} MB, {total_rows} rows ({rows['messages']} messages, "
        f"{json_bytes / 1e6:.0f} MB of message JSON)",
        flush=True,
    )

    data = Path(tempfile.mkdtemp(prefix="agorbench"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    admin = server.get_uri()
    results: dict[str, dict[str, Any]] = {}

    def fresh(name: str) -> str:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return admin.replace("/postgres?", f"/{name}?")

    def migrated(name: str) -> str:
        url = fresh(name)
        core.migrate(parse_url(url), bundled_sql_root(), core.RunOptions())
        return url

    try:
        wanted = args.only.split(",")
        if "agor" in wanted:
            url = fresh("bench_agor")
            r = timed([sys.executable, "-m", "agor_db", "copy", "--from", str(source), "--to", url, "--json"])
            if r["code"] != 0:
                print(r["stdout"][-3000:], r["stderr"][-3000:])
                raise SystemExit("agor-db copy failed")
            doc = json.loads(r["stdout"])
            r["phases"] = doc["phases"]
            r["tables"] = {t["name"]: t["seconds"] for t in doc["tables"]}
            results["agor-db copy"] = r
        if "raw" in wanted:
            url = migrated("bench_raw")
            r = timed([sys.executable, str(Path(__file__).resolve()), "--raw-child", str(source), url])
            if r["code"] != 0:
                raise SystemExit("raw copy failed: " + r["stderr"][-2000:])
            r["tables"] = {d["table"]: d["seconds"] for d in map(json.loads, r["stdout"].splitlines())}
            results["raw ceiling"] = r
        if "pgloader" in wanted:
            if shutil.which("pgloader") is None:
                print("pgloader is not installed (apt-get install -y pgloader); skipped", flush=True)
            else:
                url = migrated("bench_pgloader")
                socket_dir = re.search(r"host=([^&]+)", admin)
                target = (
                    f"postgresql://postgres@unix:{socket_dir.group(1) if socket_dir else '/tmp'}:5432/bench_pgloader"
                )
                load = data.parent / f"agorbench-{os.getpid()}.load"
                load.write_text(
                    f"LOAD DATABASE\n  FROM sqlite://{source}\n  INTO {target}\n"
                    "  WITH data only, disable triggers, create no tables, create no indexes, reset no sequences,\n"
                    f"       prefetch rows = {PGLOADER_ROWS}, batch rows = {PGLOADER_ROWS},\n"
                    "       workers = 2, concurrency = 1\n"
                    "  EXCLUDING TABLE NAMES LIKE 'agor_migrations', 'sqlite_sequence';\n"
                )
                r = timed(["pgloader", str(load)])
                load.unlink()
                with psycopg.connect(url) as conn:
                    r["loaded"] = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
                m = re.search(r"^\s*messages\s+(\d+)\s+(\d+)\s+.*?([\d.]+)s\s*$", r["stdout"] + r["stderr"], re.M)
                r["tables"] = {"messages": float(m.group(3))} if m else {}
                if r["code"] != 0 or r["loaded"] != rows["messages"]:
                    print("pgloader did not load everything:", (r["stdout"] + r["stderr"])[-2000:], flush=True)
                results["pgloader"] = r
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)

    print()
    print(
        f"{'contender':<14} {'wall s':>8} {'rows/s':>10} {'MB/s':>8} {'peak RSS MB':>12} {'messages s':>11} "
        f"{'client CPU s':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<14} {r['wall']:>8.1f} {total_rows / r['wall']:>10,.0f} {size / 1e6 / r['wall']:>8.1f} "
            f"{(r['rss_mb'] or 0):>12.0f} {r.get('tables', {}).get('messages', 0):>11.1f} {(r['cpu_s'] or 0):>13.1f}"
        )
    agor = results.get("agor-db copy")
    if agor:
        print("\nagor-db copy phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in agor["phases"].items()))
        for other, target in (("raw ceiling", 0.6), ("pgloader", 2.0)):
            if other in results:
                ratio = results[other]["wall"] / agor["wall"]
                print(f"throughput vs {other}: {ratio:.2f}x (target >= {target})")
    summary = {k: {kk: vv for kk, vv in v.items() if kk not in ("stdout", "stderr")} for k, v in results.items()}
    print(json.dumps({"source_bytes": size, "rows": rows, "results": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
