"""Builders for drizzle-era SQLite databases that the shared fixtures do not cover.

Everything is derived from facts, not copied from a real file: the canonical DDL of each step comes
from applying ``sql/sqlite`` in memory (agor_db.schema.adopt.build_references), the bootstrap-era DDL is that
DDL rewritten the way Agor's old hand-written bootstrap spelled it (issue 5), the legacy journal rows
use the `when`s and hashes of ``sql/sqlite-upstream.json``, and the rows come from the shared
fixtures (copied with ATTACH, read-only).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import apsw
from agor_db.schema.adopt import Reference, build_references
from agor_db.core.source import dialect_dir, list_migrations, parse
from conftest import AGOR_TABLES

REPO = Path(__file__).resolve().parent.parent
SQL = REPO / "sql"
LEGACY = "__drizzle_migrations"
LEGACY_DDL = (
    'CREATE TABLE IF NOT EXISTS "__drizzle_migrations" (\n\t\t\tid SERIAL PRIMARY KEY,\n'
    "\t\t\thash text NOT NULL,\n\t\t\tcreated_at numeric\n\t\t)"
)
APP_TABLES = AGOR_TABLES
# Enum-ish columns the bootstrap DDL guarded with CHECK; the value lists cover every value in the fixtures.
CHECKS = {
    "sessions": ("status", ("idle", "running", "awaiting_permission", "completed", "failed")),
    "tasks": ("status", ("created", "running", "awaiting_permission", "stopping", "stopped", "completed", "failed")),
    "messages": ("role", ("user", "assistant", "system")),
}
# The baseline's named unique indexes; the bootstrap DDL had an inline UNIQUE on the column instead.
UNIQUE_INDEXES = {
    "users_email_unique": ("users", "email"),
    "boards_slug_unique": ("boards", "slug"),
    "repos_slug_unique": ("repos", "slug"),
}
BOOTSTRAP_WALL_CLOCK = 1762051234567  # a bootstrap run between upstream 0000 and 0001, as a real clock would give
WITHDRAWN_WHENS = {6: 1762564000000, 7: 1762565000000}


@functools.cache
def references() -> dict[int, Reference]:
    migrations = list_migrations(dialect_dir(SQL, "sqlite"))
    return {r.migration.version: r for r in build_references(migrations, SQL)}


@functools.cache
def upstream() -> dict[int, dict[str, Any]]:
    data = json.loads((SQL / "sqlite-upstream.json").read_text())
    return {int(e["version"]): e for e in data["steps"] + data["withdrawn"]}


def journal_rows(versions: Iterable[int]) -> list[tuple[str, int]]:
    """The (hash, created_at) rows drizzle writes for these upstream steps: file hash and journal `when`."""
    return [(upstream()[v]["hashes"][-1], int(upstream()[v]["when"])) for v in versions]


STEPS = tuple(sorted(v for v in range(11) if v not in WITHDRAWN_WHENS))


def steps_upto(n: int) -> list[int]:
    return [v for v in STEPS if v <= n]


# -- DDL -----------------------------------------------------------------------------------------


def _col(name: str) -> str:
    """A regex for a column name in any SQLite quoting."""
    return rf"(?:\"{name}\"|`{name}`|\b{name}\b)"


def bootstrap_table_sql(table: str, sql: str) -> str:
    """Canonical CREATE TABLE rewritten in the bootstrap code path's spelling."""
    out = re.sub(r"text\(36\)", "TEXT", sql)
    out = re.sub(r"PRIMARY KEY NOT NULL", "PRIMARY KEY", out)
    out = re.sub(r"DEFAULT false", "DEFAULT 0", out)
    out = re.sub(r"DEFAULT true", "DEFAULT 1", out)
    for _index, (t, column) in UNIQUE_INDEXES.items():
        if t == table:
            out, n = re.subn(rf"({_col(column)} text(?: NOT NULL)?)", r"\1 UNIQUE", out, count=1)
            assert n == 1, (table, column)
    if table in CHECKS:
        column, values = CHECKS[table]
        allowed = ", ".join(f"'{v}'" for v in values)
        head, _, tail = out.rpartition(")")
        out = f"{head.rstrip()},\n    CHECK ({column} IN ({allowed}))\n{tail})"
    return out


def bootstrap_ddl(version: int) -> list[str]:
    """Every statement of step ``version``'s schema, bootstrap-era spelling, tables then indexes."""
    ref = references()[version]
    stmts = [bootstrap_table_sql(t, sql) for t, sql in ref.table_sql.items()]
    for sqls in ref.index_sql.values():
        stmts += [s for s in sqls if not any(name in s for name in UNIQUE_INDEXES)]
    return stmts


def canonical_ddl(version: int) -> list[str]:
    ref = references()[version]
    return list(ref.table_sql.values()) + [s for sqls in ref.index_sql.values() for s in sqls]


# -- building ------------------------------------------------------------------------------------


def create(path: Path, ddl: list[str]) -> apsw.Connection:
    conn = apsw.Connection(str(path))
    conn.execute("BEGIN")
    for st in ddl:
        conn.execute(st)
    conn.execute("COMMIT")
    return conn


