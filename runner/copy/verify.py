"""Content checksums computed on both sides of the copy, compared before COMMIT.

Per row: md5 over the row's bytes in one of two forms, the same on both sides; per table: the row count
and the sum of the rows' first 64 digest bits. A sum does not depend on row order, so the source is read
in rowid order while the server scans however it likes, and it computes its side itself.

- A staged table (load.py), whose types have a binary COPY form here (``wire``): the row's binary COPY
  bytes, exactly what the client sends; the server builds the same bytes from what it parsed, with each
  type's send function. The client hashes what it writes anyway, no second form of the row.
- Any other table, and a staged one before this form existed (``wire`` None): the row text, per value
  \x01 + its text + \x00, \x02 for NULL. JSON enters it as the text exactly as sent (``json_as_sent``:
  compared with the server's checksum of the staging table) or as PostgreSQL prints the stored jsonb
  (``jsonb::text``: key order and whitespace do not matter, every parsed value does).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import md5
from typing import Any

from .convert import Converter, canonical_source
from .json import JsonOracle, JsonRefused, Oracle
from .longtext import LONG, LongText, PieceCheck, TextPieces
from .pgbinary import BOOL, BYTEA, INTS, TEXTS, Encoder, row_writer
from .target import quote


@dataclass(frozen=True)
class Digest:
    rows: int
    total: int

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "sum": str(self.total)}


class RowHasher:
    """The source side: one call per loaded row with the values as they are sent to PostgreSQL; ``wire``:
    the staged types, for a checksum over the rows' binary COPY bytes (see above)."""

    def __init__(
        self,
        converters: tuple[Converter, ...],
        oracle: Oracle | None = None,
        json_as_sent: bool = False,
        wire: tuple[int, ...] | None = None,
    ) -> None:
        self.rows = 0
        self.total = 0
        self._canon: tuple[Callable[[Any], str], ...] = tuple(
            canonical_source(c, oracle, json_as_sent) for c in converters
        )
        self._oracle = oracle
        long_ = tuple(i for i, c in enumerate(converters) if c.family in ("json", "text", "bytea"))
        self._wire = wire
        self._row_bytes: Callable[[Any], bytes | bytearray]
        if wire is None:
            self._row_bytes = _compile(self._canon, long_)
        else:
            self._write = row_writer(wire)
            self._refused: tuple[type[Exception], ...] = (TypeError, OverflowError, struct.error)
            self._row_bytes = self._copy_row
            self._long_cols = long_
            self._json = tuple(i for i, c in enumerate(converters) if c.family == "json")
            self._texts = tuple(i for i, c in enumerate(converters) if c.family in ("json", "text"))
            self._fields: list[Encoder] | None = None

    def add(self, values: tuple[Any, ...] | list[Any]) -> None:
        """Raises ValueError (or ArithmeticError) for a value with no canonical form, before counting it."""
        try:
            digest = md5(self._row_bytes(values), usedforsecurity=False).digest()
        except _Long:
            digest = self._streamed(values) if self._wire is None else self._streamed_copy(values)
        self.total += int.from_bytes(digest[:8], "big", signed=True)
        self.rows += 1

    def _copy_row(self, values: tuple[Any, ...] | list[Any]) -> bytearray:
        """The row's binary COPY bytes, after the checks the row text's forms make (JSON jsonb takes), and
        the one the SQLite-side filter leaves to this form: no NUL in a text (convert.attention_sql)."""
        for i in self._long_cols:
            if (v := values[i]) is not None and len(v) > LONG:
                raise _Long
        for i in self._texts:
            if (v := values[i]) is not None and "\x00" in v:
                raise ValueError("a NUL character")
        for i in self._json:
            if (v := values[i]) is not None:
                self._canon[i](v)
        out = bytearray()
        try:
            self._write(values, out)
        except self._refused as exc:  # a value the column's form cannot take: a type, a number out of range
            raise ValueError(str(exc)) from None
        return out

    def _streamed(self, values: tuple[Any, ...] | list[Any]) -> bytes:
        """The same digest for a row with a value of many megabytes, without the row text and its encoded
        copy (each as large as the value): peak memory stays a small multiple of the largest row."""
        h = md5(usedforsecurity=False)
        for canon, v in zip(self._canon, values, strict=True):
            if v is None:
                h.update(b"\x02")
                continue
            h.update(b"\x01")
            if type(v) is LongText:
                self._long(h, v)
            else:
                text = canon(v)
                for i in range(0, len(text), CHUNK):
                    h.update(text[i : i + CHUNK].encode("utf-8"))
            h.update(b"\x00")
        return h.digest()

    def _streamed_copy(self, values: tuple[Any, ...] | list[Any]) -> bytes:
        """``_streamed`` for the binary COPY form: a long value's length, then its bytes piece by piece."""
        assert self._wire is not None
        if self._fields is None:
            self._fields = [row_writer((oid,)) for oid in self._wire]
        h = md5(usedforsecurity=False)
        h.update(struct.pack(">h", len(values)))
        for i, v in enumerate(values):
            if v is None:
                h.update(b"\xff\xff\xff\xff")
            elif type(v) is LongText:
                h.update(struct.pack(">i", v.size))
                self._long(h, v)
            elif type(v) is str and len(v) > LONG:
                if i in self._texts and "\x00" in v:
                    raise ValueError("a NUL character")
                if i in self._json:
                    self._canon[i](v)
                pieces = TextPieces(v)  # UnicodeEncodeError (a ValueError) for text that is not UTF-8
                h.update(struct.pack(">i", pieces.size))
                for piece in pieces.pieces():
                    h.update(piece)
            else:
                field = bytearray()
                self._fields[i]((v,), field)
                h.update(memoryview(field)[2:])  # past the one-field row's field count
        return h.digest()

    def _long(self, h: Any, value: LongText) -> None:
        """A text read in pieces: hashed as it is sent, after the checks that make it one PostgreSQL takes
        (ValueError when it is not UTF-8, holds a NUL byte, or is JSON that jsonb refuses)."""
        check = PieceCheck()
        for piece in value.pieces():
            check.feed(piece)
            h.update(piece)
        check.finish()
        if value.json:
            if not isinstance(self._oracle, JsonOracle):
                raise JsonRefused("a long JSON text needs PostgreSQL's check")
            self._oracle.accepts(value)

    def merge(self, rows: int, total: int) -> None:
        """Rows hashed elsewhere (a worker process, parallel.py): the sums add up in any order."""
        self.rows += rows
        self.total += total

    def digest(self) -> Digest:
        return Digest(self.rows, self.total)


