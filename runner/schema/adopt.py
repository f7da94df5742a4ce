"""Adopting SQLite databases that drizzle migrated before agor-db existed.

The schema decides, the legacy journal only explains: ``sql/sqlite`` is applied step by step to an
in-memory database and each step's normalised schema is compared with the live one. Differences are
*structural* (a table, column or foreign key missing or extra, a type of another affinity, a changed
NOT NULL or key) or *cosmetic* (type spelling within one affinity, primary-key nullability, CHECK
constraints, a unique constraint instead of an equal named unique index, default spelling, column
order, index names). A database matching step N exactly, or only cosmetically, is adopted as 0..N;
cosmetic differences are repaired by rebuilding the table into step N's canonical form.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.errors import AgorDbError, DatabaseError, ExitCode, MigrationFileError, UsageError
from ..core.models import Migration
from .model import Schema, Table, introspect_sqlite, load_kinds, normalise_default

UPSTREAM_FILE = "sqlite-upstream.json"
LEGACY_JOURNAL = "__drizzle_migrations"
# Columns the withdrawn upstream 0006/0007 added; 0009 rebuilds their tables without them.
WITHDRAWN_COLUMNS = {("sessions", "ready_for_prompt"), ("worktrees", "needs_attention")}
WITHDRAWN_STEPS = {5, 8}  # steps at which a database from that window can stand

DiffKind = Literal["structural", "cosmetic", "withdrawn"]


class AdoptionRefused(AgorDbError):
    exit_code = ExitCode.DRIFT


@dataclass(frozen=True)
class Difference:
    table: str
    kind: DiffKind
    text: str

    @property
    def line(self) -> str:
        return f"{self.table}: {self.text} ({self.kind})"


@dataclass(frozen=True)
class Reference:
    """The canonical schema after one archived step, with the SQL that creates each table."""

    migration: Migration
    schema: Schema
    table_sql: dict[str, str]
    index_sql: dict[str, list[str]]  # table -> CREATE INDEX statements


@dataclass(frozen=True)
class LegacyRow:
    hash: str
    created_at: Any
    tag: str | None  # what the row says it is, when recognised


@dataclass(frozen=True)
class Assessment:
    """What migrate would do with a database that has tables but no agor_migrations journal."""

    legacy_rows: tuple[LegacyRow, ...]
    journal_says: int | None  # newest step the legacy journal claims
    version: int | None  # the step the schema matches (or --adopt-as)
    differences: tuple[Difference, ...]  # against that step (or the nearest, when refused)
    nearest: int | None
    adopt: tuple[Migration, ...] = ()
    repair: tuple[str, ...] = ()  # tables to rebuild into canonical form
    forced: bool = False
    notes: tuple[str, ...] = field(default=())
    reference: Reference | None = None  # the canonical schema of the adopted step (for repairs)

    @property
    def structural(self) -> list[Difference]:
        return [d for d in self.differences if d.kind == "structural"]

    def describe(self) -> list[str]:
        lines = []
        if self.legacy_rows:
            tags = [r.tag or f"unrecognised hash {r.hash[:12]}..." for r in self.legacy_rows]
            lines.append(f"legacy drizzle journal: {len(self.legacy_rows)} row(s): {', '.join(tags)}")
        else:
            lines.append("no legacy drizzle journal")
        if self.version is not None:
            how = "by --adopt-as" if self.forced else "by its schema"
            lines.append(f"schema: at upstream step {self.version:04d} ({how})")
        for note in self.notes:
            lines.append(note)
        if self.adopt:
            first, last = self.adopt[0].version, self.adopt[-1].version
            lines.append(
                f"will adopt: {first:04d}..{last:04d} ({len(self.adopt)} archived "
                f"step{'s' if len(self.adopt) != 1 else ''}, recorded as 'adopted')"
            )
        if self.repair:
            lines.append(f"will repair (rebuild into canonical form): {', '.join(self.repair)}")
        for d in self.differences:
            lines.append(f"  difference: {d.line}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "legacy_journal": [{"hash": r.hash, "created_at": r.created_at, "tag": r.tag} for r in self.legacy_rows],
            "journal_says": self.journal_says,
            "schema_version": self.version,
            "adopt": [m.version for m in self.adopt],
            "repair": list(self.repair),
            "differences": [{"table": d.table, "kind": d.kind, "text": d.text} for d in self.differences],
            "notes": list(self.notes),
        }


# -- references ----------------------------------------------------------------------------------


def build_references(migrations: list[Migration], sql_root: Path) -> list[Reference]:
    """Apply every archived step to an in-memory database and keep the schema after each."""
    import apsw

    from ..core.source import parse

    kinds = load_kinds(sql_root)
    conn = apsw.Connection(":memory:")
    refs: list[Reference] = []
    for m in migrations:
        script = parse(m)
        conn.execute("BEGIN")
        for st in script.statements:
            try:
                for _ in conn.execute(st.sql):
                    pass
            except apsw.Error as exc:
                raise MigrationFileError(
                    f"cannot build the reference schema: {m.label} line {st.line} fails on an empty database: {exc}",
                    hint="the sqlite folder must build from nothing; check --sql-dir",
                ) from None
        conn.execute("COMMIT")
        table_sql: dict[str, str] = {}
        index_sql: dict[str, list[str]] = {}
        for kind, name, tbl, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"):
            if kind == "table" and not name.startswith("sqlite_"):
                table_sql[name] = sql
            elif kind == "index" and sql:
                index_sql.setdefault(tbl, []).append(sql)
        refs.append(Reference(m, introspect_sqlite(conn, kinds), table_sql, index_sql))
    conn.close()
    return refs


# -- comparing -----------------------------------------------------------------------------------


def _affinity(declared: str) -> str:
    """SQLite's column affinity rules (datatype3.html, section 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "text"
    if not t or "BLOB" in t:
        return "blob"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "real"
    return "numeric"


