"""Where `agor-db copy` spends its time per row, part by part (for issue 15).

    python bench/profile_copy.py /tmp/agor-bench-small-50000.db           # on a pgserver of its own
    python bench/profile_copy.py SOURCE --pyinstrument /tmp/copy.html     # also one real copy, profiled

Each part of the copier's per-row path is timed on its own pass over the same rows, with the copier's
own building blocks (the same query with its SQLite-side tests, RowHasher, binary_copy_types, the
queued COPY writer), so the parts add up to roughly what the real pass costs:

  step       SQLite step + apsw's conversion to Python objects (plain ``SELECT rowid, cols``)
  checks     the extra cost of the inline SQLite tests (the copier's query minus ``step``)
  loop       the copier's per-row Python on the fast path (flag test, slicing, counters)
  canonical  the row's canonical text for the checksum (JSON parsed and re-printed as jsonb prints it)
  hash       UTF-8 encoding of that text, md5, the 64-bit sum
  write_row  psycopg's dumpers and COPY buffer building in the main thread (binary COPY)

Client parts are main-thread CPU (``time.thread_time``); the COPY writer thread's socket work is not
in them. Server parts are CPU of the PostgreSQL backend (``/proc/<pid>/stat`` of ``pg_backend_pid()``,
so only with the server on this machine): COPY into index-less tables, the index and FK rebuild, and
the verification query (``copy_verify.server_digest_sql``). Then one real copy runs in-process, and
its main thread's CPU during the pass (between the first table_start and the last table_done) is the
figure the parts should add up to. Alternatives for the JSON part are timed on the same texts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from hashlib import md5
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
TICK = os.sysconf("SC_CLK_TCK")
ROWID_MIN = -(2**63)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(main-thread CPU s, wall s, result)."""
    gc.collect()
    c0, w0 = time.thread_time(), time.perf_counter()
    out = fn()
    return time.thread_time() - c0, time.perf_counter() - w0, out


def drain(rows: Iterator[Any]) -> int:
    return sum(1 for _ in rows)


class Tally:
    def __init__(self) -> None:
        self.parts: dict[str, float] = {}
        self.extra: dict[str, float] = {}
        self.rows = 0
        self.server_copy = 0.0

    def add(self, part: str, cpu: float, into: str = "parts") -> None:
        d = self.parts if into == "parts" else self.extra
        d[part] = d.get(part, 0.0) + cpu


def fast_path(rows: list[Any]) -> list[Any]:
    """The copier's per-row Python on the fast path, without hashing and writing."""
    out = []
    last = 0
    for seen, row in enumerate(rows, 1):
        if seen % 2000 == 0:
            pass
        last = row[0]
        examined = bool(row[-1] or last is None)
        if not examined:
            out.append(row[1:-1])
    return out


def json_alternatives(tally: Tally, texts: list[str]) -> None:
    """What the JSON part costs with other means, on the same texts."""
    from json import dumps, loads

    from agor_db.copy.convert import _DECODER, jsonb_text

    for label, fn in (
        ("json: C loads only (no hooks)", lambda: [loads(t) for t in texts]),
        ("json: C loads + C dumps", lambda: [dumps(loads(t), ensure_ascii=False) for t in texts]),
        ("json: decode with jsonb hooks", lambda: [_DECODER.decode(t) for t in texts]),
        ("json: jsonb_text (decode+encode)", lambda: [jsonb_text(t) for t in texts]),
        ("json: md5 of the raw text", lambda: [md5(t.encode(), usedforsecurity=False).digest() for t in texts]),
    ):
        tally.add(label, timed(fn)[0], "extra")


