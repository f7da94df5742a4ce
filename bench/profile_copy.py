"""Where `agor-db copy` spends its CPU per row, part by part, on both sides (for issue 15).

    python bench/profile_copy.py /tmp/agor-bench-small-200000.db          # on a pgserver of its own
    python bench/profile_copy.py SOURCE --pyinstrument /tmp/copy.html     # also the main process profiled

One real copy runs first, in-process (its wall, phases, and the CPU of the main process and of its
worker processes); the range tasks it handed its workers are kept. Then every table the workers read
is taken apart on the same rows, with the copier's own building blocks:

client (a worker's per-row path; ``time.thread_time``):
  step        SQLite step + apsw's conversion to Python objects (plain ``SELECT rowid, cols``)
  selects     the worker query's column expressions (long values replaced by their length)
  tests       the query's flag: the inline SQLite tests (NUL bytes, types, ranges, json_valid, orphans)
  encode      binary COPY encoding alone (pgbinary.row_writer: psycopg's row writer, as a worker uses it)
  hash        the checksum of those bytes (pgbinary.hashing_encoder minus encode and the JSON check)
  json check  the JSON pre-check (json.check_sent: numbers and escapes jsonb may refuse)
  range       a whole range as a worker reads it (parallel._range): what the parts should add up to

server (CPU of the backend, ``/proc/<pid>/stat`` of ``pg_backend_pid()``: the server must be local),
for a table with JSON, chunk by chunk as load.TableLoader does it:
  stage COPY  the binary COPY into the staging table (JSON as text)
  checksum    the server's checksum of the staged rows (verify.server_digest_sql)
  INSERT      ``INSERT INTO table SELECT ..., col::jsonb FROM stage`` (jsonb parse, heap, primary key)
  direct COPY for comparison: the same rows COPYed straight into the table as jsonb (the bare bound's way)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
TICK = os.sysconf("SC_CLK_TCK")
CLIENT = ("step", "selects", "tests", "encode", "hash", "json check")
SERVER = ("stage COPY", "checksum", "INSERT")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(fn: Callable[[], Any], repeat: int = 2) -> float:
    """The least main-thread CPU of ``repeat`` runs of ``fn`` (the cyclic collector off, as in a worker)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            t0 = time.thread_time()
            fn()
            best = min(best, time.thread_time() - t0)
        finally:
            gc.enable()
    return best


def drain(rows: Iterator[Any]) -> None:
    for _ in rows:
        pass


def real_copy(source: Path, url: str, profile: Path | None) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """One copy in-process: its figures, and the range tasks its workers were given, per table."""
    from agor_db.copy import parallel
    from agor_db.copy.run import CopyOptions, Progress, copy
    from agor_db.core.source import bundled_sql_root
    from agor_db.core.urls import parse_url

    tasks: dict[str, list[Any]] = {}
    run = parallel.Workers.run

    def keep(self: Any, table: str, given: Any) -> Any:
        tasks[table] = list(given)
        return run(self, table, tasks[table])

    parallel.Workers.run = keep  # type: ignore[method-assign]
    profiler: Any = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    try:
        result = copy(parse_url(str(source)), parse_url(url), bundled_sql_root(), CopyOptions(), Progress())
    finally:
        parallel.Workers.run = run  # type: ignore[method-assign]
    wall = time.perf_counter() - w0
    own2, workers2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    if profiler is not None:
        profiler.stop()
        assert profile is not None
        profile.write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, show_all=False)[:8000])
    figures = {
        "wall": wall,
        "main_cpu": own2.ru_utime + own2.ru_stime - own.ru_utime - own.ru_stime,
        "workers_cpu": workers2.ru_utime + workers2.ru_stime - workers.ru_utime - workers.ru_stime,
        "phases": result.phases,
        "worker_rows": sum(t.worker_rows for t in result.tables),
    }
    return figures, tasks