def _has_check(sql: str | None) -> bool:
    if not sql:
        return False
    unquoted = re.sub(r"'(?:[^']|'')*'", "''", sql)
    return re.search(r"\bCHECK\s*\(", unquoted, re.IGNORECASE) is not None


def classify(live: Schema, ref: Reference, live_sql: dict[str, str]) -> list[Difference]:
    out: list[Difference] = []
    version = ref.migration.version
    live_tables = {t.name: t for t in live.tables}
    ref_tables = {t.name: t for t in ref.schema.tables}
    for name in sorted(set(live_tables) | set(ref_tables)):
        a, b = live_tables.get(name), ref_tables.get(name)
        if b is None:
            out.append(Difference(name, "structural", "extra table"))
        elif a is None:
            out.append(Difference(name, "structural", "missing table"))
        else:
            out.extend(_classify_table(a, b, version))
            if _has_check(live_sql.get(name)) and not _has_check(ref.table_sql.get(name)):
                out.append(Difference(name, "cosmetic", "CHECK constraint"))
    return out


def _classify_table(a: Table, b: Table, version: int) -> list[Difference]:
    """Table ``a`` (the database's) against ``b`` (the archived step's): each difference, classified."""
    return _columns(a, b, version) + _keys_and_indexes(a, b)


def _columns(a: Table, b: Table, version: int) -> list[Difference]:
    out: list[Difference] = []
    t = b.name
    names_a = [c.name for c in a.columns]
    names_b = [c.name for c in b.columns]
    for col in names_a:
        if col not in names_b:
            withdrawn = (t, col) in WITHDRAWN_COLUMNS and version in WITHDRAWN_STEPS
            out.append(
                Difference(
                    t,
                    "withdrawn" if withdrawn else "structural",
                    f"extra column {col}"
                    + (" (from withdrawn upstream 0006/0007; 0009 drops it)" if withdrawn else ""),
                )
            )
    out += [Difference(t, "structural", f"missing column {col}") for col in names_b if col not in names_a]
    common = [c for c in names_b if c in names_a]
    if [c for c in names_a if c in common] != common:
        out.append(Difference(t, "cosmetic", "column order"))
    for col in common:
        ca, cb = a.column(col), b.column(col)
        assert ca is not None and cb is not None
        if ca.type != cb.type:
            same = _affinity(ca.type) == _affinity(cb.type)
            out.append(Difference(t, "cosmetic" if same else "structural", f"{col} type {ca.type!r} vs {cb.type!r}"))
        if ca.notnull != cb.notnull:
            pk_only = bool(ca.pk and cb.pk)
            out.append(
                Difference(
                    t,
                    "cosmetic" if pk_only else "structural",
                    f"{col} {'NOT NULL' if ca.notnull else 'nullable'} vs {'NOT NULL' if cb.notnull else 'nullable'}"
                    + (" (primary key)" if pk_only else ""),
                )
            )
        if ca.default != cb.default:
            same_value = normalise_default(ca.default, cb.kind) == normalise_default(cb.default, cb.kind)
            out.append(
                Difference(
                    t, "cosmetic", f"{col} default {ca.default} vs {cb.default}" + ("" if same_value else " (value)")
                )
            )
    return out


