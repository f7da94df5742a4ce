"""Committed schema snapshots: ``sql/schema/postgres.sql`` and ``sql/schema/sqlite.sql``.

Each is the schema its migration folder builds, rendered as plain SQL a reviewer can read in a diff:
stable order (tables by name, each followed by its indexes; foreign keys last on PostgreSQL so the
file applies in one go), no server version, no timestamps, and the migration bookkeeping tables left
out. Applying a snapshot to an empty database gives the same schema again (the tests prove it).

``check`` renders both from its scratch databases and compares them with the committed files;
``check --write`` (and ``new``) write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import IGNORED_TABLES

SNAPSHOT_DIR = "schema"
# The copier's run log lives beside Agor's tables but is agor-db's, like the journal.
LEFT_OUT = IGNORED_TABLES | {"agor_copy_runs"}
HEADER = (
    "-- The schema sql/{dialect}/ builds up to {top}, written by `agor-db check --write`; do not edit.\n"
    "-- It changes with every migration pair, so a review shows the schema diff beside the SQL.\n"
)


def snapshot_path(root: Path, dialect: str) -> Path:
    return root / SNAPSHOT_DIR / f"{dialect}.sql"


def _header(dialect: str, top: str) -> str:
    return HEADER.format(dialect=dialect, top=top or "(no migrations)")


# -- SQLite --------------------------------------------------------------------------------------


def render_sqlite(conn: Any, top: str) -> str:
    """sqlite_master's own CREATE statements, as SQLite stored them (rebuilds and renames included)."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    ).fetchall()
    rank = {"table": 0, "index": 1, "trigger": 2, "view": 3}
    kept = [r for r in rows if r[2] not in LEFT_OUT]
    tables = sorted(r[1] for r in kept if r[0] == "table")
    blocks: list[str] = []
    for table in tables:
        own = sorted((r for r in kept if r[2] == table and r[0] != "view"), key=lambda r: (rank[r[0]], r[1]))
        blocks.append("\n".join(f"{r[3].strip()};" for r in own))
    views = sorted((r for r in kept if r[0] == "view"), key=lambda r: r[1])
    blocks += [f"{r[3].strip()};" for r in views]
    return _header("sqlite", top) + "\n" + "\n\n".join(blocks) + ("\n" if blocks else "")


# -- PostgreSQL ----------------------------------------------------------------------------------

_PG_TABLES = """
SELECT c.oid, c.relname, quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""
_PG_COLUMNS = """
SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       a.attidentity, a.attgenerated
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_PG_CONSTRAINTS = """
SELECT quote_ident(conname), contype, pg_get_constraintdef(oid, true) FROM pg_constraint
WHERE conrelid = %s ORDER BY position(contype IN 'pucxf'), conname
"""
_PG_INDEXES = """
SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid
      AND k.conrelid = x.indrelid) ORDER BY i.relname
"""
_PG_SEQUENCES = """
SELECT quote_ident(c.relname), format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       (SELECT ARRAY[t.relname::text, quote_ident(t.relname), quote_ident(a.attname)] FROM pg_depend d
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype = 'a')
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema()
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'i')
ORDER BY c.relname
"""
_PG_ENUMS = """
SELECT quote_ident(t.typname), array_agg(quote_literal(e.enumlabel) ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = current_schema() GROUP BY t.typname ORDER BY t.typname
"""
_PG_VIEWS = """
SELECT quote_ident(c.relname), pg_get_viewdef(c.oid, true) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'v' ORDER BY c.relname
"""
_PG_FUNCTIONS = """
SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = current_schema() AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
"""
_PG_TRIGGERS = """
SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT t.tgisinternal ORDER BY c.relname, t.tgname
"""


def _unqualify(sql: str, schema: str) -> str:
    """pg_get_*def qualifies names with the schema; the snapshot holds the schema-free form."""
    return sql.replace(f" {schema}.", " ").replace(f"({schema}.", "(")


def _column(row: tuple[Any, ...]) -> str:
    name, ctype, notnull, default, identity, generated = row
    parts = [f"    {name} {ctype}"]
    if generated == "s":
        parts.append(f"GENERATED ALWAYS AS ({default}) STORED")
    elif identity:
        parts.append(f"GENERATED {'ALWAYS' if identity == 'a' else 'BY DEFAULT'} AS IDENTITY")
    elif default is not None:
        parts.append(f"DEFAULT {default}")
    if notnull:
        parts.append("NOT NULL")
    return " ".join(parts)