def table_parts(src: Any, pg: Any, pair: Any, tally: Tally) -> None:
    from agor_db.copy.convert import binary_copy_types, converter_for
    from agor_db.copy.load import _writer
    from agor_db.copy.scan import orphan_sql
    from agor_db.copy.target import quote
    from agor_db.copy.verify import RowHasher

    table, source = pair.target, pair.source
    convs = tuple(converter_for(c, table.name) for c in pair.columns)
    names = [c.name for c in pair.columns]
    cols = ", ".join(quote(n) for n in names)
    fks = [fk for fk in table.foreign_keys if all(c in names for c in fk.columns)]
    json_tests = [c.attention_sql() for c in convs if c.family == "json"]
    orphan_tests = [orphan_sql(table, fk.columns, fk.ref_table, fk.ref_columns) for fk in fks]
    flag = " OR ".join([c.attention_sql() for c in convs] + orphan_tests) or "0"
    body = f"FROM {quote(source.name)} WHERE rowid > ? ORDER BY rowid"
    step, _, _ = timed(lambda: drain(src.execute(f"SELECT rowid, {cols}, 0 {body}", (ROWID_MIN,))))
    tally.add("step", step)
    tally.add(
        "checks", timed(lambda: drain(src.execute(f"SELECT rowid, {cols}, ({flag}) {body}", (ROWID_MIN,))))[0] - step
    )
    for label, tests in (("checks: json_valid alone", json_tests), ("checks: orphan tests alone", orphan_tests)):
        if tests:
            test = f"SELECT rowid, {cols}, ({' OR '.join(tests)}) {body}"
            tally.add(label, timed(lambda sql=test: drain(src.execute(sql, (ROWID_MIN,))))[0] - step, "extra")
    rows: list[Any] = list(src.execute(f"SELECT rowid, {cols}, ({flag}) {body}", (ROWID_MIN,)))
    tally.rows += len(rows)
    cpu, _, values = timed(lambda: fast_path(rows))
    tally.add("loop", cpu)
    row_text = RowHasher(convs)._row_text
    cpu, _, texts = timed(lambda: [row_text(v) for v in values])
    tally.add("canonical", cpu)
    json_alternatives(tally, [v[i] for v in values for i, c in enumerate(convs) if c.family == "json" and v[i]])

    def hash_all(texts: list[str] = texts) -> int:
        total = 0
        for t in texts:
            total += int.from_bytes(md5(t.encode("utf-8"), usedforsecurity=False).digest()[:8], "big", signed=True)
        return total

    tally.add("hash", timed(hash_all)[0])
    del texts
    cur = pg.cursor()
    binary = binary_copy_types(cur.adapters, pair.columns, pg.info.encoding)
    fmt = " (FORMAT BINARY)" if binary else ""

    def copy_all() -> None:
        with cur.copy(f"COPY {quote(table.name)} ({cols}) FROM STDIN{fmt}", writer=_writer(cur)) as cp:
            if binary:
                cp.set_types(binary)
            write_row = cp.write_row
            for v in values:
                write_row(v)

    s0 = proc_cpu(pg.info.backend_pid)
    tally.add("write_row", timed(copy_all)[0])
    tally.server_copy += proc_cpu(pg.info.backend_pid) - s0
    values.clear()  # free the materialised rows before the streaming pass
    rows.clear()
    hasher = RowHasher(convs)
    add = hasher.add
    pg.execute(f"CREATE TEMP TABLE fused (LIKE {quote(table.name)})")

    def fused() -> None:
        """All parts in one streaming pass, as the copier interleaves them (into a constraint-less temp table)."""
        with cur.copy(f"COPY fused ({cols}) FROM STDIN{fmt}", writer=_writer(cur)) as cp:
            if binary:
                cp.set_types(binary)
            write_row = cp.write_row
            for row in src.execute(f"SELECT rowid, {cols}, ({flag}) {body}", (ROWID_MIN,)):
                if not row[-1]:
                    values = row[1:-1]
                    add(values)
                    write_row(values)

    tally.add("all parts in one streaming pass", timed(fused)[0], "extra")
    pg.execute("DROP TABLE fused")


def server_parts(pg: Any, pairs: list[Any]) -> dict[str, float]:
    """Backend CPU of the index/FK rebuild and of the verification queries."""
    from agor_db.copy.convert import converter_for
    from agor_db.copy.target import quote
    from agor_db.copy.verify import server_digest_sql

    pid = pg.info.backend_pid
    s0 = proc_cpu(pid)
    for p in pairs:
        for ix in p.target.indexes:
            pg.execute(ix.definition)
    for p in pairs:
        for fk in p.target.foreign_keys:
            pg.execute(f"ALTER TABLE {quote(fk.table)} ADD CONSTRAINT {quote(fk.name)} {fk.definition}")
    s1 = proc_cpu(pid)
    for p in pairs:
        pg.execute(server_digest_sql(p.target.name, tuple(converter_for(c, p.target.name) for c in p.columns)))
    return {"rebuild": s1 - s0, "verify": proc_cpu(pid) - s1}


