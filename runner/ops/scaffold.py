"""``agor-db new``: create the next migration as a pair of files, one per dialect folder."""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import AgorDbError, UsageError
from ..core.source import FILE_NAME, list_migrations
from ..core.urls import DatabaseUrl

DIALECTS = ("sqlite", "postgres")

HEADER = """\
-- {stem} ({dialect})
--
-- Pair rule: sql/{other}/{stem}.sql makes the same schema change for {other_title}.
-- Keep the two files equivalent; `agor-db check` compares the schemas they produce.
-- Optional directives go on their own comment lines at the top of the file:
--   "transactional: false" runs the file outside a transaction (e.g. CREATE INDEX CONCURRENTLY),
--   "depends: <earlier migration>" names a migration this one needs.
-- Once applied anywhere, never edit this file; write a new migration instead.

"""


def slug(name: str) -> str:
    stripped = name.strip()
    stripped = stripped[: -len(".sql")] if stripped.lower().endswith(".sql") else stripped
    cleaned = re.sub(r"[^A-Za-z0-9_\-]+", "_", stripped).strip("_-").lower()
    if not cleaned:
        raise UsageError(f"migration name {name!r} has no letters or digits", hint="e.g. agor-db new add_session_tags")
    if re.match(r"\d+_", cleaned):
        # "0011_add_tags" would become 0011_0011_add_tags.sql (or worse, another number than the one typed)
        raise UsageError(
            f"migration name {name!r} starts with a version number; agor-db new numbers the pair itself",
            hint=f"give only the name: agor-db new {cleaned.split('_', 1)[1] or 'add_session_tags'}",
        )
    return cleaned


def next_stem(root: Path, name: str) -> str:
    """The next pair's file stem (NNNN_name); refuses the installed copy of sql/."""
    if "site-packages" in root.parts or "dist-packages" in root.parts:
        raise UsageError(
            f"{root} is the copy of sql/ installed with agor-db; new migrations belong in the source tree",
            hint="run from a checkout of agor-db, or pass --sql-dir PATH/TO/sql",
        )
    highest = -1
    for dialect in DIALECTS:
        folder = root / dialect
        if folder.is_dir():
            highest = max([highest] + [m.version for m in list_migrations(folder)])
    stem = f"{highest + 1:04d}_{slug(name)}"
    if not FILE_NAME.match(stem + ".sql"):
        raise UsageError(f"cannot make a valid file name from {name!r}")
    return stem


def refresh_snapshots(root: Path, server: DatabaseUrl | None) -> list[str]:
    """Write sql/schema/*.sql from the folders as they stand, so the new pair's review shows only its
    own schema change. SQLite needs nothing; PostgreSQL needs a server (else: said, not written)."""
    from ..schema.model import load_kinds
    from ..schema.scratch import postgres_schema, sqlite_schema
    from ..schema.snapshot import reconcile

    kinds = load_kinds(root)
    tops = {d: _top(root / d) for d in DIALECTS}
    built: dict[str, str] = {}
    notes: list[str] = []
    try:
        built["sqlite"] = sqlite_schema(root, kinds, tops["sqlite"])[1]
    except AgorDbError as exc:
        notes.append(f"schema/sqlite.sql: not refreshed; sqlite/ does not build: {exc.message.splitlines()[0]}")
    if server is None:
        notes.append("schema/postgres.sql: not refreshed (no PostgreSQL server; pass --database-url)")
    else:
        try:
            built["postgres"] = postgres_schema(server, root, kinds, tops["postgres"])[1]
        except AgorDbError as exc:
            notes.append(f"schema/postgres.sql: not refreshed: {exc.message.splitlines()[0]}")
    problems, written = reconcile(root, built, write_files=True)
    return written + notes + problems


def _top(folder: Path) -> str:
    found = list_migrations(folder) if folder.is_dir() else []
    return found[-1].path.stem if found else ""


def new_pair(root: Path, name: str, stem: str | None = None) -> list[Path]:
    stem = stem or next_stem(root, name)
    created: list[Path] = []
    for dialect in DIALECTS:
        folder = root / dialect
        folder.mkdir(parents=True, exist_ok=True)
        other = DIALECTS[1 - DIALECTS.index(dialect)]
        path = folder / f"{stem}.sql"
        path.write_text(
            HEADER.format(
                stem=stem, dialect=dialect, other=other, other_title="PostgreSQL" if other == "postgres" else "SQLite"
            )
        )
        created.append(path)
    return created
