"""How one table's rows reach PostgreSQL: a binary COPY, through a staging table when it has JSON.

A table with JSON columns is loaded in two steps on the server, inside the copy's transaction: COPY
into a temporary staging table whose JSON columns are ``text`` (the bytes exactly as sent), then one
``INSERT INTO table SELECT ..., col::jsonb FROM staging``. Before the INSERT the server computes the
checksum of the staged rows, which the copier compares with its own checksum of what it sent: the
server attests the bytes it received, and what it stores is its own jsonb parse of exactly those
bytes (no client-side JSON serialisation in between, which the client therefore does not need to
reproduce: it hashes the text it sends). Tables without JSON are copied straight into place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from .copy_convert import Converter, binary_copy_types
from .copy_schema import Column, quote
from .copy_verify import Digest, server_digest

STAGE = "agor_db_copy_stage"
TEXT_OID = 25
COPY_QUEUE = 64  # buffers of ~32 KB: the most a slower server can make the writer thread hold


def _writer(cur: Any) -> Any:
    """A COPY writer whose thread waits on the socket while the main thread reads, checks and hashes the
    next rows (psycopg releases the GIL while it waits), with a short queue so memory stays flat."""
    from psycopg.copy import QueuedLibpqWriter

    writer = QueuedLibpqWriter(cur)
    writer._queue = type(writer._queue)(maxsize=COPY_QUEUE)
    return writer


class TableLoader:
    """``with TableLoader(...) as write_row:`` COPYs one table's rows; ``staged`` is then the server's
    checksum of the staged rows (None for a table copied straight into place)."""

    def __init__(self, conn: Any, table: str, columns: tuple[Column, ...], converters: tuple[Converter, ...]):
        self.conn, self.table, self.columns, self.converters = conn, table, columns, converters
        self.json = {c.name for c in converters if c.family == "json"}
        self.staged: Digest | None = None
        self.inserted = 0
        self._copy_cm: Any = None

    def __enter__(self) -> Callable[[Sequence[Any]], None]:
        cur = self.conn.cursor()
        into = self.table
        columns = self.columns
        if self.json:
            into = STAGE
            self._create_stage()
            columns = tuple(replace(c, type="text", oid=TEXT_OID) if c.name in self.json else c for c in columns)
        binary = binary_copy_types(cur.adapters, columns, self.conn.info.encoding)
        fmt = " (FORMAT BINARY)" if binary else ""
        names = ", ".join(quote(c.name) for c in columns)
        self._copy_cm = cur.copy(f"COPY {quote(into)} ({names}) FROM STDIN{fmt}", writer=_writer(cur))
        copy = self._copy_cm.__enter__()
        if binary:
            copy.set_types(binary)
        write_row: Callable[[Sequence[Any]], None] = copy.write_row
        return write_row

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._copy_cm.__exit__(kind, exc, tb)
        if kind is None and self.json:
            self._settle()

    def _create_stage(self) -> None:
        exprs = ", ".join(
            f"{quote(c.name)}::text AS {quote(c.name)}" if c.name in self.json else quote(c.name) for c in self.columns
        )
        self.conn.execute(
            f"CREATE TEMP TABLE {quote(STAGE)} ON COMMIT DROP AS SELECT {exprs} FROM {quote(self.table)} WITH NO DATA"
        )
        for name in sorted(self.json):  # staged text is read once: compressing it would only cost CPU
            self.conn.execute(f"ALTER TABLE {quote(STAGE)} ALTER COLUMN {quote(name)} SET STORAGE EXTERNAL")

    def _settle(self) -> None:
        """Checksum what arrived, then store the server's own parse of it; the stage is dropped."""
        self.staged = server_digest(self.conn, STAGE, self.converters, json_as_sent=True)
        names = ", ".join(quote(c.name) for c in self.columns)
        exprs = ", ".join(f"{quote(c.name)}::{c.type}" if c.name in self.json else quote(c.name) for c in self.columns)
        cur = self.conn.execute(f"INSERT INTO {quote(self.table)} ({names}) SELECT {exprs} FROM {quote(STAGE)}")
        self.inserted = cur.rowcount
        self.conn.execute(f"DROP TABLE {quote(STAGE)}")
