"""A dialect-neutral model of a database schema, read from a live SQLite or PostgreSQL database,
and the comparison `agor-db check` uses to prove both migration folders build the same schema.

The model keeps what each database reports (declared type, default text) beside a normalised view
(column *kind*, normalised default) so it can both print faithfully and compare across dialects.

Type map (which declared types may hold each kind; SQLite reports standard names upper-cased since
3.37, so declared types are compared lower-cased)::

    kind      meaning                    sqlite      postgres
    id36      36-char UUID string        text(36)    character varying(36)
    text      any other text             text        text
    json      JSON document              text        jsonb
    boolean   0/1 flag                   integer     boolean
    epoch_ms  milliseconds since 1970    integer     bigint
    integer   count or position          integer     integer, bigint

SQLite's types cannot tell a boolean or a timestamp from an integer, so a column's kind comes from
``sql/column-kinds.toml`` (shipped with the migrations, keyed by table and column) and, for columns it
does not list, from the declared type. Defaults are compared after normalisation under the kind:
``0``/``false`` are the same boolean, ``'[]'::jsonb`` is the JSON text ``'[]'``, casts are dropped.

Cosmetic differences ``diff`` ignores: column order, the spelling of a type within its kind, how a
default is written, and indexes that only back a primary key (the key itself is compared).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Bookkeeping tables of migration tools: never part of the application schema.
IGNORED_TABLES = frozenset(
    {"agor_migrations", "__drizzle_migrations", "_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"}
)
KINDS_FILE = "column-kinds.toml"
DIFFERENCES_FILE = "differences.toml"

TYPE_MAP: dict[str, dict[str, frozenset[str]]] = {
    "id36": {"sqlite": frozenset({"text(36)"}), "postgres": frozenset({"character varying(36)"})},
    "text": {"sqlite": frozenset({"text"}), "postgres": frozenset({"text"})},
    "json": {"sqlite": frozenset({"text"}), "postgres": frozenset({"jsonb"})},
    "boolean": {"sqlite": frozenset({"integer"}), "postgres": frozenset({"boolean"})},
    "epoch_ms": {"sqlite": frozenset({"integer"}), "postgres": frozenset({"bigint"})},
    "integer": {"sqlite": frozenset({"integer"}), "postgres": frozenset({"integer", "bigint"})},
}

Kinds = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # declared type as the database reports it, lower-cased: text(36), integer, jsonb
    kind: str  # neutral kind: see TYPE_MAP; "other" when nothing says
    notnull: bool
    default: str | None  # default expression as the database reports it
    pk: int = 0  # 1-based position in the primary key, 0 when not part of it

    @property
    def normal_default(self) -> str | None:
        return normalise_default(self.default, self.kind)


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_update: str  # NO ACTION, RESTRICT, CASCADE, SET NULL, SET DEFAULT
    on_delete: str

    def render(self) -> str:
        return (
            f"-> {self.ref_table}({', '.join(self.ref_columns)}) on update {self.on_update} on delete {self.on_delete}"
        )


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]  # an expression part shows as its SQL text
    unique: bool
    partial: bool = False

    def render(self) -> str:
        head = ("unique " if self.unique else "") + ("partial " if self.partial else "") + "index"
        return f"{head} ({', '.join(self.columns)})"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = ()

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(c.name for c in sorted((c for c in self.columns if c.pk), key=lambda c: c.pk))

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Schema:
    dialect: str
    tables: tuple[Table, ...] = field(default=())

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)


# -- kinds ---------------------------------------------------------------------------------------


def load_kinds(sql_root: Path | None = None) -> dict[str, dict[str, str]]:
    """``sql/column-kinds.toml`` as {table: {column: kind}}; empty when the file is absent."""
    if sql_root is None:
        from ..core.source import bundled_sql_root

        sql_root = bundled_sql_root()
    path = sql_root / KINDS_FILE
    if not path.is_file():
        return {}
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    return {str(t): {str(c): str(k) for c, k in cols.items()} for t, cols in raw.items() if isinstance(cols, dict)}


def kind_of(kinds: Kinds, table: str, column: str, declared: str) -> str:
    listed = kinds.get(table, {}).get(column)
    if listed:
        return listed
    t = declared.lower().replace(" ", "")
    if t in ("text(36)", "varchar(36)", "charactervarying(36)", "char(36)", "uuid"):
        return "id36"
    if t in ("json", "jsonb"):
        return "json"
    if t in ("boolean", "bool"):
        return "boolean"
    if "int" in t:
        return "integer"
    if "char" in t or "text" in t or "clob" in t:
        return "text"
    return "other"


_CAST = re.compile(r"^(?P<expr>.*?)::[a-z_ ]+(\(\d+(,\d+)?\))?(\[\])?$", re.IGNORECASE | re.DOTALL)


def normalise_default(raw: str | None, kind: str) -> str | None:
    """The default as a value of ``kind``, spelled one way: casts and parentheses dropped,
    booleans as false/true, JSON re-serialised compactly, numbers as plain integers."""
    if raw is None:
        return None
    text = raw.strip()
    while True:
        m = _CAST.match(text)
        if m and not text.endswith("'"):
            text = m.group("expr").strip()
            continue
        if text.startswith("(") and text.endswith(")"):
            text = text[1:-1].strip()
            continue
        break
    if text.upper() == "NULL":
        return None
    literal = _unquote(text)
    if kind == "boolean":
        value = (literal if literal is not None else text).lower()
        if value in ("0", "false", "f", "no", "off"):
            return "false"
        if value in ("1", "true", "t", "yes", "on"):
            return "true"
        return text.lower()
    if kind == "json" and literal is not None:
        try:
            return _quote(json.dumps(json.loads(literal), separators=(",", ":"), sort_keys=True))
        except ValueError:
            return text
    if kind in ("integer", "epoch_ms") and re.fullmatch(r"[+-]?\d+", literal if literal is not None else text):
        return str(int(literal if literal is not None else text))
    return _quote(literal) if literal is not None else text


def _unquote(text: str) -> str | None:
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- SQLite --------------------------------------------------------------------------------------


def introspect_sqlite(conn: Any, kinds: Kinds | None = None, ignore: Iterable[str] = IGNORED_TABLES) -> Schema:
    """Read an apsw (or sqlite3) connection's schema with PRAGMA table_info / foreign_key_list /
    index_list / index_info. Indexes SQLite made for a PRIMARY KEY are left out (the key is on the columns)."""
    kinds = load_kinds() if kinds is None else kinds
    skip = set(ignore)
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name"
        ).fetchall()
    ]
    tables: list[Table] = []
    for t in names:
        if t in skip:
            continue
        q = _sqlite_ident(t)
        columns = tuple(
            Column(
                name=name,
                type=(ctype or "").lower(),
                kind=kind_of(kinds, t, name, ctype or ""),
                notnull=bool(notnull),
                default=dflt,
                pk=int(pk),
            )
            for _cid, name, ctype, notnull, dflt, pk in conn.execute(f"PRAGMA table_info({q})").fetchall()
        )
        grouped: dict[int, list[tuple[Any, ...]]] = {}
        for row in conn.execute(f"PRAGMA foreign_key_list({q})").fetchall():
            grouped.setdefault(int(row[0]), []).append(row)
        fks = []
        for rows in grouped.values():
            rows.sort(key=lambda r: r[1])
            # an FK without explicit target columns points at the parent's primary key
            ref_cols = tuple(r[4] for r in rows) if all(r[4] is not None for r in rows) else ()
            fks.append(
                ForeignKey(tuple(r[3] for r in rows), rows[0][2], ref_cols, rows[0][5].upper(), rows[0][6].upper())
            )
        indexes = []
        for _seq, iname, unique, origin, partial in conn.execute(f"PRAGMA index_list({q})").fetchall():
            if origin == "pk":
                continue
            info = conn.execute(f"PRAGMA index_xinfo({_sqlite_ident(iname)})").fetchall()
            cols = tuple((r[2] if r[2] is not None else "<expression>") for r in info if r[5])  # r[5]: key column
            indexes.append(Index(iname, cols, bool(unique), bool(partial)))
        tables.append(Table(t, columns, _sorted_fks(fks), tuple(sorted(indexes, key=lambda i: i.name))))
    return Schema("sqlite", tuple(tables))


def _sqlite_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sorted_fks(fks: Iterable[ForeignKey]) -> tuple[ForeignKey, ...]:
    return tuple(sorted(fks, key=lambda f: (f.columns, f.ref_table, f.ref_columns)))


# -- PostgreSQL ----------------------------------------------------------------------------------

_PG_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

_PG_COLUMNS = """
SELECT c.relname, a.attname, lower(format_type(a.atttypid, a.atttypmod)), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""

