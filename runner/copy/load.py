"""How one table's rows reach PostgreSQL: a binary COPY, through a staging table when it has JSON.

A table with JSON columns is loaded in chunks, each in two steps on the server inside the copy's
transaction: COPY into a temporary staging table whose JSON columns are ``text`` (the bytes exactly as
sent), then one ``INSERT INTO table SELECT ..., col::jsonb FROM staging``. Before the INSERT the
server computes the checksum of the staged rows; the sums of all chunks are compared with the client's
checksum of what it sent: the server attests the bytes it received, and what it stores is its own
jsonb parse of exactly those bytes (no client-side JSON serialisation in between, which the client
therefore does not need to reproduce: it hashes the text it sends). Tables without JSON are copied
straight into place. Rows the workers wrote without checking their JSON (``json_unchecked``) are checked
by that parse: a text it refuses is ``ServerRefused``, and the copier does its pass again, checking.

The chunks are written by a loader thread that owns the connection for the table, so the server's
checksum and INSERT of one chunk run while the main thread reads, checks and hashes the next (psycopg
releases the GIL while it waits on the server); a short queue keeps memory flat. A row with a long value
(longtext.py) goes alone, as binary COPY data whose long values follow as pieces read from the
source by the main thread and handed over one by one (the source connection is the main thread's).
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from .convert import Converter
from .longtext import STREAMED, LongText, TextPieces
from .pgbinary import SIGNATURE, TRAILER, Encoder, binary_copy_types, encoder, has_form
from .target import Column, quote
from .verify import Digest, server_digest

STAGE = "agor_db_copy_stage"
TEXT_OID = 25
COPY_QUEUE = 64  # buffers of ~32 KB: the most a slower server can make the writer thread hold
CHUNK_BYTES = 2 << 20  # JSON text per staged chunk: the stage stays within the server's temp_buffers
CHUNK_ROWS = 20_000
CHUNKS_AHEAD = 1  # chunks the main thread may have ready while the loader thread works on one


PIECES_AHEAD = 4  # pieces of a long value (longtext.PIECE bytes each) on their way to the loader thread


def wire_types(columns: tuple[Column, ...], converters: tuple[Converter, ...]) -> tuple[int, ...] | None:
    """A staged table's types as staged (JSON as text) when each has a binary COPY form here (pgbinary.py):
    its rows are then hashed as those bytes (verify.py) and may come from workers ready to send. None for
    a table copied straight into place, or with a type that has no such form here."""
    if not any(c.family == "json" for c in converters):
        return None
    oids = tuple(TEXT_OID if c.family == "json" else col.oid for col, c in zip(columns, converters, strict=True))
    return oids if all(has_form(c.family, o) for c, o in zip(converters, oids, strict=True)) else None


@dataclass(frozen=True)
class _LongRow:
    """One row whose long values follow as pieces (TableLoader._pieces), in order, each ended by None."""

    frames: list[bytes | LongText | TextPieces]


_Chunk = list[Sequence[Any]] | bytes | bytearray | _LongRow


class _Stopped(Exception):
    """The main thread stopped while the loader thread waited for a long value's next piece."""


class ServerRefused(Exception):
    """PostgreSQL refused a value in rows sent unchecked (``TableLoader(json_unchecked=True)``): the copy's
    pass is rolled back to its savepoint and done again with every check on this side."""


def _refusal(exc: BaseException) -> bool:
    """Is this PostgreSQL refusing a value (a JSON text jsonb does not take), not a fault of ours?"""
    from psycopg import DataError, errors

    return isinstance(exc, (DataError, errors.ProgramLimitExceeded))  # SQLSTATE class 22, and 54000


def _decoded(value: LongText | TextPieces) -> str:
    text = value.text if isinstance(value, TextPieces) else value.whole()
    assert isinstance(text, str)  # the hash checked it is UTF-8 before the row came here
    return text


def _writer(cur: Any) -> Any:
    """A COPY writer whose thread waits on the socket while the main thread reads, checks and hashes the
    next rows (psycopg releases the GIL while it waits), with a short queue so memory stays flat."""
    from psycopg.copy import QueuedLibpqWriter

    writer = QueuedLibpqWriter(cur)
    writer._queue = type(writer._queue)(maxsize=COPY_QUEUE)
    return writer


