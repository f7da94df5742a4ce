"""What `agor-db copy` copies: the target's tables read from pg_catalog, matched with the source's tables.

Everything the copier decides (conversions, key checks, load order, what to drop and rebuild around
the load) is derived from here, never from hard-coded table or column lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import AgorDbError
from ..core.models import JOURNAL_TABLE

RUNS_TABLE = "agor_copy_runs"
INTERNAL_TARGET_TABLES = frozenset({JOURNAL_TABLE, RUNS_TABLE})
INTERNAL_SOURCE_TABLES = frozenset({JOURNAL_TABLE, "__drizzle_migrations"})


class SchemaMismatch(AgorDbError):
    """Source and target tables do not line up, so some data would have nowhere to go."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # pg type name as format_type() spells it without modifiers: "character varying", "jsonb", ...
    max_length: int | None  # varchar(n)
    not_null: bool
    has_default: bool
    oid: int = 0  # the type's oid (pg_attribute.atttypid), for binary COPY


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    definition: str  # pg_get_constraintdef, to re-add it after the load


@dataclass(frozen=True)
class UniqueKey:
    name: str
    columns: tuple[str, ...]
    primary: bool
    constraint: bool  # backed by a constraint (kept during the load) or a bare unique index


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    definition: str  # pg_get_indexdef


@dataclass(frozen=True)
class KeyConstraint:
    """A primary key or unique constraint dropped for the load and added again after it."""

    name: str
    table: str
    definition: str  # pg_get_constraintdef


_DROPPABLE_KEYS_SQL = """
SELECT r.relname, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
WHERE c.contype IN ('p', 'u') AND c.conrelid = ANY(%s::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)
ORDER BY 1, 2
"""


def droppable_keys(conn: Any, tables: list[str]) -> list[KeyConstraint]:
    """The primary keys and unique constraints of ``tables`` that no foreign key (still) depends on."""
    rows = conn.execute(_DROPPABLE_KEYS_SQL, ([quote(t) for t in tables],)).fetchall()
    return [KeyConstraint(name, table, definition) for table, name, definition in rows]


