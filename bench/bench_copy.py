"""Benchmark `agor-db copy` end to end against pgloader and the raw COPY bounds, in one run.

    python bench/bench_copy.py                            # large rows: /tmp/agor-bench-500000.db (made if missing)
    python bench/bench_copy.py --shape small              # many small rows: /tmp/agor-bench-small-500000.db
    python bench/bench_copy.py --messages 100000 --shape small --only agor,bound,pgloader

Two data shapes (bench/gen_agor_db.py --shape): ``large`` (message JSON of 0.1-5 KB, mean ~1.15 KB, four
of ~1 MB) and ``small`` (every message ~460 bytes of JSON). Each contender copies the same SQLite file
into a fresh database of one pgserver-started PostgreSQL 16, its schema made by sql/postgres before
the clock starts (the same for every contender), and runs as a child process under /usr/bin/time for
wall time, peak RSS and its own (client) CPU:
  * agor-db copy: the real CLI (journal check, scan, convert, COPY, index/FK rebuild, verification,
    commit); ``--agor-migrates``: into an empty database instead, its own migration in the time (as
    every run before 2026-12-03 17:40 was measured: ~0.2-0.4 s more);
  * bare bound (the true raw bound): one transaction that drops the secondary indexes and foreign
    keys, binary COPY (psycopg write_row) of every row straight from apsw, then re-creates the indexes
    and foreign keys; no checks. The issue's reference: the least a loader has to do into this schema
    while its keys stay in place;
  * bound, no keys (``--only keyless``): the same, with the primary keys and unique constraints dropped
    and added back too, as agor-db copy does since 2026-12-03 (the least any loader has to do);
  * raw COPY, indexes in place (the old "raw ceiling"): text COPY + write_row into the schema as it
    is, FK order, one transaction, no checks. Not a ceiling: every row updates every index;
  * pgloader (Debian package): data only into the same schema, with prefetch/batch rows that fit.

Server CPU: the PostgreSQL server's CPU (user + system) from /proc: the postmaster's own and its
reaped children's (cutime/cstime: backends, autovacuum and parallel workers of finished
connections) plus its live children's (checkpointer, WAL writer, ...), read before each contender
and after it, once a CHECKPOINT has written what the contender dirtied (so every contender pays for
its own writes and not for the previous one's; the checkpoint is not in the wall time). The server
runs on this machine, so client and server share its cores: with the load average of the machine
(other work included) next to every figure.
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
SHAPES = ("large", "small")
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


def bare_bound(source: str, url: str, keys: bool = False) -> None:
    """The true bound: drop secondary indexes and FKs, binary COPY of every row, rebuild; one transaction.
    With ``keys``, the primary keys and unique constraints are dropped and added back as well (as
    agor-db copy does since 2026-12-03)."""
    import apsw
    import psycopg
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    class JsonbText(Dumper):  # jsonb's binary input: version byte 1, then the JSON text as it is
        format = Format.BINARY
        oid = 3802

        def dump(self, obj: str) -> bytes:
            return b"\x01" + obj.encode()

    class BoolInt(Dumper):  # SQLite's 0/1
        format = Format.BINARY
        oid = 16

        def dump(self, obj: int) -> bytes:
            return b"\x01" if obj else b"\x00"

    src = apsw.Connection(source, flags=apsw.SQLITE_OPEN_READONLY)
    with psycopg.connect(url) as pg, pg.transaction():
        for dumper in (JsonbText, BoolInt):
            pg.adapters.register_dumper(None, dumper)
        fks = pg.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
        ).fetchall()
        indexes = pg.execute(
            "SELECT ic.relname, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "WHERE ic.relnamespace = current_schema()::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
        ).fetchall()
        for table, name, _ in fks:
            pg.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        unique = pg.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype IN ('p', 'u') AND connamespace = current_schema()::regnamespace "
            "AND conrelid::regclass::text <> 'agor_migrations'"
        ).fetchall() if keys else []
        for table, name, _ in unique:
            pg.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            pg.execute(f'DROP INDEX "{name}"')
        cur = pg.cursor()
        for t in ORDER:
            names = [r[1] for r in src.execute(f'PRAGMA table_info("{t}")')]
            cols = ", ".join(f'"{n}"' for n in names)
            oids = dict(
                pg.execute(
                    "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                    (f'"{t}"',),
                ).fetchall()
            )
            started = time.perf_counter()
            with cur.copy(f'COPY "{t}" ({cols}) FROM STDIN (FORMAT BINARY)') as copy:
                copy.set_types([oids[n] for n in names])
                for row in src.execute(f'SELECT {cols} FROM "{t}"'):
                    copy.write_row(row)
            print(json.dumps({"table": t, "seconds": time.perf_counter() - started}), flush=True)
        started = time.perf_counter()
        for table, name, definition in unique:
            pg.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for _, definition in indexes:
            pg.execute(definition)
        for table, name, definition in fks:
            pg.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        print(json.dumps({"table": "_rebuild", "seconds": time.perf_counter() - started}), flush=True)


class ServerCpu:
    """CPU seconds used by the PostgreSQL server started in ``data`` (see the module docstring)."""

    def __init__(self, data: Path) -> None:
        pidfile = data / "postmaster.pid"
        self.pid = int(pidfile.read_text().split()[0]) if pidfile.exists() else None
        self.tick = os.sysconf("SC_CLK_TCK")

    def _stat(self, pid: int | str) -> list[str] | None:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None

    def read(self) -> float | None:
        if self.pid is None:
            return None
        own = self._stat(self.pid)
        if own is None:
            return None
        ticks = sum(int(x) for x in own[11:15])  # utime, stime, cutime, cstime
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(self.pid):
                f = self._stat(entry.name)
                if f is not None and f[1] == str(self.pid):  # field 4: ppid
                    ticks += int(f[11]) + int(f[12])
        return ticks / self.tick


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
    out = {"code": proc.returncode, "wall": wall, "rss_mb": rss, "cpu_s": cpu, "load": os.getloadavg()[0]}
    return {**out, "stdout": proc.stdout, "stderr": proc.stderr}


def prepare_source(given: Path | None, shape: str, messages: int) -> tuple[Path, dict[str, int]]:
    """The source file (generated on first use) and its row counts."""
    import apsw

    stem = "agor-bench" if shape == "large" else f"agor-bench-{shape}"
    source = given or Path(tempfile.gettempdir()) / f"{stem}-{messages}.db"
    if not source.exists():
        print(f"generating {source} ({messages} messages, shape {shape})...", flush=True)
        gen = [sys.executable, str(HERE / "gen_agor_db.py"), str(source)]
        subprocess.run([*gen, "--messages", str(messages), "--shape", shape], check=True)
    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    rows = {t: src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in ORDER}
    json_bytes = src.execute("SELECT sum(length(CAST(data AS BLOB))) FROM messages").fetchone()[0] or 0
    src.close()
    print(
        f"source {source}: {source.stat().st_size / 1e6:.0f} MB, {sum(rows.values())} rows "
        f"({rows['messages']} messages, {json_bytes / 1e6:.0f} MB of message JSON)",
        flush=True,
    )
    return source, rows


class Bench:
    """The contenders, each copying ``source`` into a fresh database of the server at ``admin``."""

    def __init__(self, source: Path, rows: dict[str, int], data: Path, admin: str) -> None:
        self.source, self.rows, self.data, self.admin = source, rows, data, admin
        self.server_cpu = ServerCpu(data)
        self.agor_migrates = False

    def run(self, name: str, cmd: list[str], url: str) -> dict[str, Any]:
        """One contender, with the server CPU it caused (see the module docstring)."""
        import psycopg

        before = self.server_cpu.read()
        r = timed(cmd)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        time.sleep(0.5)  # let the postmaster reap the finished backends (their CPU moves to cutime)
        after = self.server_cpu.read()
        r["server_cpu_s"] = after - before if after is not None and before is not None else None
        print(f"{name}: wall {r['wall']:.1f} s, load {r['load']:.1f}", flush=True)
        return r

    def fresh(self, name: str, migrate: bool = False) -> str:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        url = self.admin.replace("/postgres?", f"/{name}?")
        if migrate:
            sys.path.insert(0, str(HERE.parent))
            from agor_db.core import migrate as core
            from agor_db.core.source import bundled_sql_root
            from agor_db.core.urls import parse_url

            core.migrate(parse_url(url), bundled_sql_root(), core.RunOptions())
        return url

    def agor(self) -> dict[str, Any]:
        url = self.fresh("bench_agor", migrate=not self.agor_migrates)
        cmd = [sys.executable, "-m", "agor_db", "copy", "--from", str(self.source), "--to", url, "--json"]
        r = self.run("agor-db copy", cmd, url)
        if r["code"] != 0:
            print(r["stdout"][-3000:], r["stderr"][-3000:])
            raise SystemExit("agor-db copy failed")
        doc = json.loads(r["stdout"])
        r["phases"] = doc["phases"]
        r["tables"] = {t["name"]: t["seconds"] for t in doc["tables"]}
        return r

    def child(self, name: str, flag: str) -> dict[str, Any]:
        url = self.fresh("bench_child", migrate=True)
        r = self.run(name, [sys.executable, str(Path(__file__).resolve()), flag, str(self.source), url], url)
        if r["code"] != 0:
            raise SystemExit(f"{name} failed: " + r["stderr"][-2000:])
        r["tables"] = {d["table"]: d["seconds"] for d in map(json.loads, r["stdout"].splitlines())}
        return r

    def pgloader(self) -> dict[str, Any]:
        import psycopg

        url = self.fresh("bench_pgloader", migrate=True)
        socket_dir = re.search(r"host=([^&]+)", self.admin)
        target = f"postgresql://postgres@unix:{socket_dir.group(1) if socket_dir else '/tmp'}:5432/bench_pgloader"
        load = self.data.parent / f"agorbench-{os.getpid()}.load"
        load.write_text(
            f"LOAD DATABASE\n  FROM sqlite://{self.source}\n  INTO {target}\n"
            "  WITH data only, disable triggers, create no tables, create no indexes, reset no sequences,\n"
            f"       prefetch rows = {PGLOADER_ROWS}, batch rows = {PGLOADER_ROWS},\n"
            "       workers = 2, concurrency = 1\n"
            "  EXCLUDING TABLE NAMES LIKE 'agor_migrations', 'sqlite_sequence';\n"
        )
        r = self.run("pgloader", ["pgloader", str(load)], url)
        load.unlink()
        with psycopg.connect(url) as conn:
            r["loaded"] = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        m = re.search(r"^\s*messages\s+(\d+)\s+(\d+)\s+.*?([\d.]+)s\s*$", r["stdout"] + r["stderr"], re.M)
        r["tables"] = {"messages": float(m.group(3))} if m else {}
        if r["code"] != 0 or r["loaded"] != self.rows["messages"]:
            print("pgloader did not load everything:", (r["stdout"] + r["stderr"])[-2000:], flush=True)
        return r


def cpu_total(r: dict[str, Any]) -> float:
    return (r["cpu_s"] or 0.0) + (r["server_cpu_s"] or 0.0)


def report(shape: str, source: Path, rows: dict[str, int], runs: dict[str, list[dict[str, Any]]]) -> None:
    """Per contender its fastest run (wall, CPU, load during that run) and every run's wall time."""
    total_rows = sum(rows.values())
    size = source.stat().st_size
    results = {name: min(rs, key=lambda r: r["wall"]) for name, rs in runs.items() if rs}
    print(f"\nshape {shape}, {size / 1e6:.0f} MB, {total_rows} rows; fastest of {max(map(len, runs.values()))} run(s)")
    print(
        f"{'contender':<14} {'wall s':>7} {'rows/s':>8} {'MB/s':>6} {'RSS MB':>7} {'messages s':>10} "
        f"{'client CPU s':>12} {'server CPU s':>12} {'CPU us/row':>10} {'load':>5}  all runs (wall s)"
    )
    for name, r in results.items():
        every = " ".join(f"{x['wall']:.1f}" for x in runs[name])
        print(
            f"{name:<14} {r['wall']:>7.1f} {total_rows / r['wall']:>8,.0f} {size / 1e6 / r['wall']:>6.1f} "
            f"{(r['rss_mb'] or 0):>7.0f} {r.get('tables', {}).get('messages', 0):>10.1f} {(r['cpu_s'] or 0):>12.1f} "
            f"{(r['server_cpu_s'] or 0):>12.1f} {1e6 * cpu_total(r) / total_rows:>10.0f} {r['load']:>5.1f}  {every}"
        )
    agor = results.get("agor-db copy")
    if agor:
        print("\nagor-db copy phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in agor["phases"].items()))
        for other, target in (("bare bound", 0.6), ("bound, no keys", None), ("pgloader", 1.2), ("raw, indexed", None)):
            if other in results:
                ratio = results[other]["wall"] / agor["wall"]
                goal = f" (target >= {target})" if target else ""
                cpu = cpu_total(results[other]) / cpu_total(agor)
                print(f"agor-db throughput / {other}: {ratio:.2f}x{goal}; its CPU (client + server) / ours: {cpu:.2f}x")
    every = {
        k: [{kk: vv for kk, vv in r.items() if kk not in ("stdout", "stderr")} for r in v] for k, v in runs.items()
    }
    print(json.dumps({"shape": shape, "source_bytes": size, "rows": rows, "runs": every}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--shape", choices=SHAPES, default="large", help="data shape to generate (default large)")
    parser.add_argument("--source", type=Path, help="an existing generated database (default: generate one)")
    parser.add_argument(
        "--only", default="agor,bound,raw,pgloader", help="comma list of agor, bound, keyless, raw, pgloader"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per contender, order reversed every other round")
    parser.add_argument(
        "--agor-migrates", action="store_true", help="agor-db copy into an empty database: its migration timed too"
    )
    parser.add_argument("--raw-child", nargs=2, metavar=("SOURCE", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--bound-child", nargs=2, metavar=("SOURCE", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--keyless-bound-child", nargs=2, metavar=("SOURCE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_child:
        raw_copy(*args.raw_child)
        return 0
    if args.bound_child:
        bare_bound(*args.bound_child)
        return 0
    if args.keyless_bound_child:
        bare_bound(*args.keyless_bound_child, keys=True)
        return 0

    source, rows = prepare_source(args.source, args.shape, args.messages)
    import pgserver

    data = Path(tempfile.mkdtemp(prefix="agorbench"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    bench = Bench(source, rows, data, server.get_uri())
    bench.agor_migrates = args.agor_migrates
    contenders = {
        "agor": ("agor-db copy", bench.agor),
        "bound": ("bare bound", lambda: bench.child("bare bound", "--bound-child")),
        "keyless": ("bound, no keys", lambda: bench.child("bound, no keys", "--keyless-bound-child")),
        "raw": ("raw, indexed", lambda: bench.child("raw, indexed", "--raw-child")),
        "pgloader": ("pgloader", bench.pgloader),
    }
    wanted = [w for w in args.only.split(",") if w in contenders]
    if "pgloader" in wanted and shutil.which("pgloader") is None:
        print("pgloader is not installed (apt-get install -y pgloader); skipped", flush=True)
        wanted.remove("pgloader")
    runs: dict[str, list[dict[str, Any]]] = {contenders[w][0]: [] for w in wanted}
    try:
        for round_ in range(args.rounds):  # alternate the order so that no contender always goes first
            for w in wanted if round_ % 2 == 0 else wanted[::-1]:
                name, fn = contenders[w]
                runs[name].append(fn())
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    report(args.shape, source, rows, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
