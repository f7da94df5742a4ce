"""Text and JSON values of many megabytes (Agor's tool outputs), read from the source in pieces, never whole.

A Python str of a text is up to four times its UTF-8 size (one astral character makes every character
four bytes), and reading a value whole costs SQLite a buffer of its size besides. So the copier's
SELECT hands over a long value's byte length instead of the value (``select_sql``), and the value
travels as a ``LongText``: its bytes read straight from SQLite's pages in pieces (``sqlite3_blob``, on
the pass's own connection, so in its snapshot) — once for the checks and the checksum, once for the
COPY (load.py). Only a row the exact check has to look at (bad data, a policy) is read whole.

The checks on the pieces are those of json.may_be_refused, made conservative where a pattern could
straddle two pieces: a text they cannot clear is parsed by PostgreSQL itself (json.JsonOracle.accepts).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any

from .json import _DIGITS, _PLAIN_LIMIT, _ZEROS
from .target import quote

LONG = 4 << 20  # a value longer than this (in bytes) is read in pieces
PIECE = 1 << 20

_BIG_EXPONENT = re.compile(rb"(?:^|[\[:,])\s*-?\d+(?:\.\d+)?[eE][-+]?\d{4}")
_BIG_EXPONENT_INSIDE = re.compile(rb"[\[:,]\s*-?\d+(?:\.\d+)?[eE][-+]?\d{4}")  # past the text's start
_UNDECIDED = re.compile(rb"[\s\d.+-]*[eE][-+]?\d{4}")
_OVERLAP = 4096  # bytes of the previous piece searched again with the next one


class LongText:
    """A TEXT value of ``size`` bytes in column ``column`` of row ``rowid``, read on demand; ``json``: a JSON
    column's (its text gets json.may_be_refused's checks; any other only the UTF-8 one)."""

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
        raw = bytearray(self.size)  # one buffer: no list of pieces beside their join
        blob = self.src.blob_open("main", self.table, self.column, self.rowid, False)
        try:
            blob.read_into(raw)
        finally:
            blob.close()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return bytes(raw)


def select_sql(column: str) -> tuple[str, str]:
    """(value, is long) SQLite expressions: a long text's byte length instead of the text (octet_length
    reads no content), and whether it was replaced."""
    c = quote(column)
    long_ = f"(typeof({c}) = 'text' AND octet_length({c}) > {LONG})"
    return f"CASE WHEN {long_} THEN octet_length({c}) ELSE {c} END", long_


class PieceCheck:
    """json.may_be_refused fed piece by piece: ``feed`` each piece (UnicodeDecodeError when the bytes are
    not UTF-8), then ``finish`` says whether PostgreSQL has to parse the text to be sure it takes it."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._tail = self._tail_raw = b""  # the previous piece's end: a pattern may straddle the seam
        self.size = 0
        self.suspect = False

    def feed(self, piece: bytes) -> None:
        self._utf8.decode(piece)
        self.size += len(piece)
        if not self.suspect:
            self.suspect = self._suspect(piece)
        self._tail_raw = piece[-_OVERLAP:]
        self._tail = self._tail_raw.translate(_DIGITS)

    def _suspect(self, piece: bytes) -> bool:
        folded = self._tail + piece.translate(_DIGITS)
        if _ZEROS in folded or b"\\ud" in folded or b"\\uD" in folded:
            return True  # a run of digits numeric may not hold; a surrogate escape that may be lone
        if b"e0000" not in folded and b"e+0000" not in folded:
            return False
        # A long exponent, unless it is no number (a hex id in a string). The number's start is searched
        # in the previous piece's end too; a run of digits or spaces reaching back past that, which
        # cannot be told from a number's start, leaves the decision to the server.
        region = self._tail_raw + piece
        if not self._tail_raw:
            return _BIG_EXPONENT.search(region) is not None
        return _BIG_EXPONENT_INSIDE.search(region) is not None or _UNDECIDED.match(region) is not None

    def finish(self) -> bool:
        self._utf8.decode(b"", final=True)
        return self.suspect or self.size > _PLAIN_LIMIT