@dataclass(frozen=True)
class Sequence:
    column: str
    sequence: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    uniques: tuple[UniqueKey, ...]
    foreign_keys: tuple[ForeignKey, ...]
    indexes: tuple[Index, ...]  # secondary indexes not backing a constraint: dropped and rebuilt around the load
    sequences: tuple[Sequence, ...]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_COLUMNS_SQL = (
    "SELECT a.attname, format_type(a.atttypid, NULL), a.atttypmod, a.attnotnull, "
    "a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', a.atttypid::int "
    "FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)
_INDEXES_SQL = (
    "SELECT ic.relname, array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), "
    "i.indisprimary, i.indisunique, "
    "EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid), "
    "i.indpred IS NOT NULL OR i.indexprs IS NOT NULL, pg_get_indexdef(i.indexrelid) "
    "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = %s ORDER BY ic.relname"
)
_FOREIGN_KEYS_SQL = (
    "SELECT k.conname, "
    "array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, o) "
    "  JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o), "
    "(SELECT r.relname FROM pg_class r WHERE r.oid = k.confrelid), "
    "array(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, o) "
    "  JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o), "
    "pg_get_constraintdef(k.oid) "
    "FROM pg_constraint k WHERE k.conrelid = %s AND k.contype = 'f' ORDER BY k.conname"
)
_SEQUENCES_SQL = (
    "SELECT a.attname, pg_get_serial_sequence(%s, a.attname) FROM pg_attribute a "
    "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
    "AND pg_get_serial_sequence(%s, a.attname) IS NOT NULL"
)


def read_target(conn: Any) -> dict[str, Table]:
    """Introspect every table of the current schema except agor-db's own."""
    names = [
        r[0]
        for r in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
            "AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        ).fetchall()
        if r[0] not in INTERNAL_TARGET_TABLES
    ]
    return {name: _read_table(conn, name) for name in names}


def _read_table(conn: Any, name: str) -> Table:
    oid = conn.execute("SELECT %s::regclass::oid", (quote(name),)).fetchone()[0]
    cols = tuple(
        Column(n, t, (m - 4) if t == "character varying" and m > 0 else None, nn, d, o)
        for n, t, m, nn, d, o in conn.execute(_COLUMNS_SQL, (oid,)).fetchall()
    )
    uniques: list[UniqueKey] = []
    indexes: list[Index] = []
    pk: tuple[str, ...] = ()
    for iname, cols_, primary, unique, constraint, partial, definition in conn.execute(
        _INDEXES_SQL, (oid,)
    ).fetchall():
        if primary:
            pk = tuple(cols_)
        if unique and not partial:
            uniques.append(UniqueKey(iname, tuple(cols_), primary, constraint))
        if not constraint:
            indexes.append(Index(iname, name, definition))
    fks = tuple(
        ForeignKey(cname, name, tuple(c), ref, tuple(rc), d)
        for cname, c, ref, rc, d in conn.execute(_FOREIGN_KEYS_SQL, (oid,)).fetchall()
    )
    seqs = tuple(
        Sequence(col, seq)
        for col, seq in conn.execute(_SEQUENCES_SQL, (quote(name), oid, quote(name))).fetchall()
    )
    return Table(name, cols, pk, tuple(uniques), fks, tuple(indexes), seqs)


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[str, ...]
    has_rowid: bool
    unique_sets: frozenset[tuple[str, ...]]  # column sets SQLite itself keeps unique (sorted tuples)


def read_source(conn: Any) -> dict[str, SourceTable]:
    out: dict[str, SourceTable] = {}
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    for name, sql in rows:
        if name in INTERNAL_SOURCE_TABLES:
            continue
        cols = tuple(r[1] for r in conn.execute(f"PRAGMA table_info({quote(name)})"))
        uniques: set[tuple[str, ...]] = set()
        for idx in conn.execute(f"PRAGMA index_list({quote(name)})").fetchall():
            if idx[2] and not idx[4]:  # unique and not partial
                icols = tuple(sorted(r[2] for r in conn.execute(f"PRAGMA index_info({quote(idx[1])})")))
                if None not in icols:
                    uniques.add(icols)
        without_rowid = "WITHOUT ROWID" in (sql or "").upper().replace("\n", " ")
        out[name] = SourceTable(name, cols, not without_rowid, frozenset(uniques))
    return out


@dataclass(frozen=True)
class Pair:
    """One table to copy: the target's definition and the source columns that feed it."""

    target: Table
    source: SourceTable | None  # None: the source has no such table; the target table stays empty
    columns: tuple[Column, ...]  # target columns filled from the source, in target order


def match(target: dict[str, Table], source: dict[str, SourceTable]) -> list[Pair]:
    """Pair tables by name, in load order; refuse when source data would have nowhere to go."""
    problems: list[str] = []
    for name, st in source.items():
        if name not in target:
            problems.append(f"source table {name} has no table in the target")
            continue
        t = target[name]
        names = {c.name for c in t.columns}
        for col in st.columns:
            if col not in names:
                problems.append(f"source column {name}.{col} has no column in the target")
        for c in t.columns:
            if c.name not in st.columns and c.not_null and not c.has_default:
                problems.append(f"target column {name}.{c.name} is NOT NULL without a default and the source lacks it")
    if problems:
        raise SchemaMismatch(
            "the source and the target schema do not match; nothing was copied:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint="both must be at the newest version (agor-db migrate on each); "
            "a column or table added by hand to one side must be added to the other",
        )
    pairs = []
    for name in load_order(target):
        t = target[name]
        src = source.get(name)
        cols = tuple(c for c in t.columns if src is not None and c.name in src.columns)
        pairs.append(Pair(t, src, cols))
    return pairs


def load_order(tables: dict[str, Table]) -> list[str]:
    """Parents before children (Kahn on the target's FKs); self-references ignored; cycles broken by name."""
    deps = {
        n: {fk.ref_table for fk in t.foreign_keys if fk.ref_table != n and fk.ref_table in tables}
        for n, t in tables.items()
    }
    order: list[str] = []
    ready = sorted(n for n, d in deps.items() if not d)
    remaining = {n: set(d) for n, d in deps.items() if d}
    while ready or remaining:
        if not ready:  # a cycle: FKs are dropped during the load, so any order works; stay deterministic
            ready = [min(remaining)]
            remaining.pop(ready[0])
        n = ready.pop(0)
        order.append(n)
        for m in sorted(remaining):
            remaining[m].discard(n)
            if not remaining[m]:
                remaining.pop(m)
                ready.append(m)
        ready.sort()
    return order
