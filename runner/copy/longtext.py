"""Text and JSON values of many megabytes (Agor's tool outputs), read from the source in pieces, never whole.

A Python str of a text is up to four times its UTF-8 size (one astral character makes every character
four bytes), and reading a value whole costs SQLite a buffer of its size besides (and a JSON test, its
parse). So the copier's SELECT hands over a long value's byte length instead of the value (``select_sql``)
and tests nothing that reads it (convert.Converter.attention_sql); the value travels as a ``LongText``:
its bytes read straight from SQLite's pages in pieces (``sqlite3_blob``, on the pass's own connection,
so in its snapshot) — once to check they are UTF-8 without a NUL byte and to hash them, once for
PostgreSQL to parse a JSON text (json.JsonOracle.accepts: it decides what jsonb takes), once for the
COPY (load.py). Only a row the exact check has to look at (bad data, a policy) is read whole.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

from .target import quote

LONG = 4 << 20  # a value longer than this (in bytes) is read in pieces
PIECE = 1 << 20


class LongText:
    """A TEXT value of ``size`` bytes in column ``column`` of row ``rowid``, read on demand; ``json``: a JSON
    column's (PostgreSQL parses it before it is sent)."""

    __slots__ = ("column", "json", "rowid", "size", "src", "table")

    def __init__(self, src: Any, table: str, column: str, rowid: int, size: int, json: bool = True) -> None:
        self.src, self.table, self.column, self.rowid, self.size, self.json = src, table, column, rowid, size, json

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"<{self.size} bytes of {self.table}.{self.column} at rowid {self.rowid}>"

    def pieces(self) -> Iterator[bytes]:
        blob = self.src.blob_open("main", self.table, self.column, self.rowid, False)
        try:
            while piece := blob.read(PIECE):
                yield piece
        finally:
            blob.close()

    def whole(self) -> str | bytes:
        """The value read whole: its text, or its bytes when they are not UTF-8 (for the exact check)."""
        blob = self.src.blob_open("main", self.table, self.column, self.rowid, False)
        try:
            raw: bytes = blob.read()  # one buffer: no list of pieces beside their join
        finally:
            blob.close()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw


class TextPieces:
    """A long text held as a str (a policy changed it), sent like a LongText: in encoded pieces, so the
    COPY never needs its whole UTF-8 copy beside it."""

    __slots__ = ("size", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.size = sum(len(piece) for piece in self.pieces())

    def __len__(self) -> int:
        return self.size

    def pieces(self) -> Iterator[bytes]:
        step = PIECE // 4  # characters: a piece's UTF-8 is at most PIECE bytes
        for i in range(0, len(self.text), step):
            yield self.text[i : i + step].encode("utf-8")


STREAMED = (LongText, TextPieces)  # the values a table's loader sends in pieces


def select_sql(column: str) -> tuple[str, str]:
    """(value, is long) SQLite expressions: a long text's byte length instead of the text (octet_length
    reads no content), and whether it was replaced."""
    c = quote(column)
    long_ = f"(typeof({c}) = 'text' AND octet_length({c}) > {LONG})"
    return f"CASE WHEN {long_} THEN octet_length({c}) ELSE {c} END", long_


class PieceCheck:
    """What a long value's pieces must be before they are hashed and sent: UTF-8 (``feed`` raises
    UnicodeDecodeError) without a NUL byte (ValueError). The rest of what jsonb takes is PostgreSQL's
    own parse of the pieces (RowHasher._long): SQLite's tests would hold the value whole."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, piece: bytes) -> None:
        self._utf8.decode(piece)
        if b"\x00" in piece:
            raise ValueError("a NUL byte")

    def finish(self) -> None:
        self._utf8.decode(b"", final=True)
