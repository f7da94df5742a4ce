"""Concurrent index builds in ``-- transactional: false`` migrations: what they build, and whether it is valid.

A ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX ... CONCURRENTLY``) that fails or is interrupted leaves an
index marked invalid (``pg_index.indisvalid = false``): never used by queries, still maintained on
writes. ``IF NOT EXISTS`` would skip it on the next run, so leftovers are dropped before the file runs
again, and a migration is journaled only when every index it builds is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..core.errors import MigrationFailed
from ..core.models import Script
from ..core.sqltext import LEADING_COMMENTS

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QUALIFIED = rf"{_NAME}(?:\s*\.\s*{_NAME})?"
_CREATE = re.compile(
    rf"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<index>{_QUALIFIED})\s+"
    rf"ON\s+(?:ONLY\s+)?(?P<table>{_QUALIFIED})",
    re.IGNORECASE,
)
_REINDEX = re.compile(
    rf"REINDEX\s+(?:\([^)]*\)\s*)?INDEX\s+CONCURRENTLY\s+(?P<index>{_QUALIFIED})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class IndexBuild:
    """An index a statement builds concurrently, named as SQL (quoted as in the file, schema-qualified
    when the file qualified the table: an unqualified index goes to its table's schema)."""

    name: str
    reindex: bool  # REINDEX CONCURRENTLY: its leftovers are <name>_ccnew* indexes beside it


def index_builds(script: Script) -> list[IndexBuild]:
    builds: list[IndexBuild] = []
    for st in script.statements:
        sql = LEADING_COMMENTS.sub("", st.sql, count=1)
        m = _CREATE.match(sql)
        if m:
            index, table = m["index"], m["table"]
            if "." not in _unquoted_dots(index) and "." in _unquoted_dots(table):
                index = table[: _unquoted_dots(table).index(".")] + "." + index
            builds.append(IndexBuild(_compact(index), reindex=False))
            continue
        m = _REINDEX.match(sql)
        if m:
            builds.append(IndexBuild(_compact(m["index"]), reindex=True))
    return builds


def _unquoted_dots(name: str) -> str:
    """``name`` with quoted parts blanked, so that a dot inside quotes is not taken as a separator."""
    return re.sub(r'"(?:[^"]|"")*"', lambda q: "_" * len(q.group()), name)


def _compact(name: str) -> str:
    return re.sub(r"\s*\.\s*", ".", name) if '"' not in name else name


_STATE = """
SELECT format('%%I.%%I', n.nspname, c.relname), i.indisvalid
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indexrelid = to_regclass(%s)
"""
_CCNEW = """
SELECT format('%%I.%%I', n.nspname, c.relname)
FROM pg_index t JOIN pg_class tc ON tc.oid = t.indexrelid
JOIN pg_index i ON i.indrelid = t.indrelid AND NOT i.indisvalid
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.indexrelid = to_regclass(%s) AND left(c.relname, length(tc.relname) + 6) = tc.relname || '_ccnew'
"""


def invalid_leftovers(conn: Any, builds: list[IndexBuild]) -> list[str]:
    """Invalid indexes a failed or interrupted earlier run of these builds left behind (qualified names)."""
    found: list[str] = []
    for b in builds:
        if b.reindex:
            found += [r[0] for r in conn.execute(_CCNEW, (b.name,)).fetchall()]
        else:
            row = conn.execute(_STATE, (b.name,)).fetchone()
            if row is not None and not row[1]:
                found.append(row[0])
    return found


def unfinished_builds(conn: Any, builds: list[IndexBuild]) -> list[str]:
    """After the statements ran: the builds that did not end in a valid index, described."""
    bad: list[str] = []
    for b in builds:
        row = conn.execute(_STATE, (b.name,)).fetchone()
        if row is None:
            bad.append(f"index {b.name} does not exist")
        elif not row[1]:
            bad.append(f"index {row[0]} is INVALID (pg_index.indisvalid = false)")
        if b.reindex:
            bad += [f"index {name} is an invalid leftover of the rebuild" for name in invalid_leftovers(conn, [b])]
    return bad


def invalid_built(script: Script, problems: list[str]) -> MigrationFailed:
    listed = "\n".join(f"  - {p}" for p in problems)
    return MigrationFailed(
        f"migration {script.migration.label} ran every statement, but what it built concurrently is not usable:\n"
        f"{listed}\n"
        "it is NOT transactional: its statements stay applied; it was not journaled, so it runs again next time "
        "(agor-db then drops the invalid index first and builds it again).",
        hint="look for what made the build fail (a duplicate key for a UNIQUE index, a cancelled build), "
        f"fix it, and run agor-db migrate again; {script.migration.path} is unchanged",
    )