CHUNK = 1 << 20  # a value longer than LONG is hashed in chunks of this many characters (RowHasher._streamed)


class _Long(Exception):
    pass


def _raise_long() -> str:
    raise _Long


def _compile(canon: tuple[Callable[[Any], str], ...], long_: tuple[int, ...] = ()) -> Callable[[Any], bytes]:
    # One generated f-string per table instead of a loop over columns: this runs for every row, and an
    # f-string builds the row text in one allocation (a chain of + copies the long JSON text each time).
    # Per value: \x01 + text + \x00, or \x02 for NULL. A row with a very long value goes to _streamed.
    if not canon:
        return lambda v: b""
    names = [f"a{i}" for i in range(len(canon))]
    parts = []
    for i, f in enumerate(canon):
        a = names[i]
        text = a if f is str else f"c{i}({a})"  # f-string formatting of a str or int is str()
        parts.append(f"{{N if {a} is None else O}}{{E if {a} is None else {text}}}{{E if {a} is None else Z}}")
    env: dict[str, Any] = {f"c{i}": f for i, f in enumerate(canon)}
    env.update(N="\x02", O="\x01", Z="\x00", E="", L=LONG, R=_raise_long)
    guard = " or ".join(f"({names[i]} is not None and len({names[i]}) > L)" for i in long_)
    check = f"    if {guard}:\n        R()\n" if guard else ""
    source = f"def row_text(v):\n    {', '.join(names)}, = v\n{check}    return f'{''.join(parts)}'.encode('utf-8')\n"
    exec(source, env)  # built from column positions only
    fn: Callable[[Any], bytes] = env["row_text"]
    return fn


