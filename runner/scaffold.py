"""``agor-db new``: create the next migration as a pair of files, one per dialect folder."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import UsageError
from .source import FILE_NAME, list_migrations

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
    cleaned = re.sub(r"[^A-Za-z0-9_\-]+", "_", name.strip()).strip("_-").lower()
    if not cleaned:
        raise UsageError(f"migration name {name!r} has no letters or digits", hint="e.g. agor-db new add_session_tags")
    return cleaned


def new_pair(root: Path, name: str) -> list[Path]:
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
