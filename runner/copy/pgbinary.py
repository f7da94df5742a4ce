"""PostgreSQL's binary COPY format, written without a connection (in a worker process, parallel.py).

A row is a 16-bit field count, then per field a 32-bit length (-1 for NULL) and the value's binary form;
a COPY stream is the signature, the rows, and a -1 trailer. The forms here are exactly what psycopg's
dumpers (and convert.py's for boolean and json) write for the values SQLite gives: UTF-8 text for
text, varchar, char and json, big-endian integers of the column's width, one byte for a boolean, the
bytes of a bytea. Tables with any other type are not encoded here (the rows go through psycopg).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no flags, no header extension
TRAILER = b"\xff\xff"

_TEXT = (25, 1042, 1043, 114)  # text, char, varchar, json
_INTS = {20: ("q", 8), 23: ("i", 4), 21: ("h", 2)}  # bigint, integer, smallint
BOOL, BYTEA = 16, 17
ENCODABLE = frozenset((*_TEXT, *_INTS, BOOL, BYTEA))

Encoder = Callable[[Any, bytearray], None]


def _field(i: int, oid: int) -> str:
    a = f"a{i}"
    if oid in _TEXT:
        value = f"b = {a}.encode('utf-8')\n        out += P4(len(b))\n        out += b"
    elif oid in _INTS:
        code, width = _INTS[oid]
        value = f"out += W{width}\n        out += P{code}({a})"
    elif oid == BOOL:
        value = f"out += TRUE if {a} else FALSE"
    else:  # bytea
        value = f"b = bytes({a})\n        out += P4(len(b))\n        out += b"
    return f"    if {a} is None:\n        out += NULL\n    else:\n        {value}\n"


def encoder(oids: tuple[int, ...]) -> Encoder:
    """``encode(row, out)`` appends one row (values in column order) to ``out``; raises ValueError
    (UnicodeEncodeError, struct.error) for a value with no such form."""
    if not oids or not all(o in ENCODABLE for o in oids):
        raise ValueError(f"no binary COPY form here for type oids {sorted(set(oids) - ENCODABLE)}")
    names = ", ".join(f"a{i}" for i in range(len(oids)))
    body = "".join(_field(i, o) for i, o in enumerate(oids))
    # One generated function per table (from column positions and type oids only): this runs per row.
    source = f"def encode(v, out):\n    {names}, = v\n    out += COUNT\n{body}"
    env: dict[str, Any] = {
        "COUNT": struct.pack(">h", len(oids)),
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
    exec(source, env)
    fn: Encoder = env["encode"]
    return fn