def measure_parts(source: Path, url: str) -> tuple[Tally, dict[str, float]]:
    import apsw
    import psycopg

    from agor_db.copy.target import match, quote, read_source, read_target

    src = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    src.execute("BEGIN")
    tally = Tally()
    with psycopg.connect(url) as pg:
        pairs = [p for p in match(read_target(pg), read_source(src)) if p.source is not None]
        for p in pairs:
            for fk in p.target.foreign_keys:
                pg.execute(f"ALTER TABLE {quote(fk.table)} DROP CONSTRAINT {quote(fk.name)}")
        for p in pairs:
            for ix in p.target.indexes:
                pg.execute(f"DROP INDEX {quote(ix.name)}")
        for p in pairs:
            table_parts(src, pg, p, tally)
        server = server_parts(pg, pairs)
        pg.rollback()
    src.close()
    return tally, server


def real_copy(source: Path, url: str, profile: Path | None) -> dict[str, Any]:
    """One real copy in-process; the main thread's CPU during the pass, the phases."""
    from agor_db.copy.run import CopyOptions, Progress, copy
    from agor_db.core.source import bundled_sql_root
    from agor_db.core.urls import parse_url

    marks: dict[str, float] = {}

    class Marks(Progress):
        def table_start(self, table: str, total: int) -> None:
            marks.setdefault("start", time.thread_time())

        def table_done(self, table: str, rows: int, seconds: float) -> None:
            marks["done"] = time.thread_time()

    profiler: Any = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    w0 = time.perf_counter()
    result = copy(parse_url(str(source)), parse_url(url), bundled_sql_root(), CopyOptions(), Marks())
    wall = time.perf_counter() - w0
    if profiler is not None:
        profiler.stop()
        assert profile is not None
        profile.write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, show_all=False)[:8000])
    return {"wall": wall, "pass_cpu": marks["done"] - marks["start"], "phases": result.phases}


def report(source: Path, tally: Tally, server: dict[str, float], real: dict[str, Any]) -> None:
    n = tally.rows
    client = sum(tally.parts.values())
    print(f"source {source}: {n} rows; load average {os.getloadavg()[0]:.1f}")
    print(f"{'client part':<34} {'CPU s':>7} {'%':>6} {'us/row':>8}")
    for k, v in tally.parts.items():
        print(f"{k:<34} {v:>7.2f} {100 * v / client:>6.1f} {1e6 * v / n:>8.1f}")
    print(f"{'sum of the parts':<34} {client:>7.2f} {100.0:>6.1f} {1e6 * client / n:>8.1f}")
    for k, v in tally.extra.items():
        print(f"  {k:<32} {v:>7.2f} {'':>6} {1e6 * v / n:>8.1f}")
    print(
        f"server backend CPU: COPY {tally.server_copy:.2f} s ({1e6 * tally.server_copy / n:.1f} us/row), "
        f"index+FK rebuild {server['rebuild']:.2f} s, verification {server['verify']:.2f} s "
        f"({1e6 * server['verify'] / n:.1f} us/row)"
    )
    phases = ", ".join(f"{k} {v:.2f}" for k, v in real["phases"].items())
    print(
        f"real copy in-process: wall {real['wall']:.1f} s, main-thread CPU in the pass {real['pass_cpu']:.2f} s "
        f"({1e6 * real['pass_cpu'] / n:.1f} us/row); phases {phases}; load average {os.getloadavg()[0]:.1f}"
    )
    doc = {"rows": n, "client": tally.parts, "extra": tally.extra, "server_copy": tally.server_copy, **server}
    print(json.dumps({**doc, "real": real}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("--pyinstrument", type=Path, help="profile the real copy with pyinstrument, HTML here")
    args = parser.parse_args(argv)

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
        tally, server_cpu = measure_parts(args.source, fresh("prof_parts"))
        real = real_copy(args.source, fresh("prof_real"), args.pyinstrument)
        report(args.source, tally, server_cpu, real)
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