_PG_CONSTRAINTS = """
SELECT c.relname, k.contype, k.confupdtype, k.confdeltype, r.relname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class r ON r.oid = k.confrelid
WHERE n.nspname = current_schema() AND k.contype IN ('p', 'f')
"""

_PG_INDEXES = """
SELECT c.relname, i.relname, x.indisunique, x.indpred IS NOT NULL,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnkeyatts) k ORDER BY k)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT x.indisprimary
"""


def introspect_postgres(conn: Any, kinds: Kinds | None = None, ignore: Iterable[str] = IGNORED_TABLES) -> Schema:
    """Read a psycopg connection's current schema from pg_catalog. Indexes backing a primary key are
    left out (the key is on the columns), as on SQLite."""
    kinds = load_kinds() if kinds is None else kinds
    skip = set(ignore)
    cols: dict[str, list[tuple[str, str, bool, str | None]]] = {}
    for table, name, ctype, notnull, dflt in conn.execute(_PG_COLUMNS).fetchall():
        if table not in skip:
            cols.setdefault(table, []).append((name, ctype, notnull, dflt))
    pks: dict[str, list[str]] = {}
    fks: dict[str, list[ForeignKey]] = {}
    for table, contype, upd, dele, ref, conkey, confkey in conn.execute(_PG_CONSTRAINTS).fetchall():
        if table in skip:
            continue
        if contype == "p":
            pks[table] = list(conkey)
        else:
            fks.setdefault(table, []).append(
                ForeignKey(tuple(conkey), ref, tuple(confkey), _PG_ACTIONS[upd], _PG_ACTIONS[dele])
            )
    idx: dict[str, list[Index]] = {}
    for table, iname, unique, partial, keys in conn.execute(_PG_INDEXES).fetchall():
        if table not in skip:
            idx.setdefault(table, []).append(Index(iname, tuple(_pg_unquote(k) for k in keys), unique, partial))
    tables = []
    for t in sorted(cols):
        key = pks.get(t, [])
        columns = tuple(
            Column(
                name=name,
                type=ctype,
                kind=kind_of(kinds, t, name, ctype),
                notnull=bool(notnull),
                default=dflt,
                pk=key.index(name) + 1 if name in key else 0,
            )
            for name, ctype, notnull, dflt in cols[t]
        )
        tables.append(
            Table(t, columns, _sorted_fks(fks.get(t, [])), tuple(sorted(idx.get(t, []), key=lambda i: i.name)))
        )
    return Schema("postgres", tuple(tables))