def copy_rows(conn: apsw.Connection, source: Path, tables: Iterable[str] = APP_TABLES) -> None:
    """Copy the rows of (a temp copy of) a shared fixture, in rowid order, for the columns both sides have."""
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    conn.execute("BEGIN")
    for t in tables:
        mine = [r[1] for r in conn.execute(f'PRAGMA main.table_info("{t}")')]
        theirs = {r[1] for r in conn.execute(f'PRAGMA src.table_info("{t}")')}
        cols = ", ".join(f'"{c}"' for c in mine if c in theirs)
        conn.execute(f'INSERT INTO main."{t}" (rowid, {cols}) SELECT rowid, {cols} FROM src."{t}" ORDER BY rowid')
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE src")


def write_legacy_journal(conn: apsw.Connection, rows: list[tuple[str, int]]) -> None:
    conn.execute(LEGACY_DDL)
    conn.execute("BEGIN")
    for h, when in rows:
        conn.execute(f'INSERT INTO "{LEGACY}" (hash, created_at) VALUES (?, ?)', (h, when))
    conn.execute("COMMIT")


def apply_steps(conn: apsw.Connection, versions: Iterable[int]) -> None:
    """What a later drizzle run did: the archived files on top, foreign keys off outside one transaction."""
    by_version = {m.version: m for m in list_migrations(dialect_dir(SQL, "sqlite"))}
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("BEGIN")
    for v in versions:
        for st in parse(by_version[v]).statements:
            for _ in conn.execute(st.sql):
                pass
    conn.execute("COMMIT")


def bootstrap_db(path: Path, version: int, data: Path) -> Path:
    """Bootstrap-era DDL of step ``version`` with the fixture's rows and the bootstrap journal row."""
    conn = create(path, bootstrap_ddl(version))
    copy_rows(conn, data)
    rows = [("0000_pretty_mac_gargan", BOOTSTRAP_WALL_CLOCK), *journal_rows(v for v in steps_upto(version) if v)]
    write_legacy_journal(conn, rows)
    conn.close()
    return path


def bootstrap_then_drizzle(path: Path, data: Path) -> Path:
    """Bootstrapped at 0000 (with rows), then later drizzle runs applied 0001..0010 on top."""
    conn = create(path, bootstrap_ddl(0))
    copy_rows(conn, data)
    write_legacy_journal(conn, [("0000_pretty_mac_gargan", BOOTSTRAP_WALL_CLOCK), *journal_rows(STEPS[1:])])
    apply_steps(conn, STEPS[1:])
    conn.close()
    return path


# -- reading -------------------------------------------------------------------------------------


def connect_ro(path: Path) -> apsw.Connection:
    return apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)


def tables_of(conn: apsw.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [r[0] for r in rows]


def dump(path: Path, tables: Iterable[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (or of the given ones), with its rowid, in rowid order."""
    conn = connect_ro(path)
    try:
        names = list(tables) if tables is not None else tables_of(conn)
        out = {}
        for t in names:
            out[t] = [tuple(r) for r in conn.execute(f'SELECT rowid, * FROM "{t}" ORDER BY rowid')]
        return out
    finally:
        conn.close()


def columns_of(path: Path) -> dict[str, list[str]]:
    conn = connect_ro(path)
    try:
        return {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables_of(conn)}
    finally:
        conn.close()


def rows_by_columns(path: Path, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows projected on the given columns, as a sorted multiset (rebuilds may renumber rowids)."""
    conn = connect_ro(path)
    try:
        out = {}
        for t, cols in columns.items():
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = sorted((tuple(r) for r in conn.execute(f'SELECT {sel} FROM "{t}"')), key=repr)
        return out
    finally:
        conn.close()


def counts(path: Path, tables: Iterable[str] = APP_TABLES) -> dict[str, int]:
    conn = connect_ro(path)
    try:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]
    finally:
        conn.close()


def scalar(path: Path, sql: str, *args: Any) -> Any:
    conn = connect_ro(path)
    try:
        row = conn.execute(sql, args).fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()


def rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = connect_ro(path)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def health(path: Path) -> tuple[str, list[tuple[Any, ...]]]:
    conn = connect_ro(path)
    try:
        ok = conn.execute("PRAGMA integrity_check").fetchall()
        fk = [tuple(r) for r in conn.execute("PRAGMA foreign_key_check")]
        return ", ".join(str(r[0]) for r in ok), fk
    finally:
        conn.close()


def schema_fingerprint(path: Path) -> str:
    from agor_db.schema.model import fingerprint, introspect_sqlite, load_kinds

    conn = connect_ro(path)
    try:
        return fingerprint(introspect_sqlite(conn, load_kinds(SQL)), cosmetic=True)
    finally:
        conn.close()


def table_sql(path: Path) -> dict[str, str]:
    conn = connect_ro(path)
    try:
        return {n: s for n, s in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'") if s}
    finally:
        conn.close()