class TableLoader:
    """``with TableLoader(...) as write_row:`` COPYs one table's rows; ``staged`` is then the server's
    checksum of the staged rows and ``inserted`` how many it stored (None, 0 for a table copied straight
    into place). ``wire``: the form of that checksum (verify.RowHasher's, the client's side of it)."""

    def __init__(
        self,
        conn: Any,
        table: str,
        columns: tuple[Column, ...],
        converters: tuple[Converter, ...],
        long_cols: list[int] | None = None,
        wire: tuple[int, ...] | None = None,
        json_unchecked: bool = False,
    ):
        self.conn, self.table, self.columns, self.converters = conn, table, columns, converters
        self.wire = wire
        # Rows ready as COPY data (add_encoded) may hold JSON no check here has seen: PostgreSQL's refusal of
        # one is then ServerRefused (the checksum still covers every byte it received)
        self.json_unchecked = json_unchecked
        self.json = [i for i, c in enumerate(converters) if c.family == "json"]
        # the columns whose values may come as a LongText (only when the table has JSON: it is staged)
        self.long_cols = sorted(set(self.json) | set(long_cols or ())) if self.json else []
        self.staged: Digest | None = None
        self.inserted = 0
        self._copy_cm: Any = None
        self._chunk: list[Sequence[Any]] = []
        self._chunk_bytes = 0
        self._queue: queue.Queue[_Chunk | None] = queue.Queue(maxsize=CHUNKS_AHEAD)
        self._pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=PIECES_AHEAD)
        self._field_encoders: list[Encoder] | None = None
        self.staged_columns = tuple(
            replace(c, type="text", oid=TEXT_OID) if i in self.json else c for i, c in enumerate(self.columns)
        )
        # The staged columns' types when the rows may come ready as binary COPY data (pgbinary.py).
        self.wire_oids: tuple[int, ...] | None = None
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._stop = False

    def __enter__(self) -> Callable[[Sequence[Any]], None]:
        if not self.json:
            copy = self._start_copy(self.table, self.columns, _writer)
            write_row: Callable[[Sequence[Any]], None] = copy.write_row
            return write_row
        self._create_stage()
        self.staged = Digest(0, 0)
        oids = binary_copy_types(self.conn.cursor().adapters, self.staged_columns, self.conn.info.encoding)
        if oids is not None and tuple(oids) == wire_types(self.columns, self.converters):
            self.wire_oids = tuple(oids)
        self._thread = threading.Thread(target=self._load, name=f"agor-db copy {self.table}", daemon=True)
        self._thread.start()
        return self._add

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._thread is None:
            self._copy_cm.__exit__(kind, exc, tb)
            return
        try:
            if kind is None and self._chunk:
                self._put(self._chunk)
        finally:
            if kind is not None:  # stop after the chunk in hand: the caller rolls back
                self._stop = True
                self._drain()
            self._put(None)
            self._thread.join()  # the connection is the caller's again
        if self._failed is not None and kind is None:
            raise self._failed
        if kind is None:
            self.conn.execute(f"DROP TABLE {quote(STAGE)}")

    # -- the main thread's side -------------------------------------------------------------------

    def _add(self, row: Sequence[Any]) -> None:
        size = 0
        for i in self.long_cols:
            if (value := row[i]) is not None:
                if type(value) in STREAMED:
                    self._add_long(row)
                    return
                size += len(value)
        self._chunk.append(row)
        self._chunk_bytes += size
        if self._chunk_bytes >= CHUNK_BYTES or len(self._chunk) >= CHUNK_ROWS:
            self._flush()

    def _add_long(self, row: Sequence[Any]) -> None:
        """A row with a long value: sent alone, the value in pieces from the source to the COPY (the
        loader thread writes them as they come), never whole here."""
        if self.wire_oids is None:  # no binary form written here for some column: the value read whole
            self._add(tuple(_decoded(v) if type(v) in STREAMED else v for v in row))
            return
        self._flush()
        frames = self._frames(row)
        self._put(_LongRow(frames))
        for frame in frames:
            if not isinstance(frame, bytes):
                for piece in frame.pieces():
                    self._put_piece(piece)
                self._put_piece(None)

    def _frames(self, row: Sequence[Any]) -> list[bytes | LongText | TextPieces]:
        """The row as binary COPY data, the value itself in place of each long value's bytes."""
        assert self.wire_oids is not None
        if self._field_encoders is None:
            self._field_encoders = [encoder((oid,)) for oid in self.wire_oids]
        frames: list[bytes | LongText | TextPieces] = []
        out = bytearray(struct.pack(">h", len(row)))
        for value, encode in zip(row, self._field_encoders, strict=True):
            if type(value) in STREAMED:
                frames += [bytes(out + struct.pack(">i", value.size)), value]
                out = bytearray()
            else:
                field = bytearray()
                encode((value,), field)
                out += field[2:]  # past the one-field row's field count
        frames.append(bytes(out))
        return frames

    def add_encoded(self, data: bytes | bytearray) -> None:
        """Rows ready as binary COPY data for the stage (``wire_oids``), after the rows added before them."""
        self._flush()
        self._put(data)

    def _put(self, chunk: _Chunk | None) -> None:
        self._offer(self._queue, chunk, fail_fast=chunk is not None)  # the closing None always goes

    def _put_piece(self, piece: bytes | None) -> None:
        self._offer(self._pieces, piece, fail_fast=True)

    def _offer(self, to: queue.Queue[Any], item: Any, fail_fast: bool) -> None:
        """Put ``item`` on ``to``, waiting for the loader thread; its failure is raised here, not waited out."""
        while True:
            if fail_fast and self._failed is not None:
                raise self._failed
            try:
                to.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _flush(self) -> None:
        if self._chunk:
            self._put(self._chunk)
            self._chunk, self._chunk_bytes = [], 0

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # -- the loader thread's side -----------------------------------------------------------------

    def _load(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                if not self._stop and self._failed is None:
                    self._load_chunk(chunk)
        except BaseException as exc:  # handed to the main thread, which raises it
            self._failed = exc
            while self._queue.get() is not None:
                pass

    def _next_piece(self) -> bytes | None:
        while True:
            if self._stop:
                raise _Stopped
            try:
                return self._pieces.get(timeout=0.2)
            except queue.Empty:
                continue

    def _load_chunk(self, chunk: _Chunk) -> None:
        """COPY the chunk into the stage, checksum what arrived, store the server's parse of it, empty the stage."""
        copy = self._start_copy(STAGE, self.staged_columns, None)
        try:
            if isinstance(chunk, list):
                for row in chunk:
                    copy.write_row(row)
            elif isinstance(chunk, _LongRow):
                copy.write(SIGNATURE)
                for frame in chunk.frames:
                    if isinstance(frame, bytes):
                        copy.write(frame)
                    else:
                        while (piece := self._next_piece()) is not None:
                            copy.write(piece)
                copy.write(TRAILER)
            else:
                copy.write(SIGNATURE)
                copy.write(chunk)
                copy.write(TRAILER)
        except BaseException as exc:
            self._copy_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._copy_cm.__exit__(None, None, None)
        got = server_digest(self.conn, STAGE, self.converters, json_as_sent=True, wire=self.wire)
        assert self.staged is not None
        self.staged = Digest(self.staged.rows + got.rows, self.staged.total + got.total)
        names = ", ".join(quote(c.name) for c in self.columns)
        exprs = ", ".join(
            f"{quote(c.name)}::{c.type}" if i in self.json else quote(c.name) for i, c in enumerate(self.columns)
        )
        try:
            cur = self.conn.execute(f"INSERT INTO {quote(self.table)} ({names}) SELECT {exprs} FROM {quote(STAGE)}")
        except Exception as exc:
            if self.json_unchecked and isinstance(chunk, (bytes, bytearray)) and _refusal(exc):
                raise ServerRefused(str(exc)) from exc
            raise
        self.inserted += cur.rowcount
        self.conn.execute(f"TRUNCATE {quote(STAGE)}")

    def _start_copy(self, into: str, columns: tuple[Column, ...], writer: Callable[[Any], Any] | None) -> Any:
        cur = self.conn.cursor()
        binary = binary_copy_types(cur.adapters, columns, self.conn.info.encoding)
        fmt = " (FORMAT BINARY)" if binary else ""
        names = ", ".join(quote(c.name) for c in columns)
        sql = f"COPY {quote(into)} ({names}) FROM STDIN{fmt}"
        self._copy_cm = cur.copy(sql, writer=writer(cur)) if writer is not None else cur.copy(sql)
        copy = self._copy_cm.__enter__()
        if binary:
            copy.set_types(binary)
        return copy

    def _create_stage(self) -> None:
        exprs = ", ".join(
            f"{quote(c.name)}::text AS {quote(c.name)}" if i in self.json else quote(c.name)
            for i, c in enumerate(self.columns)
        )
        # Rows up to a page stay in the stage's heap (the default moves values out to TOAST from ~2 KB: each
        # is then written in pieces, indexed, and put together again by the checksum and by the INSERT).
        self.conn.execute(
            f"CREATE TEMP TABLE {quote(STAGE)} WITH (toast_tuple_target = 8160) ON COMMIT DROP "
            f"AS SELECT {exprs} FROM {quote(self.table)} WITH NO DATA"
        )
        for i in self.json:  # staged text is read once: compressing it would only cost CPU
            name = quote(self.columns[i].name)
            self.conn.execute(f"ALTER TABLE {quote(STAGE)} ALTER COLUMN {name} SET STORAGE EXTERNAL")