def _server_text(conv: Converter, json_as_sent: bool) -> str:
    c = quote(conv.name)
    family = conv.family
    if family == "bool":
        text = f"CASE WHEN {c} THEN 't' ELSE 'f' END"
    elif family == "json":
        text = c if json_as_sent else f"{c}::text"  # as sent: a staging table's text column
    elif family in ("text",):
        text = c
    else:
        text = f"{c}::text"
    # textsend: the text's bytes in the client encoding, which agor-db's connections always set to UTF8
    # (drivers/postgres.connect); ~20 % cheaper than convert_to(text, 'UTF8'), which looks the encoding up
    # on every call. A session in another encoding could only make the sums differ: the copy then fails.
    return f"textsend({text})"


def _server_row(converters: tuple[Converter, ...], json_as_sent: bool) -> str:
    """The row text as bytea: per value \x01 + text + \x00, \x02 for NULL. A NOT NULL column's value
    needs no NULL case, so its framing bytes join the neighbours' in one literal (fewer concatenations
    per row: the server's side costs ~20 % less). In a staging table, which has no NOT NULL, a NULL there
    would make the row's digest NULL, and the INSERT into the table that follows fails on it anyway."""
    parts: list[str] = []
    pending = ""  # framing bytes (hex) not yet written
    for conv in converters:
        value = _server_text(conv, json_as_sent)
        if conv.column.not_null:
            parts += [f"'\\x{pending}01'::bytea", value]
            pending = "00"
            continue
        if pending:
            parts.append(f"'\\x{pending}'::bytea")
            pending = ""
        parts.append(f"coalesce('\\x01'::bytea || {value} || '\\x00'::bytea, '\\x02'::bytea)")
    if pending:
        parts.append(f"'\\x{pending}'::bytea")
    return " || ".join(parts) or "''::bytea"


def _copy_value(conv: Converter, oid: int) -> tuple[str, str]:
    """(constant hex, expression): a value's binary COPY field, as what is constant (the length of a fixed
    width) and the rest. The expression is NULL for a NULL value (each send function is strict)."""
    c = quote(conv.name)
    if oid in TEXTS:  # the database is UTF8 (the copy refuses any other): octet_length is the UTF-8 length
        return "", f"int4send(octet_length({c})) || textsend({c})"
    if oid in INTS:
        width = INTS[oid][1]
        return f"{width:08x}", f"int{width}send({c})"
    if oid == BOOL:
        return "", f"CASE WHEN {c} THEN '\\x0000000101'::bytea WHEN NOT {c} THEN '\\x0000000100'::bytea END"
    if oid == BYTEA:
        return "", f"int4send(length({c})) || {c}"
    raise ValueError(f"no binary COPY form here for type oid {oid}")


def _copy_row(converters: tuple[Converter, ...], wire: tuple[int, ...]) -> str:
    """The row's binary COPY bytes as a bytea expression (see the module's docstring). A NOT NULL column's
    constant bytes join their neighbours' in one literal: fewer concatenations per row."""
    parts: list[str] = []
    pending = f"{len(wire):04x}"  # hex not yet written: the field count first
    for conv, oid in zip(converters, wire, strict=True):
        const, value = _copy_value(conv, oid)
        if conv.column.not_null:
            pending += const
            if pending:
                parts.append(f"'\\x{pending}'::bytea")
            parts.append(value)
            pending = ""
            continue
        if pending:
            parts.append(f"'\\x{pending}'::bytea")
            pending = ""
        field = f"'\\x{const}'::bytea || {value}" if const else value
        parts.append(f"coalesce({field}, '\\xffffffff'::bytea)")
    if pending:
        parts.append(f"'\\x{pending}'::bytea")
    return " || ".join(parts)


def server_digest_sql(
    table: str, converters: tuple[Converter, ...], json_as_sent: bool = False, wire: tuple[int, ...] | None = None
) -> str:
    row = _server_row(converters, json_as_sent) if wire is None else _copy_row(converters, wire)
    return f"SELECT count(*), coalesce(sum(('x' || left(md5({row}), 16))::bit(64)::bigint), 0) FROM {quote(table)}"


def server_digest(
    conn: Any,
    table: str,
    converters: tuple[Converter, ...],
    json_as_sent: bool = False,
    wire: tuple[int, ...] | None = None,
) -> Digest:
    row = conn.execute(server_digest_sql(table, converters, json_as_sent, wire)).fetchone()
    return Digest(int(row[0]), int(row[1]))