def _keys_and_indexes(a: Table, b: Table) -> list[Difference]:
    out: list[Difference] = []
    t = b.name
    if a.primary_key != b.primary_key:
        out.append(Difference(t, "structural", f"primary key {a.primary_key} vs {b.primary_key}"))
    fa = Counter((f.columns, f.ref_table, f.on_update, f.on_delete) for f in a.foreign_keys)
    fb = Counter((f.columns, f.ref_table, f.on_update, f.on_delete) for f in b.foreign_keys)
    for fk in sorted((fa - fb).elements()):
        out.append(Difference(t, "structural", f"extra foreign key {fk[0]} -> {fk[1]} on delete {fk[3]}"))
    for fk in sorted((fb - fa).elements()):
        out.append(Difference(t, "structural", f"missing foreign key {fk[0]} -> {fk[1]} on delete {fk[3]}"))
    ia = {(i.unique, i.columns): i for i in a.indexes}
    ib = {(i.unique, i.columns): i for i in b.indexes}
    for key, idx in ib.items():
        got = ia.get(key)
        if got is None:
            out.append(Difference(t, "cosmetic", f"missing index {idx.name}"))
        elif got.name != idx.name:
            what = "unique constraint" if got.name.startswith("sqlite_autoindex_") else f"index {got.name}"
            out.append(Difference(t, "cosmetic", f"{what} instead of index {idx.name}"))
    out += [Difference(t, "cosmetic", f"extra index {idx.name}") for key, idx in ia.items() if key not in ib]
    return out


# -- the legacy journal --------------------------------------------------------------------------


def load_upstream(sql_root: Path) -> dict[str, Any]:
    path = sql_root / UPSTREAM_FILE
    if not path.is_file():
        return {"steps": [], "withdrawn": []}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def read_legacy_journal(conn: Any, sql_root: Path) -> tuple[tuple[LegacyRow, ...], int | None]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (LEGACY_JOURNAL,)).fetchone()
    if not exists:
        return (), None
    upstream = load_upstream(sql_root)
    entries = upstream["steps"] + upstream["withdrawn"]
    by_hash = {h: e for e in entries for h in e["hashes"]}
    by_when = {e["when"]: e for e in entries}
    by_tag = {e["tag"]: e for e in entries}
    rows: list[LegacyRow] = []
    newest: int | None = None
    for hash_, created_at in conn.execute(f'SELECT hash, created_at FROM "{LEGACY_JOURNAL}" ORDER BY rowid'):
        entry = by_hash.get(hash_) or by_tag.get(hash_)
        if entry is None and isinstance(created_at, int | float):
            entry = by_when.get(int(created_at))
        rows.append(LegacyRow(str(hash_), created_at, entry["tag"] if entry else None))
        if entry is not None:
            newest = max(newest or 0, int(entry["version"]))
    return tuple(rows), newest


# -- deciding ------------------------------------------------------------------------------------


def agor_tables(refs: list[Reference]) -> set[str]:
    return {t.name for ref in refs for t in ref.schema.tables}