def client_parts(src: Any, tasks: list[Any]) -> tuple[int, dict[str, float]]:
    """A worker's per-row CPU by part over the table's ranges: (rows, seconds per part)."""
    from agor_db.copy import parallel
    from agor_db.copy.json import check_sent
    from agor_db.copy.longtext import LONG
    from agor_db.copy.pgbinary import hashing_encoder, row_writer

    query = tasks[0].query
    head, _, tail = query.rpartition(" FROM ")  # the tests' subqueries have FROMs of their own
    flag_at = head.index(", (")  # the flag, the last column, is the first to open with "("
    names = [f'"{c.name}"' for c in tasks[0].converters]
    plain = f"SELECT rowid, {', '.join(names)}, 0 FROM {tail}"
    selects = f"{head[:flag_at]}, 0 FROM {tail}"

    def each(sql: str) -> Callable[[], None]:
        return lambda: [drain(src.execute(sql, (t.lo, t.hi))) for t in tasks]  # type: ignore[func-returns-value]

    rows = [r[1:-1] for t in tasks for r in src.execute(plain, (t.lo, t.hi))]
    oids, families = tasks[0].oids, tuple(c.family for c in tasks[0].converters)
    cpu = {"step": thread_cpu(each(plain))}
    cpu["selects"] = thread_cpu(each(selects)) - cpu["step"]
    cpu["tests"] = thread_cpu(each(query)) - cpu["step"] - cpu["selects"]
    if oids:
        encode, unchecked = row_writer(oids), hashing_encoder(oids, families, lambda text, raw: None, LONG)
        cpu["encode"] = thread_cpu(lambda: [encode(r, bytearray()) for r in rows])  # type: ignore[func-returns-value]
        cpu["hash"] = thread_cpu(lambda: [unchecked(r, bytearray()) for r in rows]) - cpu["encode"]
        texts = [(r[i], r[i].encode()) for r in rows for i, f in enumerate(families) if f == "json" and r[i]]
        cpu["json check"] = thread_cpu(lambda: [check_sent(t, b) for t, b in texts])  # type: ignore[func-returns-value]
    tables: dict[str, Any] = {}
    cpu["range"] = thread_cpu(lambda: [parallel._range(src, t, tables) for t in tasks])
    return len(rows), cpu


def server_parts(src: Any, url: str, table: str, tasks: list[Any]) -> dict[str, float]:
    """The backend's CPU for the table's rows, chunk by chunk as TableLoader loads them, and COPYed directly."""
    import psycopg

    from agor_db.copy import parallel
    from agor_db.copy.load import STAGE, TableLoader
    from agor_db.copy.pgbinary import SIGNATURE, TRAILER
    from agor_db.copy.target import quote
    from agor_db.copy.verify import server_digest_sql

    converters = tasks[0].converters
    cpu = dict.fromkeys((*SERVER, "direct COPY"), 0.0)
    with psycopg.connect(url) as pg:
        pid = pg.info.backend_pid
        columns = tuple(c.column for c in converters)  # the target's columns the copy fills
        names = ", ".join(quote(c.name) for c in columns)
        _bare(pg, table)
        loader = TableLoader(pg, table, columns, converters)
        loader._create_stage()
        stage_names = ", ".join(quote(c.name) for c in loader.staged_columns)
        exprs = ", ".join(f"{quote(c.name)}::{c.type}" if c.type == "jsonb" else quote(c.name) for c in columns)
        tables: dict[str, Any] = {}
        for task in tasks:
            done = parallel._range(src, task, tables)
            if done.data is None:
                continue
            t0 = proc_cpu(pid)
            with pg.cursor().copy(f"COPY {quote(STAGE)} ({stage_names}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(SIGNATURE + bytes(done.data) + TRAILER)
            t1 = proc_cpu(pid)
            pg.execute(server_digest_sql(STAGE, converters, json_as_sent=True, wire=task.wire)).fetchone()
            t2 = proc_cpu(pid)
            pg.execute(f"INSERT INTO {quote(table)} ({names}) SELECT {exprs} FROM {quote(STAGE)}")
            t3 = proc_cpu(pid)
            pg.execute(f"TRUNCATE {quote(STAGE)}")
            for part, took in zip(SERVER, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                cpu[part] += took
        pg.rollback()
        _bare(pg, table)
        cpu["direct COPY"] = _direct_copy(pg, src, table, columns, tasks)
        pg.rollback()
    return cpu


def _bare(pg: Any, table: str) -> None:
    """The table as the copier loads it (in this transaction): no foreign keys, keys or secondary indexes."""
    from agor_db.copy.target import droppable_keys, quote

    fks = (  # its own, and those that point at it (they hold its key)
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE %s::regclass IN (conrelid, confrelid) AND contype = 'f'"
    )
    indexes = (
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)"
    )
    for owner, name in pg.execute(fks, (quote(table),)).fetchall():
        pg.execute(f"ALTER TABLE {owner} DROP CONSTRAINT {quote(name)}")
    for key in droppable_keys(pg, [table]):
        pg.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(key.name)}")
    for (name,) in pg.execute(indexes, (quote(table),)).fetchall():
        pg.execute(f"DROP INDEX {quote(name)}")


