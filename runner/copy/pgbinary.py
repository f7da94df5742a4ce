"""PostgreSQL's binary COPY format: which tables go in it, and rows written without a connection.

``binary_copy_types`` decides whether a table's COPY is binary and registers the dumpers it needs. A row is
a 16-bit field count, then per field a 32-bit length (-1 for NULL) and the value's binary form; a COPY
stream is the signature, the rows, and a -1 trailer. The forms written here (in a worker process,
parallel.py) are exactly what psycopg's dumpers (and ours below for boolean and json) write for the values
SQLite gives: UTF-8 text for text, varchar and json, big-endian integers of the column's width, one byte
for a boolean, the bytes of a bytea. Tables with any other type are not encoded here (the rows go through
psycopg). The same bytes are what a staged table's checksum covers (verify.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from hashlib import md5
from typing import Any

from .target import Column

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no flags, no header extension
TRAILER = b"\xff\xff"

# Not char(n): the server pads what it stores, so its bytes would not be the bytes sent (see below).
TEXTS = (25, 1043, 114)  # text, varchar, json
INTS = {20: ("q", 8), 23: ("i", 4), 21: ("h", 2)}  # bigint, integer, smallint
BOOL, BYTEA = 16, 17
ENCODABLE = frozenset((*TEXTS, *INTS, BOOL, BYTEA))

Encoder = Callable[[Any, bytearray], None]
HashingEncoder = Callable[[Any, bytearray], int]


def has_form(family: str, oid: int) -> bool:
    """Is there a binary COPY form here for a ``family`` value (convert.py) in a column of type ``oid``?"""
    if oid in TEXTS:
        return family in ("json", "text")
    if oid in INTS:
        return family == "int"
    return (oid, family) in ((BOOL, "bool"), (BYTEA, "bytea"))


def _field(i: int, oid: int) -> str:
    a = f"a{i}"
    if oid in TEXTS:
        value = f"b = {a}.encode('utf-8')\n        out += P4(len(b))\n        out += b"
    elif oid in INTS:
        code, width = INTS[oid]
        value = f"out += W{width}\n        out += P{code}({a})"
    elif oid == BOOL:
        value = f"out += TRUE if {a} else FALSE"
    else:  # bytea
        value = f"b = bytes({a})\n        out += P4(len(b))\n        out += b"
    return f"    if {a} is None:\n        out += NULL\n    else:\n        {value}\n"


def _env(columns: int) -> dict[str, Any]:
    """The constants and packers the generated encoders use."""
    return {
        "COUNT": struct.pack(">h", columns),
        "NULL": struct.pack(">i", -1),
        "TRUE": b"\x00\x00\x00\x01\x01",
        "FALSE": b"\x00\x00\x00\x01\x00",
        "P4": struct.Struct(">i").pack,
        "Pq": struct.Struct(">q").pack,
        "Pi": struct.Struct(">i").pack,
        "Ph": struct.Struct(">h").pack,
        "W8": struct.pack(">i", 8),
        "W4": struct.pack(">i", 4),
        "W2": struct.pack(">i", 2),
    }


def encoder(oids: tuple[int, ...]) -> Encoder:
    """``encode(row, out)`` appends one row (values in column order) to ``out``; raises ValueError
    (UnicodeEncodeError, struct.error) for a value with no such form."""
    if not oids or not all(o in ENCODABLE for o in oids):
        raise ValueError(f"no binary COPY form here for type oids {sorted(set(oids) - ENCODABLE)}")
    names = ", ".join(f"a{i}" for i in range(len(oids)))
    body = "".join(_field(i, o) for i, o in enumerate(oids))
    # One generated function per table (from column positions and type oids only): this runs per row.
    source = f"def encode(v, out):\n    {names}, = v\n    out += COUNT\n{body}"
    env = _env(len(oids))
    exec(source, env)
    fn: Encoder = env["encode"]
    return fn


# -- binary COPY ------------------------------------------------------------------------------
#
# Binary COPY spares the client COPY-text escaping of the long JSON values and the server the text
# parsing of every integer and the unescaping of every text. Used when every column of a table has a
# type whose binary form is written from what SQLite gives: psycopg's own dumpers for text, integers
# and bytea, ours below for jsonb/json (the text as it is: psycopg's jsonb dumper would make a str a JSON
# string) and boolean (SQLite's 0/1 are ints). Any other type: the table goes in text format.

JSON_OID, JSONB_OID = 114, 3802
_PACK4, _PACK2 = struct.Struct(">i").pack, struct.Struct(">h").pack
BINARY_COPY_OIDS = frozenset({BOOL, 17, 20, 21, 23, 25, JSON_OID, 1042, 1043, JSONB_OID})


def binary_copy_types(adapters: Any, columns: tuple[Column, ...], encoding: str) -> list[int] | None:
    """Register the dumpers binary COPY needs on ``adapters`` (a cursor's); the column type oids to give
    ``Copy.set_types``, or None when this table has to go in text format."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format

    oids = [c.oid for c in columns]
    if not oids or not all(o in BINARY_COPY_OIDS for o in oids):
        return None

    class JsonbTextDumper(Dumper):
        format = Format.BINARY
        oid = JSONB_OID

        def dump(self, obj: str) -> bytes:
            return b"\x01" + obj.encode(encoding)  # jsonb's binary form: version 1, then the JSON text

    class JsonTextDumper(Dumper):
        format = Format.BINARY
        oid = JSON_OID

        def dump(self, obj: str) -> bytes:
            return obj.encode(encoding)

    class BoolIntDumper(Dumper):
        format = Format.BINARY
        oid = BOOL

        def dump(self, obj: Any) -> bytes:
            return b"\x01" if obj else b"\x00"

    # psycopg's own binary dumpers for integer and smallint write the low bits of a number too large
    # for the column (2**40 as integer is 0): these refuse it (struct.error), as pgbinary.encoder does, so
    # a value the filter and the exact check should have stopped is never sent, or hashed, as another.
    class Int4Dumper(Dumper):
        format = Format.BINARY
        oid = 23

        def dump(self, obj: int) -> bytes:
            return _PACK4(obj)

    class Int2Dumper(Dumper):
        format = Format.BINARY
        oid = 21

        def dump(self, obj: int) -> bytes:
            return _PACK2(obj)

    for dumper in (JsonbTextDumper, JsonTextDumper, BoolIntDumper, Int4Dumper, Int2Dumper):
        adapters.register_dumper(None, dumper)
    try:
        for o in set(oids):
            adapters.get_dumper_by_oid(o, Format.BINARY)
    except Exception:  # this psycopg has no binary dumper for one of them: text format it is
        return None
    return oids


# -- the row's checksum in the same pass ---------------------------------------------------------
#
# A staged table's row checksum is the md5 of the row's binary COPY bytes (verify.py), so a worker hashes
# exactly the bytes it hands over, and PostgreSQL builds the same bytes from what it parsed with each
# type's send function (verify.server_digest_sql). The bytes come from psycopg's own row writer (C where
# psycopg has it) with the dumpers the copy's cursor uses (binary_copy_types): the main process's
# rows, which psycopg's COPY writes, are then hashed as the very bytes it sends.


class TooLong(Exception):
    """A value longer than the limit: hashed by verify.RowHasher (in pieces) instead, memory stays flat."""


def _too_long() -> None:
    raise TooLong


def _nul() -> None:
    raise ValueError("a NUL character")


def row_writer(oids: tuple[int, ...]) -> Encoder:
    """``write(row, out)``: the same bytes as ``encoder(oids)``, by psycopg's row writer when it is at hand.
    Raises ValueError (UnicodeEncodeError), TypeError, OverflowError or struct.error for a value with no
    such form."""
    found = _psycopg_writer(oids)
    if found is None:
        return encoder(oids)
    format_row, tx = found

    def write(row: Any, out: bytearray) -> None:
        format_row(row, tx, out)

    return write


def _psycopg_writer(oids: tuple[int, ...]) -> tuple[Callable[[Any, Any, bytearray], None], Any] | None:
    """psycopg's binary COPY row writer and a transformer with the copy's dumpers for these types."""
    import psycopg
    from psycopg import adapt
    from psycopg.pq import Format

    try:  # where psycopg keeps it (3.2+); not a public name, so anything else falls back to ours
        from psycopg._copy_base import format_row_binary
    except ImportError:
        return None
    columns = tuple(Column(f"c{i}", "", None, False, False, oid) for i, oid in enumerate(oids))
    context = _Context(adapt.AdaptersMap(psycopg.adapters))
    if binary_copy_types(context.adapters, columns, "utf-8") is None:
        return None
    tx = adapt.Transformer(context)
    tx.set_dumper_types(list(oids), Format.BINARY)
    # A private name may change what it takes or writes: one probe row, else ours
    probe, theirs, ours = (None,) * len(oids), bytearray(), bytearray()
    try:
        format_row_binary(probe, tx, theirs)
    except Exception:
        return None
    encoder(oids)(probe, ours)
    return (format_row_binary, tx) if theirs == ours else None


class _Context:
    """What psycopg's Transformer needs of a connection: its adapters (no connection here)."""

    connection = None

    def __init__(self, adapters: Any) -> None:
        self.adapters = adapters


def hashing_encoder(
    oids: tuple[int, ...], families: tuple[str, ...], check_json: Callable[[str, bytes], Any], limit: int
) -> HashingEncoder:
    """``encode(row, out)`` appends the row like ``encoder`` and returns its checksum term, the first 64
    bits of the md5 of the bytes appended (signed), as verify.RowHasher computes it for the same values;
    ``check_json(text, utf8)`` raises for a JSON text jsonb would refuse (json.check_sent). Raises what
    RowHasher raises for a value it refuses (ValueError, ArithmeticError, TypeError), and TooLong, before
    appending anything, for a row with a value longer than ``limit``."""
    if not oids or len(oids) != len(families):
        raise ValueError("one type oid and one converter family per column")
    names = ", ".join(f"a{i}" for i in range(len(oids)))
    long_ = [f"(a{i} is not None and len(a{i}) > L)" for i, f in enumerate(families) if f in ("json", "text", "bytea")]
    guard = f"    if {' or '.join(long_)}:\n        LONG()\n" if long_ else ""
    json = [i for i, f in enumerate(families) if f == "json"]
    # A JSON text is encoded once, for its checks and for the COPY: its bytes go in its place, written as
    # a bytea's (the same field: a length, then the bytes). A NUL in a text is looked for here, as
    # RowHasher does: the SQLite-side filter leaves it to this form (convert.attention_sql).
    nul = "    if a{0} is not None and '\\x00' in a{0}:\n        NUL()\n"
    encode = (
        "    if a{0} is not None:\n        a{0} = a{0}.encode('utf-8')\n"
        "        if b'\\x00' in a{0}:\n            NUL()\n        J(v[{0}], a{0})\n"
    )
    checks = "".join(nul.format(i) for i, f in enumerate(families) if f == "text")
    checks += "".join(encode.format(i) for i in json)
    row = f"({names},)" if json else "v"
    # One generated function per table: this runs for every row a worker reads.
    source = (
        f"def encode(v, out):\n    {names}, = v\n{guard}{checks}"
        f"    start = len(out)\n    WRITE({row}, TX, out)\n"
        "    return FROM(MD5(out[start:]).digest()[:8], 'big', signed=True)\n"
    )
    env: dict[str, Any] = {"J": check_json, "L": limit, "LONG": _too_long, "MD5": md5, "FROM": int.from_bytes}
    env["NUL"] = _nul
    written = tuple(BYTEA if i in json else oid for i, oid in enumerate(oids))
    found = _psycopg_writer(written)
    if found is None:  # ours, called the same way
        ours = encoder(written)
        found = (lambda row, tx, out: ours(row, out)), None
    env["WRITE"], env["TX"] = found
    exec(source, env)  # built from column positions and families only
    fn: HashingEncoder = env["encode"]
    return fn