def assess(conn: Any, migrations: list[Migration], sql_root: Path, *, adopt_as: int | None = None) -> Assessment:
    """Decide which archived steps a journal-less SQLite database already has. Reads only."""
    refs = build_references(migrations, sql_root)
    kinds = load_kinds(sql_root)
    live = introspect_sqlite(conn, kinds)
    live_sql = {
        name: sql
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")
        if sql is not None
    }
    legacy, says = read_legacy_journal(conn, sql_root)
    known = agor_tables(refs)
    present = {t.name for t in live.tables}
    if len(present & known) * 2 < len(known):
        found = ", ".join(sorted(present)) or "none"
        raise AdoptionRefused(
            f"this SQLite database is not an Agor database (its tables: {found}); nothing was changed",
            hint="check --database-url; agor-db only adopts databases that hold Agor's tables",
        )
    scored = _scored(refs, live, live_sql)
    best_structural, _, _, best, best_diffs = scored[0]
    notes: list[str] = []
    if adopt_as is not None:
        return _adopted_as(adopt_as, scored, refs, legacy, says)

    if best_structural:
        lines = "\n".join(f"  - {d.line}" for d in best_diffs if d.kind == "structural")
        evidence = f"; its drizzle journal says {says:04d}" if says is not None else ""
        raise AdoptionRefused(
            f"this SQLite database has Agor tables but matches no archived step; nearest is "
            f"{best.migration.id}{evidence}. Structural differences:\n{lines}\nnothing was changed",
            hint=f"if you know which step it is at, run agor-db migrate --adopt-as VERSION "
            f"(e.g. --adopt-as {best.migration.version:04d}) after reading these differences",
        )
    if says is not None and says != best.migration.version:
        notes.append(
            f"the legacy journal says {says:04d} but the schema is at {best.migration.version:04d}; the schema decides"
        )
    if any(d.kind == "withdrawn" for d in best_diffs):
        notes.append(
            "columns from the withdrawn upstream 0006/0007 are present; 0009 rebuilds those tables without "
            "them (their values reset to the 0 default, as upstream did)"
        )
    return _result(
        legacy, says, best, best_diffs, refs, _tables_to_repair(best_diffs), notes=notes, nearest=best.migration.version
    )


_Score = tuple[int, int, int, Reference, list[Difference]]


def _scored(refs: list[Reference], live: Schema, live_sql: dict[str, str]) -> list[_Score]:
    """Every archived step against the live schema, best first: fewest structural, then cosmetic
    differences, then the newest step."""
    scored: list[_Score] = []
    for ref in refs:
        diffs = classify(live, ref, live_sql)
        structural = sum(d.kind == "structural" for d in diffs)
        cosmetic = sum(d.kind == "cosmetic" for d in diffs)
        scored.append((structural, cosmetic, -ref.migration.version, ref, diffs))
    scored.sort(key=lambda s: s[:3])
    return scored


def _adopted_as(
    adopt_as: int, scored: list[_Score], refs: list[Reference], legacy: tuple[LegacyRow, ...], says: int | None
) -> Assessment:
    """--adopt-as: the operator's step for a schema that matches none; refused when one matches."""
    best_structural, _, _, best, _ = scored[0]
    notes: list[str] = []
    chosen = next((s for s in scored if s[3].migration.version == adopt_as), None)
    if chosen is None:
        versions = ", ".join(f"{r.migration.version:04d}" for r in refs)
        raise UsageError(
            f"--adopt-as {adopt_as:04d}: there is no archived SQLite migration with that version "
            f"(there are {versions})"
        )
    if not best_structural and best.migration.version != adopt_as:
        # The override is for a schema that matches no step. Overruling a match records steps the
        # file has not got (or skips ones it has), and the next migration fails on it forever.
        raise AdoptionRefused(
            f"--adopt-as {adopt_as:04d}: this database's schema is at {best.migration.id} "
            "(the schema decides); nothing was changed",
            hint="run agor-db migrate without --adopt-as",
        )
    ref, diffs = chosen[3], chosen[4]
    repair = _tables_to_repair(diffs) if not any(d.kind == "structural" for d in diffs) else ()
    if any(d.kind == "structural" for d in diffs):
        notes.append("adopting despite structural differences, as the operator decided; nothing is repaired")
    return _result(legacy, says, ref, diffs, refs, repair, forced=True, notes=notes, nearest=best.migration.version)


def _tables_to_repair(diffs: list[Difference]) -> tuple[str, ...]:
    return tuple(sorted({d.table for d in diffs if d.kind == "cosmetic"}))


def _result(
    legacy: tuple[LegacyRow, ...],
    says: int | None,
    ref: Reference,
    diffs: list[Difference],
    refs: list[Reference],
    repair: tuple[str, ...],
    *,
    forced: bool = False,
    notes: list[str],
    nearest: int | None,
) -> Assessment:
    version = ref.migration.version
    adopt = tuple(r.migration for r in refs if r.migration.version <= version)
    return Assessment(legacy, says, version, tuple(diffs), nearest, adopt, repair, forced, tuple(notes), ref)


# -- acting --------------------------------------------------------------------------------------


