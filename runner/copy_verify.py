"""Content checksums computed on both sides of the copy, compared before COMMIT.

Per row: md5 over the canonical bytes of every copied column (JSON as PostgreSQL prints jsonb, so
key order and whitespace do not matter but every parsed value does); per table: the row count and
the sum of the rows' first 64 digest bits. A sum does not depend on row order, so the source is read
in rowid order while the server scans however it likes, and it computes its side itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .copy_convert import Converter, canonical_source
from .copy_schema import quote


@dataclass(frozen=True)
class Digest:
    rows: int
    total: int

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "sum": str(self.total)}


class RowHasher:
    """The source side: one call per loaded row with the values as they are sent to PostgreSQL."""

    def __init__(self, converters: tuple[Converter, ...]) -> None:
        self.rows = 0
        self.total = 0
        self._canon: tuple[Callable[[Any], str], ...] = tuple(canonical_source(c) for c in converters)
        self._row_text = _compile(self._canon)

    def add(self, values: tuple[Any, ...] | list[Any]) -> None:
        digest = hashlib.md5(self._row_text(values).encode("utf-8"), usedforsecurity=False).digest()
        self.total += int.from_bytes(digest[:8], "big", signed=True)
        self.rows += 1

    def digest(self) -> Digest:
        return Digest(self.rows, self.total)


def _compile(canon: tuple[Callable[[Any], str], ...]) -> Callable[[Any], str]:
    # One generated expression per table instead of a loop over columns: this runs for every row.
    parts = []
    for i, f in enumerate(canon):
        if f is str:
            parts.append(f"('\\x02' if v[{i}] is None else '\\x01' + str(v[{i}]) + '\\x00')")
        else:
            parts.append(f"('\\x02' if v[{i}] is None else '\\x01' + c{i}(v[{i}]) + '\\x00')")
    env = {f"c{i}": f for i, f in enumerate(canon)}
    source = "lambda v: " + (" + ".join(parts) if parts else "''")
    fn: Callable[[Any], str] = eval(source, env)  # built from column positions only
    return fn


def _server_value(conv: Converter) -> str:
    c = quote(conv.name)
    family = conv.family
    if family == "bool":
        text = f"CASE WHEN {c} THEN 't' ELSE 'f' END"
    elif family == "json":
        text = f"{c}::text"
    elif family in ("text",):
        text = c
    else:
        text = f"{c}::text"
    return f"coalesce('\\x01'::bytea || convert_to({text}, 'UTF8') || '\\x00'::bytea, '\\x02'::bytea)"


def server_digest_sql(table: str, converters: tuple[Converter, ...]) -> str:
    row = " || ".join(_server_value(c) for c in converters) or "''::bytea"
    return f"SELECT count(*), coalesce(sum(('x' || left(md5({row}), 16))::bit(64)::bigint), 0) FROM {quote(table)}"


def server_digest(conn: Any, table: str, converters: tuple[Converter, ...]) -> Digest:
    row = conn.execute(server_digest_sql(table, converters)).fetchone()
    return Digest(int(row[0]), int(row[1]))
