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
from hashlib import md5
from typing import Any

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no flags, no header extension
TRAILER = b"\xff\xff"

_TEXT = (25, 1042, 1043, 114)  # text, char, varchar, json
_INTS = {20: ("q", 8), 23: ("i", 4), 21: ("h", 2)}  # bigint, integer, smallint
BOOL, BYTEA = 16, 17
ENCODABLE = frozenset((*_TEXT, *_INTS, BOOL, BYTEA))

Encoder = Callable[[Any, bytearray], None]
HashingEncoder = Callable[[Any, bytearray], int]


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


# -- the row's checksum in the same pass ---------------------------------------------------------
#
# verify.RowHasher hashes the UTF-8 bytes of the row text (\x01 + value text + \x00 per value, \x02 for
# NULL). The UTF-8 of a concatenation is the concatenation of the UTF-8 of its parts, so the same digest
# comes from the bytes encoded here for the COPY: each text is encoded once, for both.


def _hashed_field(i: int, oid: int, family: str) -> tuple[str, str, str]:
    # Sets l{i} + b{i} (the value's COPY bytes: length, then data) and p{i} + x{i} + s{i} (its checksum
    # bytes: \x01, text, \x00, or \x02 alone for NULL); the row is joined once from them at the end.
    a, b = f"a{i}", f"b{i}"
    x = b  # the checksum text is the COPY data, except for numbers, booleans and bytea
    if family in ("json", "text") and oid in _TEXT:
        check = f"\n        J({a}, {b})" if family == "json" else ""  # J: json.check_sent
        value = f"{b} = {a}.encode('utf-8'){check}\n        l{i} = P4(len({b}))"
    elif family == "int" and oid in _INTS:
        code, width = _INTS[oid]
        x = f"x{i}"
        value = f"l{i} = W{width}\n        {b} = P{code}({a})\n        {x} = b'%d' % {a}"
    elif family == "bool" and oid == BOOL:
        x = f"x{i}"
        value = f"l{i} = TRUE if {a} else FALSE\n        {b} = E\n        {x} = b't' if {a} else b'f'"
    elif family == "bytea" and oid == BYTEA:
        x = f"x{i}"
        value = f"{b} = bytes({a})\n        l{i} = P4(len({b}))\n        {x} = BS + {b}.hex().encode()"
    else:
        raise ValueError(f"no hashed binary COPY form here for a {family} value as type oid {oid}")
    null = f"l{i} = NULL\n        {b} = E\n        p{i} = N\n        s{i} = E"
    if x != b:
        null += f"\n        {x} = E"
    return (
        f"    if {a} is None:\n        {null}\n    else:\n        {value}\n        p{i} = O\n        s{i} = Z\n",
        f"l{i}, {b}",
        f"p{i}, {x}, s{i}",
    )


class TooLong(Exception):
    """A value longer than the limit: hashed by verify.RowHasher (in chunks) instead, memory stays flat."""


def _too_long() -> None:
    raise TooLong


def hashing_encoder(
    oids: tuple[int, ...], families: tuple[str, ...], check_json: Callable[[str, bytes], Any], limit: int
) -> HashingEncoder:
    """``encode(row, out)`` appends the row like ``encoder`` and returns its checksum term, the first 64
    bits of the digest verify.RowHasher computes for the same values (signed); ``check_json(text, utf8)``
    raises for a JSON text jsonb would refuse (json.check_sent). Raises what RowHasher raises for a value
    it refuses (ValueError, ArithmeticError), and TooLong, before appending anything, for a row with a
    value longer than ``limit``."""
    if not oids or len(oids) != len(families):
        raise ValueError("one type oid and one converter family per column")
    names = ", ".join(f"a{i}" for i in range(len(oids)))
    long_ = [f"(a{i} is not None and len(a{i}) > L)" for i, f in enumerate(families) if f in ("json", "text", "bytea")]
    guard = f"    if {' or '.join(long_)}:\n        LONG()\n" if long_ else ""
    fields = [_hashed_field(i, o, f) for i, (o, f) in enumerate(zip(oids, families, strict=True))]
    body = "".join(f[0] for f in fields)
    # Two joins per row instead of an append per piece: this runs for every row a worker reads.
    source = (
        f"def encode(v, out):\n    {names}, = v\n{guard}{body}"
        f"    out += JOIN((COUNT, {', '.join(f[1] for f in fields)}))\n"
        f"    return FROM(MD5(JOIN(({', '.join(f[2] for f in fields)},))).digest()[:8], 'big', signed=True)\n"
    )
    env = _env(len(oids)) | {
        "O": b"\x01",
        "Z": b"\x00",
        "N": b"\x02",
        "E": b"",
        "BS": b"\\x",
        "JOIN": b"".join,
        "J": check_json,
        "L": limit,
        "LONG": _too_long,
        "MD5": md5,
        "FROM": int.from_bytes,
    }
    exec(source, env)  # built from column positions, type oids and families only
    fn: HashingEncoder = env["encode"]
    return fn