def _direct_copy(pg: Any, src: Any, table: str, columns: Any, tasks: list[Any]) -> float:
    from agor_db.copy.pgbinary import binary_copy_types
    from agor_db.copy.target import quote

    source = tasks[0].query.rpartition(" FROM ")[2].partition(" WHERE ")[0]  # the SQLite table, quoted
    names = ", ".join(quote(c.name) for c in columns)
    cur = pg.cursor()
    types = binary_copy_types(cur.adapters, columns, pg.info.encoding)
    t0 = proc_cpu(pg.info.backend_pid)
    with cur.copy(f"COPY {quote(table)} ({names}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types(types)
        for task in tasks:
            for row in src.execute(f"SELECT {names} FROM {source} WHERE rowid > ? AND rowid <= ?", (task.lo, task.hi)):
                cp.write_row(row)
    return proc_cpu(pg.info.backend_pid) - t0


Parts = dict[str, tuple[int, dict[str, float], dict[str, float]]]


def report(source: Path, real: dict[str, Any], parts: Parts) -> None:
    phases = ", ".join(f"{k} {v:.2f}" for k, v in real["phases"].items())
    print(
        f"source {source}; load average {os.getloadavg()[0]:.1f}\nreal copy in-process: wall {real['wall']:.1f} s, "
        f"main process CPU {real['main_cpu']:.2f} s, workers CPU {real['workers_cpu']:.2f} s "
        f"({real['worker_rows']} rows read by workers); phases (s) {phases}"
    )
    for table, (n, client, server) in parts.items():
        print(f"\n{table}: {n} rows read by workers\n{'part':<28} {'CPU s':>7} {'us/row':>8}")
        for k in (*CLIENT, "range"):
            if k in client:
                print(f"client {k:<21} {client[k]:>7.2f} {1e6 * client[k] / n:>8.1f}")
        summed = sum(client.get(k, 0.0) for k in CLIENT)
        print(f"client {'sum of the parts':<21} {summed:>7.2f} {1e6 * summed / n:>8.1f}")
        for k, v in server.items():
            print(f"server {k:<21} {v:>7.2f} {1e6 * v / n:>8.1f}")
        staged = sum(server[k] for k in SERVER)
        print(f"server {'staged, in all':<21} {staged:>7.2f} {1e6 * staged / n:>8.1f}")
    doc = {t: {"rows": n, "client": c, "server": s} for t, (n, c, s) in parts.items()}
    print(json.dumps({"real": real, "tables": doc}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("--pyinstrument", type=Path, help="profile the real copy's main process, HTML here")
    args = parser.parse_args(argv)

    import apsw
    import pgserver
    import psycopg

    from agor_db.core import migrate as core
    from agor_db.core.source import bundled_sql_root
    from agor_db.core.urls import parse_url

    data = Path(tempfile.mkdtemp(prefix="agorprof"))
    server = pgserver.get_server(data, cleanup_mode="delete")
    admin = server.get_uri()

    def fresh(name: str) -> str:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        url = admin.replace("/postgres?", f"/{name}?")
        core.migrate(parse_url(url), bundled_sql_root(), core.RunOptions())
        return url

    try:
        real, tasks = real_copy(args.source, fresh("prof_real"), args.pyinstrument)
        if not tasks:
            raise SystemExit("no table was read by worker processes (AGOR_DB_COPY_WORKERS=1, or tables too small)")
        src = apsw.Connection(str(args.source), flags=apsw.SQLITE_OPEN_READONLY)
        src.execute("BEGIN")
        parts_url = fresh("prof_parts")
        parts: Parts = {}
        for table, given in tasks.items():
            n, client = client_parts(src, given)
            parts[table] = (n, client, server_parts(src, parts_url, table, given))
        report(args.source, real, parts)
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