def _pg_unquote(key: str) -> str:
    """pg_get_indexdef quotes reserved column names ("index"); the model holds bare names."""
    if len(key) >= 2 and key[0] == '"' and key[-1] == '"':
        return key[1:-1].replace('""', '"')
    return key


# -- rendering -----------------------------------------------------------------------------------


def render(schema: Schema) -> str:
    """Human-readable text: one block per table."""
    lines: list[str] = []
    for t in schema.tables:
        lines.append(f"table {t.name}")
        width = max((len(c.name) for c in t.columns), default=0)
        for c in t.columns:
            parts = [f"  {c.name:<{width}}  {c.kind:<8}  {c.type}"]
            if c.notnull:
                parts.append("NOT NULL")
            if c.default is not None:
                parts.append(f"DEFAULT {c.default}")
            lines.append(" ".join(parts))
        if t.primary_key:
            lines.append(f"  primary key ({', '.join(t.primary_key)})")
        for fk in t.foreign_keys:
            lines.append(f"  foreign key ({', '.join(fk.columns)}) {fk.render()}")
        for ix in t.indexes:
            lines.append(f"  {ix.render().replace('index', 'index ' + ix.name, 1)}")
        lines.append("")
    return "\n".join(lines)


def to_json(schema: Schema) -> dict[str, Any]:
    doc = asdict(schema)
    for t, table in zip(doc["tables"], schema.tables, strict=True):
        t["primary_key"] = list(table.primary_key)
        for c, col in zip(t["columns"], table.columns, strict=True):
            c["normal_default"] = col.normal_default
    return doc