def render_postgres(conn: Any, top: str) -> str:
    schema = str(conn.execute("SELECT current_schema()").fetchone()[0])
    blocks: list[str] = []
    owned: list[str] = []
    for typname, labels in conn.execute(_PG_ENUMS).fetchall():
        blocks.append(f"CREATE TYPE {typname} AS ENUM ({', '.join(labels)});")
    for name, seqtype, start, increment, owner in conn.execute(_PG_SEQUENCES).fetchall():
        if owner and owner[0] in LEFT_OUT:
            continue
        blocks.append(f"CREATE SEQUENCE {name} AS {seqtype} START WITH {start} INCREMENT BY {increment};")
        if owner:
            owned.append(f"ALTER SEQUENCE {name} OWNED BY {owner[1]}.{owner[2]};")
    for fndef in conn.execute(_PG_FUNCTIONS).fetchall():
        blocks.append(_unqualify(fndef[0].strip(), schema) + ";")
    foreign: list[str] = []
    for oid, raw, table in conn.execute(_PG_TABLES).fetchall():
        if raw in LEFT_OUT:
            continue
        lines = [_column(r) for r in conn.execute(_PG_COLUMNS, (oid,)).fetchall()]
        for conname, contype, condef in conn.execute(_PG_CONSTRAINTS, (oid,)).fetchall():
            text = f"ALTER TABLE {table} ADD CONSTRAINT {conname} {_unqualify(condef, schema)};"
            if contype == "f":
                foreign.append(text)
            else:
                lines.append(f"    CONSTRAINT {conname} {_unqualify(condef, schema)}")
        block = [f"CREATE TABLE {table} (\n" + ",\n".join(lines) + "\n);"]
        block += [_unqualify(d, schema) + ";" for _n, d in conn.execute(_PG_INDEXES, (oid,)).fetchall()]
        blocks.append("\n".join(block))
    for name, viewdef in conn.execute(_PG_VIEWS).fetchall():
        blocks.append(f"CREATE VIEW {name} AS\n{_unqualify(viewdef.strip().rstrip(';'), schema)};")
    tail = owned + foreign + [_unqualify(t[0], schema) + ";" for t in conn.execute(_PG_TRIGGERS).fetchall()]
    if tail:
        blocks.append("\n".join(tail))
    return _header("postgres", top) + "\n" + "\n\n".join(blocks) + ("\n" if blocks else "")


# -- comparing with the committed files ----------------------------------------------------------


@dataclass(frozen=True)
class Staleness:
    path: Path
    line: int  # first differing line, 1-based; 0 when the file is missing
    committed: str | None
    built: str | None


def compare(path: Path, rendered: str) -> Staleness | None:
    """None when the committed file equals what the folder builds (line endings aside)."""
    if not path.is_file():
        return Staleness(path, 0, None, None)
    try:
        committed = path.read_text(encoding="utf-8").replace("\r\n", "\n").splitlines()
    except (OSError, UnicodeDecodeError):
        return Staleness(path, 1, "(unreadable)", rendered.splitlines()[0] if rendered else None)
    built = rendered.splitlines()
    first: Staleness | None = None
    for n in range(max(len(committed), len(built))):
        a = committed[n] if n < len(committed) else None
        b = built[n] if n < len(built) else None
        if a == b:
            continue
        found = Staleness(path, n + 1, a, b)
        # a changed header comment (the folder's top version) says little: show the first schema line
        if not _is_comment(a) or not _is_comment(b):
            return found
        first = first or found
    return first


def _is_comment(line: str | None) -> bool:
    return line is not None and line.lstrip().startswith("--")


def describe(stale: Staleness, label: str, command: str) -> str:
    if stale.line == 0:
        return f"{label}: missing; run {command}"
    committed = "(end of file)" if stale.committed is None else repr(stale.committed.strip())
    built = "(end of file)" if stale.built is None else repr(stale.built.strip())
    return f"{label}:{stale.line}: stale; the file says {committed}, the folder builds {built}; run {command}"


def write(path: Path, rendered: str) -> bool:
    """Write the snapshot if it differs; True when the file changed. Atomic: a reader never sees half."""
    if path.is_file() and path.read_text(encoding="utf-8") == rendered:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(rendered, encoding="utf-8")
    tmp.replace(path)
    return True


WRITE_COMMAND = "agor-db check --write"


def reconcile(root: Path, built: dict[str, str], *, write_files: bool) -> tuple[list[str], list[str]]:
    """Compare (or with ``write_files`` write) each dialect's snapshot; (problems, notes)."""
    problems: list[str] = []
    notes: list[str] = []
    for dialect, rendered in built.items():
        path = snapshot_path(root, dialect)
        label = f"{SNAPSHOT_DIR}/{path.name}"
        if write_files:
            try:
                changed = write(path, rendered)
            except OSError as exc:
                problems.append(f"{label}: cannot write: {exc.strerror or exc}")
                continue
            notes.append(f"{label}: {'written' if changed else 'up to date'}")
            continue
        stale = compare(path, rendered)
        if stale is not None:
            problems.append(describe(stale, label, WRITE_COMMAND))
    return problems, notes