def backup(path: Path, conn: Any) -> Path:
    """A consistent copy next to the database through SQLite's online backup API (works in WAL mode).

    Refuses first when the database itself cannot be written: a backup before a write that must fail
    would only leave a stray copy behind."""
    import apsw

    if conn.readonly("main"):
        raise DatabaseError(
            f"cannot adopt {path}: the file is read-only for this user; nothing was changed",
            hint="make the file and its directory writable for this user, or run agor-db as the user that owns it",
        )
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.backup-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.backup-{stamp}-{n}")
    try:
        dest = apsw.Connection(str(target))
        try:
            with dest.backup("main", conn, "main") as b:
                while not b.done:
                    b.step(1024)
        finally:
            dest.close()
    except apsw.Error as exc:
        # a directory that is not writable, a full disk: a half-written copy is worse than none
        target.unlink(missing_ok=True)
        raise DatabaseError(
            f"cannot write the backup {target} before adopting {path} ({exc}); nothing was changed",
            hint="make the directory holding the database writable and give it free space, "
            "or pass --no-backup if you have a copy of your own",
        ) from None
    return target


def table_digest(conn: Any, table: str, columns: list[str]) -> tuple[int, str]:
    """Row count and a content hash over the given columns, in rowid order (rowids are kept by a repair)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    h = hashlib.sha256()
    n = 0
    for row in conn.execute(f'SELECT rowid, {cols} FROM "{table}" ORDER BY rowid'):
        h.update(repr(tuple(row)).encode())
        n += 1
    return n, h.hexdigest()


def repair_statements(ref: Reference, table: str, live_columns: list[str]) -> list[str]:
    """The rebuild of ``table`` into ``ref``'s canonical DDL, keeping rowids and every shared column."""
    tmp = f"__agor_repair_{table}"
    create = re.sub(
        r'^\s*CREATE\s+TABLE\s+(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|\S+)',
        f'CREATE TABLE "{tmp}"',
        ref.table_sql[table],
        count=1,
        flags=re.IGNORECASE,
    )
    ref_table = ref.schema.table(table)
    assert ref_table is not None
    shared = [c.name for c in ref_table.columns if c.name in live_columns]
    cols = ", ".join(f'"{c}"' for c in shared)
    return [
        create,
        f'INSERT INTO "{tmp}" (rowid, {cols}) SELECT rowid, {cols} FROM "{table}"',
        f'DROP TABLE "{table}"',
        f'ALTER TABLE "{tmp}" RENAME TO "{table}"',
        *ref.index_sql.get(table, []),
    ]


def fk_census(conn: Any) -> Counter[tuple[str, str]]:
    """Foreign-key violations counted per (child table, parent table)."""
    return Counter((row[0], row[2]) for row in conn.execute("PRAGMA foreign_key_check"))


def perform(conn: Any, assessment: Assessment, *, repair: bool) -> list[str]:
    """Inside the caller's transaction (foreign keys already off): rebuild the cosmetically
    different tables into canonical form, verifying every table's rows and values. Returns what was done."""
    import apsw

    done: list[str] = []
    if not repair or not assessment.repair:
        return done
    ref = assessment.reference
    assert ref is not None
    before_fk = fk_census(conn)
    for table in assessment.repair:
        live_columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        ref_table = ref.schema.table(table)
        assert ref_table is not None
        shared = [c.name for c in ref_table.columns if c.name in live_columns]
        before = table_digest(conn, table, shared)
        try:
            for sql in repair_statements(ref, table, live_columns):
                conn.execute(sql)
        except apsw.ConstraintError as exc:
            # e.g. a NULL primary key (the bootstrap DDL allowed it) or duplicates under a unique index
            reason = str(exc).removeprefix("ConstraintError: ").replace(f"__agor_repair_{table}", table)
            raise AdoptionRefused(
                f"cannot repair {table} into the canonical form of {ref.migration.id}: its rows break a "
                f"constraint of that form ({reason}); rolled back, nothing was changed",
                hint=f"fix those rows of {table} first, or run agor-db migrate --no-repair to adopt it as it is",
            ) from None
        after = table_digest(conn, table, shared)
        if before != after:
            raise AdoptionRefused(
                f"repairing {table} would change its data ({before[0]} rows before, {after[0]} after); "
                "rolled back, nothing was changed"
            )
        done.append(
            f"repaired {table}: rebuilt into the canonical form of {ref.migration.id}, {after[0]} rows verified"
        )
    new = fk_census(conn) - before_fk
    if new:
        shown = ", ".join(f"{c} -> {p}: {n}" for (c, p), n in sorted(new.items()))
        raise AdoptionRefused(f"repair would create foreign-key violations ({shown}); rolled back, nothing was changed")
    return done