def canonical(schema: Schema, *, cosmetic: bool = False) -> dict[str, Any]:
    """The schema reduced to what matters to an application, as plain data.

    Without ``cosmetic``: columns by name (order ignored), kind instead of declared type, normalised
    defaults; with it, column order, declared types and default spellings count too. The adoption
    check fingerprints this to recognise a known schema whatever tool made it.
    """
    tables: dict[str, Any] = {}
    for t in schema.tables:
        cols = [
            {
                "name": c.name,
                "kind": c.kind,
                "notnull": c.notnull,
                "default": c.normal_default,
                "pk": c.pk,
                **({"type": c.type, "raw_default": c.default} if cosmetic else {}),
            }
            for c in (t.columns if cosmetic else sorted(t.columns, key=lambda c: c.name))
        ]
        tables[t.name] = {
            "columns": cols,
            "foreign_keys": [asdict(f) for f in t.foreign_keys],
            "indexes": [asdict(i) for i in t.indexes],
        }
    return tables


def fingerprint(schema: Schema, *, cosmetic: bool = False) -> str:
    blob = json.dumps(canonical(schema, cosmetic=cosmetic), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# -- comparing SQLite with PostgreSQL ------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """One difference: what ``subject`` is on each side, as check prints it."""

    table: str
    what: str  # "table", "column", "primary key", "index", "foreign key"
    name: str  # column or index name, FK columns "(a, b)", or "" for table / primary key
    sqlite: str
    postgres: str

    @property
    def subject(self) -> str:
        if self.what == "table":
            return f"table {self.table}"
        if self.what == "column":
            return f"{self.table}.{self.name}"
        if self.what == "index":
            return f"{self.table} index {self.name}"
        if self.what == "foreign key":
            return f"{self.table} foreign key {self.name}"
        return f"{self.table} {self.what}"

    @property
    def line(self) -> str:
        return f"{self.subject}: sqlite {self.sqlite} vs postgres {self.postgres}"


@dataclass(frozen=True)
class ReviewedDifference:
    """An entry of sql/differences.toml."""

    mismatch: Mismatch
    reason: str
    violations: str | None = None


def load_differences(sql_root: Path) -> list[ReviewedDifference]:
    from ..core.errors import MigrationFileError

    path = sql_root / DIFFERENCES_FILE
    if not path.is_file():
        return []
    try:
        with open(path, "rb") as fh:
            entries = tomllib.load(fh).get("difference", [])
    except tomllib.TOMLDecodeError as exc:
        raise MigrationFileError(f"{path} is not valid TOML: {exc}") from None
    out = []
    for n, e in enumerate(entries, 1):
        missing = [k for k in ("table", "sqlite", "postgres", "reason") if not e.get(k)]
        if missing:
            raise MigrationFileError(f"{path}: difference #{n} lacks {', '.join(missing)}")
        if "column" in e:
            what, name = "column", e["column"]
        elif "index" in e:
            what, name = "index", e["index"]
        elif str(e.get("constraint", "")).startswith("foreign key"):
            what, name = "foreign key", e["constraint"][len("foreign key") :].strip()
        elif e.get("constraint") == "primary key":
            what, name = "primary key", ""
        else:
            what, name = "table", ""
        out.append(
            ReviewedDifference(
                Mismatch(e["table"], what, name, str(e["sqlite"]), str(e["postgres"])),
                str(e["reason"]),
                e.get("violations"),
            )
        )
    return out


def compare(
    sqlite: Schema, postgres: Schema, type_map: Mapping[str, Mapping[str, frozenset[str]]] = TYPE_MAP
) -> list[Mismatch]:
    """Every difference between the two schemas under the type map, in table order."""
    out: list[Mismatch] = []
    names = sorted({t.name for t in sqlite.tables} | {t.name for t in postgres.tables})
    for name in names:
        a, b = sqlite.table(name), postgres.table(name)
        if a is None or b is None:
            out.append(Mismatch(name, "table", "", "present" if a else "absent", "present" if b else "absent"))
            continue
        out.extend(_compare_columns(a, b, type_map))
        if a.primary_key != b.primary_key:
            out.append(Mismatch(name, "primary key", "", _cols(a.primary_key), _cols(b.primary_key)))
        out.extend(_compare_indexes(a, b))
        out.extend(_compare_fks(a, b))
    return out


def _cols(cols: tuple[str, ...]) -> str:
    return f"({', '.join(cols)})" if cols else "none"


def _compare_columns(a: Table, b: Table, type_map: Mapping[str, Mapping[str, frozenset[str]]]) -> list[Mismatch]:
    out = []
    for name in [c.name for c in a.columns] + [c.name for c in b.columns if a.column(c.name) is None]:
        ca, cb = a.column(name), b.column(name)
        if ca is None or cb is None:
            out.append(
                Mismatch(
                    a.name, "column", name, f"{ca.kind}({ca.type})" if ca else "absent", cb.type if cb else "absent"
                )
            )
            continue
        allowed = type_map.get(ca.kind, {})
        if (
            ca.kind != cb.kind
            or ca.type not in allowed.get("sqlite", frozenset())
            or cb.type not in allowed.get("postgres", frozenset())
        ):
            out.append(Mismatch(a.name, "column", name, f"{ca.kind}({ca.type})", cb.type))
        if ca.notnull != cb.notnull:
            out.append(Mismatch(a.name, "column", name, _nn(ca.notnull), _nn(cb.notnull)))
        da, db = ca.normal_default, normalise_default(cb.default, ca.kind)
        if da != db:
            out.append(Mismatch(a.name, "column", name, f"default {da or 'none'}", f"default {db or 'none'}"))
    return out


def _nn(notnull: bool) -> str:
    return "NOT NULL" if notnull else "nullable"


def _compare_indexes(a: Table, b: Table) -> list[Mismatch]:
    out = []
    ia, ib = {i.name: i for i in a.indexes}, {i.name: i for i in b.indexes}
    for name in sorted(set(ia) | set(ib)):
        x, y = ia.get(name), ib.get(name)
        if x != y:
            out.append(Mismatch(a.name, "index", name, x.render() if x else "absent", y.render() if y else "absent"))
    return out


def _compare_fks(a: Table, b: Table) -> list[Mismatch]:
    out = []
    fa = {(f.columns, f.ref_table): f for f in a.foreign_keys}
    fb = {(f.columns, f.ref_table): f for f in b.foreign_keys}
    for key in sorted(set(fa) | set(fb)):
        x, y = fa.get(key), fb.get(key)
        if x != y:
            out.append(
                Mismatch(
                    a.name, "foreign key", _cols(key[0]), x.render() if x else "absent", y.render() if y else "absent"
                )
            )
    return out


def diff(
    sqlite: Schema,
    postgres: Schema,
    type_map: Mapping[str, Mapping[str, frozenset[str]]] = TYPE_MAP,
    differences: Iterable[ReviewedDifference] = (),
) -> list[str]:
    """One line per difference not covered by a reviewed entry, then one per reviewed entry
    that matched nothing (a stale entry hides nothing and must go)."""
    reviewed = {d.mismatch: d for d in differences}
    found = compare(sqlite, postgres, type_map)
    lines = [m.line for m in found if m not in reviewed]
    seen = set(found)
    lines += [f"{DIFFERENCES_FILE}: stale entry, no such difference: {m.line}" for m in reviewed if m not in seen]
    return lines
